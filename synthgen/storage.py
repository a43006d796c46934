"""Where a dataset goes: a local folder or any fsspec URL (s3://, gs://, ...).

Shards are always written and validated on local disk first (the worker's
staging folder, or the output folder itself when it is local), then
published here. Publishing is atomic on both kinds of destination: a local
file is copied to a temporary name, fsynced and renamed; an object store
PUT (or a completed multipart upload) makes the whole object visible at
once, and the completion record is only written after its shard. So a
reader, or a resumed run, never sees a partial shard.

A store that cannot be reached (down, still starting, a wrong endpoint)
raises ``StoreError``: one line naming the URL and the endpoint. It is an
``OSError``, so a farm task that hits it is retried like a failed upload.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import tempfile
from typing import Any, Iterator

import fsspec
from fsspec.implementations.local import LocalFileSystem

from synthgen.format import atomic


class StoreError(OSError):
    """The destination's store could not be reached."""

    exit_code = 1  # runtime failure (assets_manifest.cli_errors)


def _connection_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "no answer from the store", from the clients that are installed."""
    kinds: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:  # s3fs; botocore's connection errors are not OSErrors
        from botocore.exceptions import ConnectionError as BotoConnectionError, HTTPClientError

        kinds += [BotoConnectionError, HTTPClientError]
    except ImportError:
        pass
    try:  # gcsfs, http, and s3fs underneath
        from aiohttp import ClientConnectionError

        kinds.append(ClientConnectionError)
    except ImportError:
        pass
    return tuple(kinds)


_SERVER_ERRNOS = (getattr(errno, "EREMOTEIO", errno.EIO), errno.EIO, errno.EBUSY)


def _line(e: BaseException) -> str:
    text = " ".join(str(e).split())[:300]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _reaching(method):
    """Turn a store that does not answer, or answers 5xx, inside a ``Dest`` method into a ``StoreError``."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.reaching():
            return method(self, *args, **kwargs)
    return wrapper


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

    @property
    def endpoint(self) -> str:
        """Where the store answers, for messages: the endpoint option when given, else the URL."""
        opts = self.storage_options
        return str(opts.get("endpoint_url") or opts.get("client_kwargs", {}).get("endpoint_url") or self.url)

    @contextlib.contextmanager
    def reaching(self) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except _connection_errors() as e:
            raise StoreError(f"{self.url}: cannot reach the store at {self.endpoint} ({_line(e)}); "
                             "check that it is up, then run the same command again") from e
        except OSError as e:
            # s3fs maps 5xx answers (InternalError, ServiceUnavailable, SlowDown) to these: a store that is
            # starting, overloaded or failing, not a wrong path
            if self.is_local or e.errno not in _SERVER_ERRNOS:
                raise
            raise StoreError(f"{self.url}: the store at {self.endpoint} answered with a server error "
                             f"({_line(e)}); if it is starting or overloaded, wait, then run the same command "
                             "again") from e

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel) if self.is_local else f"{self.root}/{rel}"

    def uri(self, rel: str) -> str:
        return self.path(rel) if self.is_local else f"{self.url}/{rel}"

    def _fresh(self, rel: str) -> None:
        # workers publish while the driver watches: a cached listing of the folder (s3fs keeps one after
        # any ls) would hide objects written since
        if not self.is_local:
            self.fs.invalidate_cache(self.path(rel))

    @_reaching
    def exists(self, rel: str) -> bool:
        self._fresh(rel)
        return self.fs.exists(self.path(rel))

    @_reaching
    def size(self, rel: str) -> int | None:
        self._fresh(rel)
        try:
            return self.fs.size(self.path(rel))
        except FileNotFoundError:
            return None

    @_reaching
    def digest(self, rel: str, algorithm: str = "sha256") -> str:
        h = hashlib.new(algorithm)
        with self.fs.open(self.path(rel), "rb", block_size=1 << 23) as f:
            while chunk := f.read(1 << 23):
                h.update(chunk)
        return h.hexdigest()

    @_reaching
    def read_json(self, rel: str) -> Any:
        with self.fs.open(self.path(rel), "rb") as f:
            return json.load(f)

    @_reaching
    def get(self, rel: str, local_path: str) -> str:
        os.makedirs(os.path.dirname(os.path.abspath(local_path)), exist_ok=True)
        self.fs.get_file(self.path(rel), local_path)
        return local_path

    @_reaching
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

    @_reaching
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
