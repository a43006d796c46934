"""Atomic publishing of files and folders: the one way the toolkit writes an output in place.

A file is written under a temporary name in its own folder, unique per host
and process (``<name>.<host>.<pid>.tmp``, so two attempts of a shard on two
nodes of a shared filesystem never share one), flushed and fsynced, given the
mode a normally created file has, renamed over the target with
``os.replace`` and, by default, its folder fsynced so the rename itself
survives a crash. A reader sees the old file or the new one, never a part;
a failed write removes its temporary file and leaves the old file as it was.

Mode: the temporary file is chmod-ed to ``0666 & ~umask`` (0644 under the
usual umask 022) before the rename, whatever created it (``mkstemp`` and some
libraries create 0600), so other users and other nodes' service accounts on a
shared filesystem can read what was published.

:func:`atomic_path` is the primitive for writers that want a path (parquet,
OpenEXR, a copy); :func:`write_bytes`, :func:`write_text`, :func:`write_json`,
:func:`write_parquet` and :func:`copy_file` build on it. :func:`atomic_dir`
does the same for a folder (a training checkpoint).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from typing import Any, Iterator


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(mask)
    return mask


def publish_mode(path_or_fd: str | int) -> None:
    """chmod a file to 0666 & ~umask, the mode of a normally created file."""
    mode = 0o666 & ~current_umask()
    if isinstance(path_or_fd, int):
        os.fchmod(path_or_fd, mode)
    else:
        os.chmod(path_or_fd, mode)


def temp_name(path: str) -> str:
    """The temporary name of ``path`` for this host and process, in the same folder."""
    return f"{path}.{socket.gethostname()}.{os.getpid()}.tmp"


def fsync_file(path: str) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(folder: str) -> None:
    """fsync a folder so a rename in it is durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems (and platforms) refuse fsync on a folder
        pass
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@contextlib.contextmanager
def atomic_path(path: str, durable_dir: bool = True) -> Iterator[str]:
    """Yield a temporary path to write ``path``'s content to; on success publish it atomically.

    On an exception the temporary file is removed, ``path`` is left untouched
    and the exception propagates. The caller's folder is created if missing.
    """
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = temp_name(path)
    _remove(tmp)  # a leftover of a crashed process that had the same pid
    try:
        yield tmp
        publish_mode(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    if durable_dir:
        fsync_dir(folder)


def write_bytes(path: str, data: bytes, durable_dir: bool = True) -> str:
    with atomic_path(path, durable_dir) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
    return path


def write_text(path: str, text: str, durable_dir: bool = True) -> str:
    return write_bytes(path, text.encode("utf-8"), durable_dir)


def write_json(path: str, obj: Any, indent: int | None = None, durable_dir: bool = True) -> str:
    """``obj`` as JSON with sorted keys (byte-stable for equal objects)."""
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=True), durable_dir)


def write_parquet(path: str, table, durable_dir: bool = True, **kwargs) -> str:
    """A pyarrow Table as Parquet (``kwargs`` go to ``pyarrow.parquet.write_table``)."""
    import pyarrow.parquet as pq

    with atomic_path(path, durable_dir) as tmp:
        pq.write_table(table, tmp, **kwargs)
    return path


def copy_file(src: str, path: str, durable_dir: bool = True) -> str:
    """Publish a copy of the local file ``src`` as ``path``."""
    with atomic_path(path, durable_dir) as tmp:
        shutil.copyfile(src, tmp)
    return path


@contextlib.contextmanager
def atomic_dir(path: str) -> Iterator[str]:
    """Yield a temporary folder to fill; on success it replaces the folder ``path``.

    Every file in it is fsynced, then the old ``path`` (if any) is moved
    aside, the new folder renamed into place, and the old one deleted; the
    parent is fsynced. A crash leaves either the old or the new folder under
    ``path`` (or, between the two renames, the old one under its aside name
    and no ``path``), never a half-written one. On an exception the
    temporary folder is removed and ``path`` is left untouched.
    """
    path = os.path.abspath(path.rstrip("/"))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp, aside = temp_name(path), f"{path}.{socket.gethostname()}.{os.getpid()}.old.tmp"
    _remove(tmp)
    os.makedirs(tmp)
    try:
        yield tmp
        for folder, _, files in os.walk(tmp):
            for name in files:
                fsync_file(os.path.join(folder, name))
            fsync_dir(folder)
    except BaseException:
        _remove(tmp)
        raise
    _remove(aside)
    if os.path.lexists(path):
        os.replace(path, aside)
    os.replace(tmp, path)
    fsync_dir(parent)
    _remove(aside)


def publish_file(src: str, path: str, durable_dir: bool = True) -> str:
    """Rename the finished local file ``src`` (same filesystem) into place as ``path``, the same way."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    publish_mode(src)
    fsync_file(src)
    os.replace(src, path)
    if durable_dir:
        fsync_dir(os.path.dirname(path))
    return path
