"""The one reader of a dataset's ``dataset.json``: parse it, check it, and say where its shards are.

``synthgen inspect``, :func:`synthgen.dataset.iter_samples` (finalize's
preview) and relight's loader all read a dataset folder through
:func:`read_index`, so they accept and refuse the same files with the same
one-line messages. Checked before anything is returned:

* the file is a JSON object with ``format`` (this toolkit's
  one of :data:`~synthgen.format.shard.READABLE_FORMATS`), ``job``, ``counts`` and ``splits``;
* ``counts`` holds non-negative integers, ``planned == written + failed``,
  each split's ``groups`` is the sum of its shards' and the splits together
  hold ``written`` groups;
* every shard entry is an object with ``path``, ``sha256``, ``bytes`` and
  ``groups``, and its path passes :func:`~synthgen.format.shard.check_shard_path`
  (relative, inside the dataset folder). A refused path does not fail the read:
  the shard carries its one-line ``problem`` and no URL, so ``inspect`` can
  list every bad entry, while :meth:`DatasetIndex.shard_urls` refuses the split.

Local folders are read with the standard library; URLs (``s3://``, ...)
through fsspec, imported only then.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from synthgen.format.shard import READABLE_FORMATS, check_shard_path

INDEX_NAME = "dataset.json"
REQUIRED_KEYS = ("format", "job", "counts", "splits")
COUNT_KEYS = ("planned", "written", "failed", "lightings_per_group")
SPLIT_ORDER = ("train", "val", "test")


class DatasetError(ValueError):
    """A missing or bad ``dataset.json``; the message is one line naming the file and what is wrong."""

    exit_code = 1  # bad input data (assets_manifest.cli_errors)


class UnknownSplitError(DatasetError):
    """A split asked for that the dataset does not have: a bad value (``--split``), not bad data."""

    exit_code = 2


@dataclass(frozen=True)
class Shard:
    split: str
    path: str  # as listed in dataset.json
    sha256: str
    bytes: int
    groups: int
    rel: str | None  # relative to the dataset folder; None when the path was refused
    url: str | None  # where to open it (a local absolute path or a URL); None when refused
    problem: str | None = None  # the one-line refusal


@dataclass(frozen=True)
class DatasetIndex:
    where: str  # the dataset.json path or URL, as messages name it
    folder: str  # the dataset folder: a local absolute path or a URL
    meta: dict[str, Any]
    splits: dict[str, list[Shard]] = field(default_factory=dict)

    @property
    def format(self) -> str:
        return self.meta["format"]

    @property
    def counts(self) -> dict[str, int]:
        return self.meta["counts"]

    @property
    def job_id(self) -> str | None:
        job = self.meta["job"].get("job")
        return job.get("id") if isinstance(job, dict) else None

    def split_names(self) -> list[str]:
        """The splits present, train, val, test first."""
        return sorted(self.splits, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else len(SPLIT_ORDER), s))

    def shard_urls(self, split: str) -> list[str]:
        """Where the shards of ``split`` are; DatasetError naming the first refused shard path."""
        if split not in self.splits:
            raise UnknownSplitError(f"{self.where}: no {split!r} split (has: {', '.join(sorted(self.splits)) or 'none'})")
        for s in self.splits[split]:
            if s.problem:
                raise DatasetError(s.problem)
        return [s.url for s in self.splits[split]]


def _is_url(source: str) -> bool:
    return "://" in source and not source.startswith("file://")


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def read_index(source: str, storage_options: dict[str, Any] | None = None) -> DatasetIndex:
    """The checked index of the dataset at ``source``: a folder or its ``dataset.json``, local or a URL."""
    if _is_url(source):
        return _read_remote(source, storage_options)
    local = source.removeprefix("file://")
    if os.path.basename(local.rstrip("/")) == INDEX_NAME and not os.path.isdir(local):
        where, folder = local, os.path.dirname(os.path.abspath(local))
        if not os.path.exists(where):
            raise DatasetError(f"{where}: not found")
    else:
        where, folder = os.path.join(local, INDEX_NAME), os.path.abspath(local)
        if not os.path.exists(local):
            raise DatasetError(f"{source}: no such folder")
        if not os.path.isdir(local):
            raise DatasetError(f"{source}: not a folder (give a dataset folder or its {INDEX_NAME})")
        if not os.path.exists(where):
            raise DatasetError(f"{source}: no {INDEX_NAME} (not a synthgen output, or the job has not finished)")
    with open(where, "rb") as f:
        data = f.read()
    return parse_index(data, where, folder)


def _read_remote(source: str, storage_options: dict[str, Any] | None) -> DatasetIndex:
    import fsspec

    url = source.rstrip("/")
    if url.rsplit("/", 1)[-1] == INDEX_NAME:
        where, folder = url, url.rsplit("/", 1)[0]
    else:
        where, folder = f"{url}/{INDEX_NAME}", url
    fs, path = fsspec.core.url_to_fs(where, **(storage_options or {}))
    if not fs.exists(path):
        if where == url:  # the URL named dataset.json itself
            raise DatasetError(f"{where}: not found")
        if not fs.exists(path.rsplit("/", 1)[0]):
            raise DatasetError(f"{source}: no such folder")
        raise DatasetError(f"{source}: no {INDEX_NAME} (not a synthgen output, or the job has not finished)")
    with fs.open(path, "rb") as f:
        data = f.read()
    return parse_index(data, where, folder)


def parse_index(data: bytes | str, where: str, folder: str) -> DatasetIndex:
    """Check the ``dataset.json`` text ``data`` read from ``where``; shard URLs are taken inside ``folder``."""
    try:
        meta = json.loads(data)
    except ValueError as e:  # not JSON (truncated, or another file by that name)
        raise DatasetError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{where}: not a synthgen {INDEX_NAME} (a JSON {type(meta).__name__}, not an object)")
    for key in REQUIRED_KEYS:
        if key not in meta:
            raise DatasetError(f"{where}: no {key!r} key (not a complete synthgen {INDEX_NAME})")
    if meta["format"] not in READABLE_FORMATS:
        raise DatasetError(f"{where}: format {meta['format']!r}; this version reads "
                           f"{' and '.join(READABLE_FORMATS)}")
    if not isinstance(meta["job"], dict):
        raise DatasetError(f"{where}: 'job' must be an object")
    counts = meta["counts"]
    if not isinstance(counts, dict):
        raise DatasetError(f"{where}: 'counts' must be an object")
    for key in COUNT_KEYS:
        if not _is_count(counts.get(key)):
            raise DatasetError(f"{where}: counts.{key} must be a non-negative integer, got {counts.get(key)!r}")
    if counts["planned"] != counts["written"] + counts["failed"]:
        raise DatasetError(f"{where}: counts.planned = {counts['planned']} is not written + failed "
                           f"({counts['written']} + {counts['failed']})")
    if not isinstance(meta["splits"], dict):
        raise DatasetError(f"{where}: 'splits' must be an object")
    splits = {name: _split_shards(entry, name, where, folder) for name, entry in meta["splits"].items()}
    total = sum(meta["splits"][name]["groups"] for name in splits)
    if total != counts["written"]:
        raise DatasetError(f"{where}: the splits hold {total} group(s), counts.written says {counts['written']}")
    return DatasetIndex(where=where, folder=folder, meta=meta, splits=splits)


def _split_shards(entry: Any, split: str, where: str, folder: str) -> list[Shard]:
    if not isinstance(entry, dict) or not isinstance(entry.get("shards"), list) or not _is_count(entry.get("groups")):
        raise DatasetError(f"{where}: split {split!r} must be an object with a 'shards' list and a 'groups' count")
    out = []
    for i, s in enumerate(entry["shards"]):
        if not (isinstance(s, dict) and isinstance(s.get("sha256"), str) and _is_count(s.get("bytes"))
                and _is_count(s.get("groups"))):
            raise DatasetError(f"{where}: split {split!r}: shard {i} must be an object with path, sha256, "
                               "bytes and groups")
        rel = url = problem = None
        try:  # nothing outside the dataset folder is ever opened
            rel = check_shard_path(s.get("path"), folder)
            url = f"{folder}/{rel}" if _is_url(folder) else os.path.join(folder, rel)
        except ValueError as e:
            problem = f"{where}: split {split!r}: {e}; not opened"
        out.append(Shard(split=split, path=s.get("path"), sha256=s["sha256"], bytes=s["bytes"], groups=s["groups"],
                         rel=rel, url=url, problem=problem))
    listed = sum(s.groups for s in out)
    if listed != entry["groups"]:
        raise DatasetError(f"{where}: split {split!r} says {entry['groups']} group(s), its shards hold {listed}")
    return out
