"""The files beside the shards, and ``synthgen inspect``.

``finalize`` writes, from the plan and the shards' completion records:
``dataset.json`` (job, counts, per split the brace pattern and each shard's
sha256/bytes/groups), ``index.parquet`` (one row per written group: the keys
the records list, read back from each tar by its worker),
``<split>.wids.json`` (wids shard index), ``failures.parquet``,
``render_stats.parquet`` (timings; kept out of the samples so that two runs
of a job give identical samples and metadata) and ``preview.png``.
Everything but the timings is deterministic.

Accounting is checked, not computed: before writing anything, ``finalize``
checks from the records alone (no shard is read again) that each shard's
written and failed keys are disjoint and together exactly its planned keys,
and names the missing or extra keys otherwise. ``inspect`` reads the tars
themselves and compares their keys with ``index.parquet``, ``plan.parquet``
and ``failures.parquet``.
"""

from __future__ import annotations

import collections
import io
import itertools
import json
import os
import tempfile
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from assets_manifest import cli_errors
from synthgen import shards, storage
from synthgen.format import atomic, dataset_index, shard as shard_format
from synthgen.job import Job

SCHEMA_VERSION = "synthgen-dataset/1"
FAILURE_SCHEMA = pa.schema([
    ("group_index", pa.int64()), ("key", pa.string()), ("split", pa.string()), ("shard", pa.string()),
    ("head_asset_id", pa.string()), ("hdri_asset_ids", pa.list_(pa.string())), ("error", pa.string()),
    ("traceback", pa.string()),
])


def _brace(split: str, names: list[str]) -> str:
    idx = sorted(int(n.rsplit("-", 1)[1]) for n in names)
    if len(idx) == 1:
        return f"shards/{split}-{idx[0]:06d}.tar"
    return f"shards/{split}-{{{idx[0]:06d}..{idx[-1]:06d}}}.tar"


def _write_parquet(table: pa.Table, path: str) -> None:
    atomic.write_parquet(path, table)


class AccountingError(ValueError):
    """The completion records do not add up to the plan; the message names the keys."""

    exit_code = cli_errors.RUNTIME  # bad data in the output folder


def _keys_line(keys: list[str], limit: int = 5) -> str:
    more = len(keys) - limit
    return ", ".join(keys[:limit]) + (f" and {more} more" if more > 0 else "")


def check_accounting(out_dir: str, rows: list[dict[str, Any]], results: dict[str, Any]) -> list[str]:
    """The written keys, shard by shard in tar order; AccountingError unless, for every shard of the plan,
    the keys its record lists and its failed keys are disjoint and together exactly its planned keys."""
    planned: dict[str, list[str]] = {}
    for r in rows:
        planned.setdefault(r["shard"], []).append(r["key"])
    problems, written = [], []
    for shard in sorted(set(planned) | set(results)):
        if shard not in results:
            problems.append(f"shard {shard} has no completion record (keys {_keys_line(planned[shard])} missing)")
            continue
        keys = list(results[shard].record.keys)
        failed = [f["key"] for f in results[shard].failures]
        want = set(planned.get(shard, []))
        got = keys + failed
        missing = sorted(want - set(got))
        extra = sorted(set(got) - want)
        twice = sorted(k for k, n in collections.Counter(got).items() if n > 1)
        if missing:
            problems.append(f"shard {shard}: planned key(s) neither written nor failed: {_keys_line(missing)}")
        if extra:
            problems.append(f"shard {shard}: key(s) not planned in this shard: {_keys_line(extra)}")
        if twice:
            problems.append(f"shard {shard}: key(s) both written and failed, or listed twice: {_keys_line(twice)}")
        if results[shard].record.groups != len(keys):
            problems.append(f"shard {shard}: record says {results[shard].record.groups} group(s) but lists "
                            f"{len(keys)} key(s)")
        written += keys
    if problems:
        raise AccountingError(f"{out_dir}: the completion records do not add up to the plan: {problems[0]}"
                              + (f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else "")
                              + "; delete that shard's completed/<shard>.json and run the same command again "
                              "to render it again")
    return written


def finalize(out_dir: str, job: Job, plan: pa.Table, results: dict[str, Any]) -> dict[str, Any]:
    rows = plan.to_pylist()
    written_keys = check_accounting(out_dir, rows, results)
    failures = [f for r in results.values() for f in r.failures]
    by_key = {r["key"]: r for r in rows}
    written = [by_key[k] for k in written_keys]  # what the records say the tars hold, in tar order
    splits: dict[str, Any] = {}
    md5: dict[str, str] = {}
    for name in sorted(results):
        rec = results[name].record
        entry = splits.setdefault(rec.split, {"shards": [], "groups": 0})
        entry["shards"].append({"path": rec.path, "sha256": rec.sha256, "bytes": rec.bytes, "groups": rec.groups})
        entry["groups"] += rec.groups
        md5[rec.path] = rec.md5 or shards.file_digest(os.path.join(out_dir, rec.path), "md5")
    for split, entry in splits.items():
        entry["pattern"] = _brace(split, [os.path.basename(s["path"])[:-4] for s in entry["shards"]])
        wids = {
            "__kind__": "wids-shard-index-v1", "wids_version": 1, "name": f"{job.job.id}-{split}",
            "shardlist": [{"url": s["path"], "nsamples": s["groups"], "filesize": s["bytes"],
                           "md5sum": md5[s["path"]]} for s in entry["shards"]],
        }
        atomic.write_json(os.path.join(out_dir, f"{split}.wids.json"), wids, indent=1)
    counts = {"planned": len(rows), "written": len(written), "failed": len(failures),
              "lightings_per_group": job.lightings_per_group,
              "images": sum(len(r["lightings"]) for r in written)}
    meta = {"format": shard_format.FORMAT, "schema_version": SCHEMA_VERSION, "job": job.to_dict(),
            "counts": counts, "splits": splits}
    atomic.write_json(os.path.join(out_dir, "dataset.json"), meta, indent=1)

    index = pa.Table.from_pylist([{
        "key": r["key"], "split": r["split"], "shard": r["shard"], "group_index": r["group_index"],
        "head_asset_id": r["head_asset_id"], "hdri_asset_ids": [lt["hdri_asset_id"] for lt in r["lightings"]],
        "rotations_deg": [lt["rotation_deg"] for lt in r["lightings"]],
        "exposures": [lt["exposure"] for lt in r["lightings"]],
        "background": r["background"], "focal_mm": r["focal_mm"], "yaw_deg": r["yaw_deg"],
        "pitch_deg": r["pitch_deg"], "roll_deg": r["roll_deg"],
    } for r in written]) if written else pa.table({"key": pa.array([], pa.string())})
    _write_parquet(index, os.path.join(out_dir, "index.parquet"))
    _write_parquet(pa.Table.from_pylist(sorted(failures, key=lambda f: f["group_index"]), schema=FAILURE_SCHEMA),
                   os.path.join(out_dir, "failures.parquet"))
    stats = [dict(s, render_s_total=float(sum(s["render_s"]))) for r in results.values() for s in r.stats]
    if stats:
        _write_parquet(pa.Table.from_pylist(stats), os.path.join(out_dir, "render_stats.parquet"))
    if written:
        preview(out_dir, os.path.join(out_dir, "preview.png"))
    return {"out": out_dir, **counts}


def iter_samples(out_dir: str, split: str | None = None):
    """Samples of a finished dataset (its dataset.json read and checked by the format layer), with plain webdataset."""
    import webdataset as wds

    index = dataset_index.read_index(out_dir)
    for name in index.split_names():
        if split and name != split:
            continue
        for url in index.shard_urls(name):
            yield from wds.WebDataset(url, shardshuffle=False, empty_check=False)


PREVIEW_GROUPS = 12  # rows of preview.png


def preview(out_dir: str, out_png: str, max_groups: int = PREVIEW_GROUPS, max_lightings: int = 6,
            tile: int = 128) -> str:
    """Contact sheet: a row per group, a column per lighting, the env map under each render."""
    rows = []
    # islice stops after max_groups samples without opening the next shard: for a remote output only the
    # shards holding those groups are staged locally (farm.finalize), and the next one is not there
    for sample in itertools.islice(iter_samples(out_dir), max_groups):
        k = shard_format.check_fields(sample["__key__"], {k for k in sample if not k.startswith("__")})
        cells = []
        for i in range(min(k, max_lightings)):
            rgb = Image.open(io.BytesIO(sample[shard_format.rgb_field(i)])).convert("RGB").resize((tile, tile))
            env = Image.open(io.BytesIO(sample[shard_format.env_field(i)])).convert("RGB").resize((tile, tile // 2))
            cells.append((rgb, env))
        rows.append((sample["__key__"], cells))
    cols = max(len(c) for _, c in rows)
    label = 14
    sheet = Image.new("RGB", (cols * (tile + 4) + 4, len(rows) * (tile + tile // 2 + label + 8) + 4), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for r, (key, cells) in enumerate(rows):
        y = 4 + r * (tile + tile // 2 + label + 8)
        draw.text((6, y), key, fill=(220, 220, 220))
        for c, (rgb, env) in enumerate(cells):
            x = 4 + c * (tile + 4)
            sheet.paste(rgb, (x, y + label))
            sheet.paste(env, (x, y + label + tile + 2))
    sheet.save(out_png)
    return out_png


def inspect(out_dir: str, storage_options: dict[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """(report lines, problems): counts and sizes per split; every shard checked against the format, and
    the keys each tar holds against ``index.parquet``, ``plan.parquet`` and ``failures.parquet``.

    ``out_dir`` is a folder or an fsspec URL; remote shards are hashed as they stream and checked one at a
    time from a temporary copy."""
    try:  # the same reader and checks as relight's: nothing outside the dataset folder is opened
        index = dataset_index.read_index(out_dir, storage_options)
    except dataset_index.DatasetError as e:
        return [], [str(e)]
    dest = storage.open_dest(out_dir, storage_options)
    lines, problems = [], []
    held: dict[str, list[str]] = {}  # shard name -> the keys its tar holds
    c = index.counts
    lines.append(f"{out_dir}: {index.format}, job {index.job_id}: planned {c['planned']}, "
                 f"written {c['written']}, failed {c['failed']}, {c['lightings_per_group']} lightings per group")
    for split in sorted(index.splits):
        shard_list, entry = index.splits[split], index.meta["splits"][split]
        size = sum(s.bytes for s in shard_list)
        lines.append(f"  {split:5s} {len(shard_list):4d} shard(s) {entry['groups']:6d} group(s) "
                     f"{size / 1e6:9.1f} MB  {entry.get('pattern', '')}")
        for s in shard_list:
            if s.problem:
                problems.append(s.problem)
                continue
            rel = s.rel
            tar = dest.uri(rel)
            if not dest.exists(rel):
                problems.append(f"{tar}: missing")
                continue
            if dest.digest(rel) != s.sha256:
                problems.append(f"{tar}: sha256 differs from dataset.json (changed or truncated)")
                continue
            with tempfile.TemporaryDirectory() as tmp:
                local = dest.path(rel) if dest.is_local else dest.get(rel, os.path.join(tmp, "s.tar"))
                try:
                    keys = shards.validate_tar(local)
                except Exception as e:
                    problems.append(f"{tar}: {e}")
                    continue
            if len(keys) != s.groups:
                problems.append(f"{tar}: {len(keys)} samples, dataset.json says {s.groups}")
            held[os.path.basename(rel)[: -len(".tar")]] = keys
    if not problems:
        problems += _check_keys(dest, index.meta, held)
    return lines, problems


def _read_keys(dest: storage.Dest, rel: str, columns: list[str]) -> list[dict[str, Any]] | None:
    if not dest.exists(rel):
        return None
    with tempfile.TemporaryDirectory() as tmp:  # a local copy: pq.read_table on an fsspec file object has crashed
        local = dest.path(rel) if dest.is_local else dest.get(rel, os.path.join(tmp, "t.parquet"))
        table = pq.read_table(local)
        return table.select([c for c in columns if c in table.column_names]).to_pylist()


def _check_keys(dest: storage.Dest, meta: dict[str, Any], held: dict[str, list[str]]) -> list[str]:
    """The keys the tars hold against index.parquet (per shard), plan.parquet and failures.parquet."""
    problems = []
    in_tars = [k for keys in held.values() for k in keys]
    if len(in_tars) != meta["counts"].get("written"):
        problems.append(f"{dest.uri('dataset.json')}: counts.written = {meta['counts'].get('written')} but "
                        f"the shards hold {len(in_tars)} sample(s)")
    index = _read_keys(dest, "index.parquet", ["key", "shard"])
    if index is not None:
        listed: dict[str, set[str]] = {}
        for r in index:
            listed.setdefault(r["shard"], set()).add(r["key"])
        for shard in sorted(set(listed) | set(held)):
            missing = sorted(listed.get(shard, set()) - set(held.get(shard, [])))
            extra = sorted(set(held.get(shard, [])) - listed.get(shard, set()))
            where = dest.uri(shards.shard_relpath(shard))
            if missing:
                problems.append(f"{where}: key(s) in index.parquet missing from the tar: {_keys_line(missing)}")
            if extra:
                problems.append(f"{where}: key(s) in the tar not in index.parquet: {_keys_line(extra)}")
    plan = _read_keys(dest, "plan.parquet", ["key"])
    failures = _read_keys(dest, "failures.parquet", ["key"])
    if plan is not None and failures is not None:
        planned, failed = {r["key"] for r in plan}, {r["key"] for r in failures}
        accounted = set(in_tars) | failed
        if missing := sorted(planned - accounted):
            problems.append(f"{dest.url}: planned key(s) neither in a shard nor in failures.parquet: "
                            f"{_keys_line(missing)}")
        if extra := sorted(accounted - planned):
            problems.append(f"{dest.url}: key(s) not in plan.parquet: {_keys_line(extra)}")
        if both := sorted(set(in_tars) & failed):
            problems.append(f"{dest.url}: key(s) both in a shard and in failures.parquet: {_keys_line(both)}")
        if twice := sorted(k for k, n in collections.Counter(in_tars).items() if n > 1):
            problems.append(f"{dest.url}: key(s) in two shards: {_keys_line(twice)}")
    return problems
