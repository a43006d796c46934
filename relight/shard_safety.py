"""Reading shards without trusting them: member-name checks, an explicit decoder map, safe opening.

A shard is data from elsewhere (a farm, a bucket, a colleague). Nothing in it
is ever unpickled or executed:

* member names are checked as the tar is read (webdataset's ``select_files``
  hook, so a bad member is refused before its bytes are read): absolute paths,
  ``..`` components, backslashes and NULs are refused, and so is any
  extension outside :data:`ALLOWED_EXTENSIONS`. A ``.pyd``/``.pickle``/``.pth``
  member stops the read with :class:`UnsafeShardError`;
* decoding goes through :func:`decode_member` alone (webdataset's default pre-
  and post-handlers are switched off, so its pickle/torch/msgpack decoders
  never run): JSON with ``json.loads``, PNG and JPEG with PIL restricted to
  that one format, EXR with the OpenEXR reader synthgen writes with, text as
  UTF-8; anything else raises;
* symlinks, hard links and devices in a tar are skipped by webdataset's
  reader (only regular files are read), and nothing is extracted to disk.

Errors are one line naming the shard and the member.
"""

from __future__ import annotations

import io
import json
import posixpath
from typing import Any, Iterable, Iterator

import webdataset as wds
from PIL import Image

ALLOWED_EXTENSIONS = frozenset({"json", "png", "jpg", "jpeg", "exr", "txt"})
_PIL_FORMATS = {"png": ["PNG"], "jpg": ["JPEG"], "jpeg": ["JPEG"]}
_EXR_MAGIC = b"\x76\x2f\x31\x01"
MAX_JSON_BYTES = 16 << 20


class DataError(ValueError):
    """Bad input to relight.data; the message is one line naming the file, key or member."""


class UnsafeShardError(DataError):
    """A shard member that must not be read: escaping name or a forbidden type. Never skipped."""


def is_remote(url: str) -> bool:
    return url.startswith("pipe:") or ("://" in url and not url.startswith("file://"))


def check_member_name(name: str) -> bool:
    """webdataset ``select_files`` hook: True for a safe member, :class:`UnsafeShardError` otherwise."""
    if not name or "\x00" in name or "\\" in name:
        raise UnsafeShardError(f"member {name!r}: empty name, NUL or backslash")
    if name.startswith("/") or posixpath.isabs(name):
        raise UnsafeShardError(f"member {name!r}: absolute path escapes the archive")
    if ".." in name.split("/"):
        raise UnsafeShardError(f"member {name!r}: '..' escapes the archive")
    ext = name.rsplit("/", 1)[-1].rsplit(".", 1)[-1].lower() if "." in name.rsplit("/", 1)[-1] else ""
    if ext not in ALLOWED_EXTENSIONS:
        raise UnsafeShardError(f"member {name!r}: type {'.' + ext if ext else '(none)'} is not read "
                               f"(allowed: {', '.join(sorted(ALLOWED_EXTENSIONS))}); pickles are never loaded")
    return True


def decode_member(key: str, data: bytes) -> Any:
    """The only decoder (a webdataset handler): ``key`` is ``.<field>``, e.g. ``.rgb_00.png``."""
    ext = key.rsplit(".", 1)[-1].lower()
    if ext == "json":
        if len(data) > MAX_JSON_BYTES:
            raise DataError(f"{key[1:]}: {len(data)} bytes of JSON, more than {MAX_JSON_BYTES}")
        return json.loads(data.decode("utf-8"))
    if ext in _PIL_FORMATS:
        img = Image.open(io.BytesIO(data), formats=_PIL_FORMATS[ext])
        img.load()  # decode now, so a corrupt image fails here, naming its member
        return img
    if ext == "exr":
        if data[:4] != _EXR_MAGIC:
            raise DataError(f"{key[1:]}: not an OpenEXR file")
        from synthgen.encode import exr_from_bytes

        return exr_from_bytes(data)
    if ext == "txt":
        return data.decode("utf-8")
    raise UnsafeShardError(f"{key[1:]}: no decoder for .{ext} (allowed: {', '.join(sorted(ALLOWED_EXTENSIONS))})")


def raise_unsafe(handler):
    """Wrap a webdataset error handler so that safety errors always propagate, whatever the handler."""
    def wrapped(exn: Exception) -> bool:
        if isinstance(exn, UnsafeShardError):
            raise exn
        return handler(exn)
    return wrapped


def open_shard(url: str, allow_remote: bool):
    """A binary stream for a shard: local files directly; ``pipe:``/http via webdataset's gopen; else fsspec."""
    if url.startswith("file://"):
        url = url[len("file://"):]
    if not is_remote(url):
        return open(url, "rb")
    if not allow_remote:
        raise DataError(f"{url}: remote shard URL refused; pass allow_remote=True to read it")
    scheme = url.split(":", 1)[0]
    if scheme in wds.gopen_schemes:
        return wds.gopen(url)
    import fsspec

    return fsspec.open(url, "rb").open()


def tar_samples(src: Iterable[dict], allow_remote: bool = False, handler=wds.reraise_exception) -> Iterator[dict]:
    """Pipeline stage: shard dicts ``{"url": ...}`` -> raw samples, member names checked.

    webdataset's own ``tar_file_expander`` and ``group_by_keys`` do the
    reading; this stage only opens each shard itself (to refuse remote URLs
    without the opt-in and to reach fsspec URLs) and turns any error into a
    one-line :class:`DataError` naming the shard.
    """
    h = raise_unsafe(handler)
    for shard in src:
        url = shard["url"]
        try:
            stream = open_shard(url, allow_remote)
        except DataError:
            raise
        except OSError as e:
            raise DataError(f"{url}: cannot open shard: {e.strerror or e}") from None
        try:
            files = wds.tariterators.tar_file_expander([dict(url=url, stream=stream)], handler=h,
                                                       select_files=check_member_name)
            yield from wds.tariterators.group_by_keys(files, handler=h)
        except UnsafeShardError as e:
            raise UnsafeShardError(f"{url}: {_first_line(e)}") from None
        except DataError:
            raise
        except Exception as e:  # tarfile.ReadError, duplicate members, truncated streams
            raise DataError(f"{url}: unreadable shard: {_first_line(e)}") from None
        finally:
            stream.close()


def _first_line(e: Exception) -> str:
    # webdataset appends " @ <stream>" and extra args to exceptions it passes on; keep the message
    msg = str(e.args[0]) if e.args else str(e)
    return msg.split(" @ ")[0].splitlines()[0] if msg else type(e).__name__
