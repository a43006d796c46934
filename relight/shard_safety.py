"""Reading shards without trusting them: member-name checks, an explicit decoder map, safe opening.

A shard is data from elsewhere (a farm, a bucket, a colleague). Nothing in it
is ever unpickled or executed:

* member names are checked as the tar is read (from the header, so a bad
  member is refused before its bytes are read): absolute paths,
  ``..`` components, backslashes and NULs are refused, and so is any
  extension outside :data:`ALLOWED_EXTENSIONS`. A ``.pyd``/``.pickle``/``.pth``
  member stops the read with :class:`UnsafeShardError`;
* decoding goes through :func:`decode_member` alone (webdataset's default pre-
  and post-handlers are switched off, so its pickle/torch/msgpack decoders
  never run): JSON with ``json.loads``, PNG and JPEG with PIL restricted to
  that one format, EXR with the OpenEXR reader synthgen writes with, text as
  UTF-8; anything else raises;
* members are read by :func:`tar_members` (then grouped by webdataset's
  ``group_by_keys``): symlinks, hard links, devices and every other
  non-regular member are refused (directory entries carry no data and are
  skipped), and so is a member larger than
  ``max_member_bytes`` (256 MiB by default), from its tar header, before its
  data is read. Nothing is extracted to disk;
* compressed shards (gzip, bzip2, xz, zstd, told by the stream's first bytes)
  are refused unless ``allow_compressed``: a small shard can unpack to an
  endless stream;
* an EXR's, PNG's or JPEG's width and height are read from its header and
  checked against ``max_image_side`` (8192 by default) before it is decoded;
* ``pipe:`` URLs, which webdataset runs through a shell, need their own
  opt-in (``allow_pipe``); http(s)/fsspec URLs need ``allow_remote``.

Errors are one line naming the shard and the member.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
import struct
import tarfile
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import webdataset as wds
from PIL import Image

from assets_manifest.cli_errors import usage

ALLOWED_EXTENSIONS = frozenset({"json", "png", "jpg", "jpeg", "exr", "txt"})
_PIL_FORMATS = {"png": ["PNG"], "jpg": ["JPEG"], "jpeg": ["JPEG"]}
_EXR_MAGIC = b"\x76\x2f\x31\x01"
MAX_JSON_BYTES = 16 << 20
MAX_MEMBER_BYTES = 256 << 20  # default cap on one tar member
MAX_IMAGE_SIDE = 8192  # default cap on an image's width and height
# the magic bytes tarfile's "r|*" would decompress (zstd: Python 3.14), longest first
_COMPRESSION_MAGIC = ((re.compile(rb"\xfd7zXZ\x00"), "xz"), (re.compile(rb"\x28\xb5\x2f\xfd"), "zstd"),
                      (re.compile(rb"BZh[1-9](\x31\x41\x59\x26\x53\x59|\x17\x72\x45\x38\x50\x90)"), "bzip2"),
                      (re.compile(rb"\x1f\x8b"), "gzip"))
_MAGIC_LEN = 10
_META_RE = re.compile(r"__[^/]*__($|/)")  # webdataset's skip_meta: __key__-style members are not data


class DataError(ValueError):
    """Bad input to relight.data; the message is one line naming the file, key or member."""

    exit_code = 1  # bad input data (assets_manifest.cli_errors)


class UnsafeShardError(DataError):
    """A shard member that must not be read: escaping name or a forbidden type. Never skipped."""


@dataclass(frozen=True)
class ReadPolicy:
    """What reading a shard may do; :class:`relight.data.DataConfig` has the same fields (config keys)."""

    allow_remote: bool = False  # http(s), s3://, gs://, ... URLs
    allow_pipe: bool = False  # pipe:CMD URLs: webdataset runs CMD through a shell
    allow_compressed: bool = False  # gzip/bzip2/xz shards
    max_member_bytes: int = MAX_MEMBER_BYTES
    max_image_side: int = MAX_IMAGE_SIDE

    def __post_init__(self):
        for name in ("max_member_bytes", "max_image_side"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise DataError(f"{name} must be an integer >= 1, got {v!r}")


def pipe_refused(url: str) -> str:
    return (f"{url}: pipe: URL refused (webdataset runs it through a shell); "
            "pass allow_pipe=True (relight --allow-pipe) to run it")


def remote_refused(url: str, what: str = "remote shard URL") -> str:
    return f"{url}: {what} refused; pass allow_remote=True (relight --allow-remote) to read it"


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


def exr_size(data: bytes) -> tuple[int, int]:
    """(width, height) of an OpenEXR file from its header alone (the largest part of a multi-part file).

    Parsed here rather than with ``OpenEXR.File(..., header_only=True)``: reading
    from memory needs openexr 3.5 (the project allows 3.3), and the header is a
    plain list of attributes up to a NUL.
    """
    if data[:4] != _EXR_MAGIC:
        raise DataError("not an OpenEXR file")
    multipart = bool(data[5] & 0x10) if len(data) > 5 else False  # version flags: bit 12 is multi-part
    pos, sizes = 8, []
    try:
        while True:
            window = None
            while True:  # one header: name\0 type\0 size value, until an empty name
                end = data.index(b"\x00", pos)
                name, pos = data[pos:end], end + 1
                if not name:
                    break
                end = data.index(b"\x00", pos)
                kind, pos = data[pos:end], end + 1
                (n,) = struct.unpack_from("<i", data, pos)
                pos += 4
                if n < 0 or pos + n > len(data):
                    raise ValueError
                if name == b"dataWindow" and kind == b"box2i" and n == 16:
                    x0, y0, x1, y1 = struct.unpack_from("<4i", data, pos)
                    window = (x1 - x0 + 1, y1 - y0 + 1)
                pos += n
            if window is None:
                raise DataError("OpenEXR header without a dataWindow")
            sizes.append(window)
            if not multipart or data[pos:pos + 1] in (b"\x00", b""):  # multi-part: an empty header ends the list
                break
    except (ValueError, struct.error) as e:
        if isinstance(e, DataError):
            raise
        raise DataError("truncated OpenEXR header") from None
    return max(sizes, key=lambda wh: wh[0] * wh[1])


def _check_image_size(key: str, kind: str, size: tuple[int, int], max_side: int) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise DataError(f"{key}: {kind} of {w}x{h} pixels (empty)")
    if w > max_side or h > max_side:
        raise UnsafeShardError(f"{key}: {kind} of {w}x{h} pixels, larger than max_image_side={max_side}; "
                               "not decoded (raise max_image_side, relight --max-image-side, if it is expected)")


def decode_member(key: str, data: bytes, max_image_side: int = MAX_IMAGE_SIDE) -> Any:
    """The only decoder (a webdataset handler): ``key`` is ``.<field>``, e.g. ``.rgb_00.png``.

    Images are checked against ``max_image_side`` from their headers, before any pixel is decoded.
    """
    ext = key.rsplit(".", 1)[-1].lower()
    if ext == "json":
        if len(data) > MAX_JSON_BYTES:
            raise DataError(f"{key[1:]}: {len(data)} bytes of JSON, more than {MAX_JSON_BYTES}")
        return json.loads(data.decode("utf-8"))
    if ext in _PIL_FORMATS:
        img = Image.open(io.BytesIO(data), formats=_PIL_FORMATS[ext])  # reads the header only
        _check_image_size(key[1:], img.format or ext.upper(), img.size, max_image_side)
        img.load()  # decode now, so a corrupt image fails here, naming its member
        return img
    if ext == "exr":
        try:
            size = exr_size(data)
        except DataError as e:
            raise DataError(f"{key[1:]}: {e}") from None
        _check_image_size(key[1:], "EXR", size, max_image_side)
        from synthgen.format.codecs import exr_from_bytes

        return exr_from_bytes(data, key[1:])
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


def open_shard(url: str, policy: ReadPolicy = ReadPolicy()):
    """A binary stream for a shard: local files directly; ``pipe:``/http via webdataset's gopen; else fsspec."""
    if url.startswith("file://"):
        url = url[len("file://"):]
    if url.startswith("pipe:"):
        if not policy.allow_pipe:
            raise usage(DataError(pipe_refused(url)))  # exit 2: needs an opt-in flag
        return wds.gopen(url)
    if not is_remote(url):
        return open(url, "rb")
    if not policy.allow_remote:
        raise usage(DataError(remote_refused(url)))
    scheme = url.split(":", 1)[0]
    if scheme in wds.gopen_schemes:
        return wds.gopen(url)
    import fsspec

    return fsspec.open(url, "rb").open()


class _Replay:
    """A read-only stream with its first bytes, already read to sniff them, put back in front."""

    def __init__(self, head: bytes, stream):
        self.head, self.stream = head, stream

    def read(self, n: int = -1) -> bytes:
        if not self.head:
            return self.stream.read(n)
        if n is None or n < 0:
            out, self.head = self.head + self.stream.read(), b""
            return out
        out, self.head = self.head[:n], self.head[n:]
        return out

    def close(self) -> None:
        self.stream.close()

    def __str__(self) -> str:
        return str(self.stream)


def check_uncompressed(stream, url: str, policy: ReadPolicy = ReadPolicy()):
    """The stream, rewound; :class:`UnsafeShardError` if it starts with a compressor's magic bytes."""
    head = b""
    while len(head) < _MAGIC_LEN:  # pipes and sockets may return short reads
        chunk = stream.read(_MAGIC_LEN - len(head))
        if not chunk:
            break
        head += chunk
    if not policy.allow_compressed:
        for magic, name in _COMPRESSION_MAGIC:
            if magic.match(head):
                raise usage(UnsafeShardError(  # exit 2: needs an opt-in flag
                    f"{url}: {name}-compressed shard refused (it may unpack to far more than "
                    "its size); pass allow_compressed=True (relight --allow-compressed) to read it"))
    return _Replay(head, stream)


def tar_members(stream, url: str, policy: ReadPolicy = ReadPolicy(), handler=wds.reraise_exception
                ) -> Iterator[dict]:
    """The regular members of a tar stream as webdataset file dicts (``fname``, ``data``, ``__url__``).

    Replaces ``wds.tariterators.tar_file_iterator``, which has no hook for these
    checks: it opens every stream with mode ``r|*`` (decompressing whatever it is
    given), skips links and devices silently, and passes only the member's name to
    ``select_files``, so neither the member's type nor its size from the header
    reaches a check before its data is read. The same order as webdataset's:
    type, ``__meta__`` skip, name, then the data.
    """
    tf = tarfile.open(fileobj=stream, mode="r|*" if policy.allow_compressed else "r|")
    for info in tf:
        name = info.name
        if info.isdir():  # `tar cf x.tar photos/` lists its folders: they carry no data
            continue
        if not info.isreg():
            kind = ("symlink" if info.issym() else "hard link" if info.islnk() else
                    "device" if info.isdev() else "non-regular member")
            target = f" to {info.linkname!r}" if info.issym() or info.islnk() else ""
            raise UnsafeShardError(f"member {name!r}: {kind}{target} refused; shards hold regular files only "
                                   "(repack the tar without it)")
        if ("/" not in name and name.startswith("__") and name.endswith("__")) or _META_RE.match(name):
            continue
        check_member_name(name)
        if info.size > policy.max_member_bytes:
            raise UnsafeShardError(f"member {name!r}: {info.size} bytes, more than max_member_bytes="
                                   f"{policy.max_member_bytes}; not read (raise max_member_bytes, relight "
                                   "--max-member-mb, if it is expected)")
        try:
            data = tf.extractfile(info).read()
        except Exception as exn:  # a truncated member: the handler decides, as in webdataset's reader
            if handler(exn):
                continue
            break
        yield {"fname": name, "data": data, "__url__": url}
        tf.members = []  # stream mode: keep no list of every member read


def tar_samples(src: Iterable[dict], policy: ReadPolicy = ReadPolicy(), handler=wds.reraise_exception
                ) -> Iterator[dict]:
    """Pipeline stage: shard dicts ``{"url": ...}`` -> raw samples, members checked (see the module docstring).

    Opens each shard itself (webdataset's ``url_opener`` would run any
    ``pipe:`` URL and cannot reach fsspec URLs), reads members with
    :func:`tar_members` and groups them with webdataset's ``group_by_keys``;
    any error becomes a one-line :class:`DataError` naming the shard.
    """
    h = raise_unsafe(handler)
    for shard in src:
        url = shard["url"]
        try:
            stream = open_shard(url, policy)
        except DataError:
            raise
        except OSError as e:
            raise DataError(f"{url}: cannot open shard: {e.strerror or e}") from None
        try:
            files = tar_members(check_uncompressed(stream, url, policy), url, policy, h)
            yield from wds.tariterators.group_by_keys(files, handler=h)
        except UnsafeShardError as e:
            msg = _first_line(e)
            err = UnsafeShardError(msg if msg.startswith(f"{url}: ") else f"{url}: {msg}")
            err.exit_code = e.exit_code  # usage (2) when an opt-in flag would read it
            raise err from None
        except DataError:
            raise
        except Exception as e:  # tarfile.ReadError, duplicate members, truncated streams
            err = DataError(f"{url}: unreadable shard: {_first_line(e)}")
            if h(err):  # skip_bad: warn, go on with the next shard
                continue
            raise err from None
        finally:
            stream.close()


def _first_line(e: Exception) -> str:
    # webdataset appends " @ <stream>" and extra args to exceptions it passes on; keep the message
    msg = str(e.args[0]) if e.args else str(e)
    return msg.split(" @ ")[0].splitlines()[0] if msg else type(e).__name__
