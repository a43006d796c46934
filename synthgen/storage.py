"""Where a dataset goes: a local folder or any fsspec URL (s3://, gs://, ...).

Shards are always written and validated on local disk first (the worker's
staging folder, or the output folder itself when it is local), then
published here. Publishing is atomic on both kinds of destination: a local
file is copied to a temporary name, fsynced and renamed; an object store
PUT (or a completed multipart upload) makes the whole object visible at
once, and the completion record is only written after its shard. So a
reader, or a resumed run, never sees a partial shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from synthgen.format import atomic


class Dest:
    """A dataset folder: ``url`` plus fsspec storage options (endpoint, credentials, ...)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None):
        self.storage_options = dict(storage_options or {})
        self.fs, root = fsspec.core.url_to_fs(url, **self.storage_options)
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.root = os.path.abspath(root) if self.is_local else root.rstrip("/")
        self.url = self.root if self.is_local else url.rstrip("/")

    def __reduce__(self):  # tasks get (url, options) and open their own filesystem
        return Dest, (self.url, self.storage_options)

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel) if self.is_local else f"{self.root}/{rel}"

    def uri(self, rel: str) -> str:
        return self.path(rel) if self.is_local else f"{self.url}/{rel}"

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def size(self, rel: str) -> int | None:
        try:
            return self.fs.size(self.path(rel))
        except FileNotFoundError:
            return None

    def digest(self, rel: str, algorithm: str = "sha256") -> str:
        h = hashlib.new(algorithm)
        with self.fs.open(self.path(rel), "rb", block_size=1 << 23) as f:
            while chunk := f.read(1 << 23):
                h.update(chunk)
        return h.hexdigest()

    def read_json(self, rel: str) -> Any:
        with self.fs.open(self.path(rel), "rb") as f:
            return json.load(f)

    def get(self, rel: str, local_path: str) -> str:
        os.makedirs(os.path.dirname(os.path.abspath(local_path)), exist_ok=True)
        self.fs.get_file(self.path(rel), local_path)
        return local_path

    def put(self, local_path: str, rel: str) -> None:
        """Publish a local file as ``rel``, atomically."""
        target = self.path(rel)
        if self.is_local:
            if os.path.abspath(local_path) == target:
                return
            atomic.copy_file(local_path, target)
        else:
            self.fs.put_file(local_path, target)

    def write_json(self, rel: str, obj: Any) -> None:
        if self.is_local:
            atomic.write_json(self.path(rel), obj, indent=1)
            return
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(obj, f, indent=1, sort_keys=True)
        try:
            self.put(f.name, rel)
        finally:
            os.unlink(f.name)

    def remove(self, rel: str) -> None:
        try:
            self.fs.rm(self.path(rel), recursive=True)
        except FileNotFoundError:
            pass


def open_dest(url: str, storage_options: dict[str, Any] | None = None) -> Dest:
    if not url:
        raise ValueError("--out: empty path")
    try:
        return Dest(url, storage_options)
    except (ImportError, ValueError) as e:  # unknown protocol, or its package (s3fs, gcsfs) missing
        raise ValueError(f"--out {url}: {e}".splitlines()[0]) from None


def parse_storage_options(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` strings (values parsed as JSON when they parse, e.g. numbers, booleans, dicts)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--storage-option {item!r}: expected KEY=VALUE, e.g. endpoint_url=http://127.0.0.1:8333")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
