"""Write one shard as a unit of work: temporary name, validate, fsync, atomic rename.

A shard is rendered whole from its plan rows. Samples go through
webdataset's ``ShardWriter`` into a staging folder (its ``maxcount`` is
set above the shard's group count, so it writes exactly one tar, named by
``start_shard``); the tar is then read back with plain webdataset and every
sample checked against the format before it is renamed into ``shards/``.
A reader never sees a partial shard, and a retried shard replaces, never
appends.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tarfile
from dataclasses import dataclass, field
from typing import Any, Iterable

import webdataset as wds

from synthgen.format import atomic, shard as shard_format


@dataclass
class ShardRecord:
    shard: str
    split: str
    path: str  # relative to the dataset folder
    sha256: str
    bytes: int
    groups: int
    keys: list[str] = field(default_factory=list)
    md5: str = ""  # for the wids index; records written before it existed have ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def file_digest(path: str, algorithm: str = "sha256") -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def shard_relpath(shard: str) -> str:
    return f"shards/{shard}.tar"


def validate_tar(path: str, expected_keys: list[str] | None = None) -> list[str]:
    """Read a tar with plain webdataset; check grouping, member sets and keys. Returns the keys."""
    keys: list[str] = []
    # members of a sample must be contiguous: webdataset groups by runs of the same key
    with tarfile.open(path) as tf:
        names = [m.name for m in tf.getmembers()]
    for name in names:
        if name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"{path}: member {name!r} escapes the archive")
    for sample in wds.WebDataset(path, shardshuffle=False, empty_check=False):
        key = sample["__key__"]
        fields = {k for k in sample if not k.startswith("__")}
        shard_format.check_fields(key, fields)
        keys.append(key)
    if len(set(keys)) != len(keys):
        raise ValueError(f"{path}: a key appears in two runs (sample members not contiguous)")
    if expected_keys is not None and keys != expected_keys:
        raise ValueError(f"{path}: keys {keys} differ from the planned {expected_keys}")
    return keys


def write_shard(out_dir: str, shard: str, split: str, samples: Iterable[dict[str, Any]]) -> ShardRecord:
    """Write ``samples`` (webdataset dicts of bytes) as ``shards/<shard>.tar``, atomically."""
    # unique per attempt: a retried shard may still have a zombie attempt running elsewhere (lost node)
    staging = os.path.join(out_dir, ".staging", f"{shard}.{socket.gethostname()}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    keys: list[str] = []
    index = int(shard.rsplit("-", 1)[1])
    pattern = os.path.join(staging, f"{split}-%06d.tar")
    # mtime=0 and a fixed owner: identical samples give byte-identical tars
    sink = wds.ShardWriter(pattern, maxcount=10**9, maxsize=1e15, start_shard=index, verbose=0,
                           mtime=0.0, user="synthgen", group="synthgen")
    try:
        for sample in samples:
            sink.write(sample)
            keys.append(sample["__key__"])
    finally:
        sink.close()  # an all-failed shard is still published, empty, so the task is done
    tmp = pattern % index
    held = validate_tar(tmp, keys)  # the record lists the keys read back from the tar, not those handed in
    record = ShardRecord(shard=shard, split=split, path=shard_relpath(shard), sha256=file_digest(tmp),
                         bytes=os.path.getsize(tmp), groups=len(held), keys=held, md5=file_digest(tmp, "md5"))
    atomic.publish_file(tmp, os.path.join(out_dir, shard_relpath(shard)))
    shutil.rmtree(staging, ignore_errors=True)
    return record
