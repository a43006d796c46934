"""Read and write HDR environment maps: OpenEXR and Radiance ``.hdr``.

Everything comes back as float32 linear RGB, shape (H, W, 3). Remote URIs are
copied to a local temporary file first (OpenEXR reads from a filename only).

OpenEXR is read and encoded by :mod:`synthgen.format.codecs` (the toolkit's one
EXR reader) and files are published by :mod:`synthgen.format.atomic`. Radiance
RGBE is read and written here in numpy: the format is a dozen lines of spec, and the libraries
that read it (OpenCV, OpenImageIO, imageio's FreeImage plugin) are large,
pull numpy 2 or download a binary at run time, all bad trades for one format.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from typing import Iterator

import fsspec
import numpy as np

from assets_manifest.schema import AssetError, has_scheme
from synthgen.format import atomic, codecs

HDRI_SUFFIXES = (".exr", ".hdr")


@contextlib.contextmanager
def local_path(uri: str, suffix: str = "") -> Iterator[str]:
    if not has_scheme(uri) or uri.startswith("file://"):
        yield uri.removeprefix("file://")
        return
    with tempfile.TemporaryDirectory() as tmp:
        dst = os.path.join(tmp, "asset" + suffix)
        with fsspec.open(uri, "rb") as src, open(dst, "wb") as out:
            shutil.copyfileobj(src, out)
        yield dst


def read_hdri(uri: str) -> np.ndarray:
    suffix = os.path.splitext(uri)[1].lower()
    if suffix not in HDRI_SUFFIXES:
        raise AssetError(f"{uri}: not an HDR map (expected {', '.join(HDRI_SUFFIXES)})")
    with local_path(uri, suffix) as path:
        if not os.path.exists(path):
            raise AssetError(f"{uri}: file not found")
        return read_exr(path) if suffix == ".exr" else read_radiance_hdr(path)


def read_exr(path: str) -> np.ndarray:
    """(H, W, 3): the first layer with R, G and B (layered files name channels "layer.R"), or Y repeated."""
    try:
        return codecs.read_exr(path, rgb=True)
    except codecs.DecodeError as e:
        raise AssetError(str(e)) from None


def write_exr(path: str, rgb: np.ndarray, half: bool = True) -> str:
    """Write RGB as a ZIP-compressed EXR (half floats, clipped to +-65504, by default), atomically."""
    return atomic.write_bytes(path, codecs.exr_bytes(np.asarray(rgb)[..., :3], half=half))


_RES_RE = re.compile(rb"^([-+])Y (\d+) ([-+])X (\d+)$")


def read_radiance_hdr(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        data = f.read()
    if not (data.startswith(b"#?RADIANCE") or data.startswith(b"#?RGBE")):
        raise AssetError(f"{path}: not a Radiance HDR file (missing #?RADIANCE header)")
    end = data.find(b"\n\n")
    if end < 0:
        raise AssetError(f"{path}: truncated Radiance header")
    header = data[:end].split(b"\n")
    fmt = [h for h in header if h.startswith(b"FORMAT=")]
    if fmt and fmt[0] != b"FORMAT=32-bit_rle_rgbe":
        raise AssetError(f"{path}: unsupported Radiance {fmt[0].decode(errors='replace')} (only RGBE)")
    nl = data.find(b"\n", end + 2)
    m = _RES_RE.match(data[end + 2 : nl].strip())
    if not m or m.group(1) != b"-" or m.group(3) != b"+":
        raise AssetError(f"{path}: unsupported Radiance resolution line (only '-Y H +X W')")
    h, w = int(m.group(2)), int(m.group(4))
    buf = np.frombuffer(data, dtype=np.uint8, offset=nl + 1)
    rgbe = _decode_rgbe(buf, h, w, path)
    return _rgbe_to_float(rgbe)


def _decode_rgbe(buf: np.ndarray, h: int, w: int, path: str) -> np.ndarray:
    out = np.empty((h, w, 4), dtype=np.uint8)
    pos = 0
    try:
        for y in range(h):
            new_rle = 8 <= w < 0x8000 and buf[pos] == 2 and buf[pos + 1] == 2 and not (buf[pos + 2] & 0x80)
            if not new_rle:  # flat scanline (or old-style RLE, which we reject below)
                line = buf[pos : pos + 4 * w]
                if line.size < 4 * w:
                    raise IndexError
                out[y] = line.reshape(w, 4)
                pos += 4 * w
                continue
            if (int(buf[pos + 2]) << 8 | int(buf[pos + 3])) != w:
                raise AssetError(f"{path}: corrupt Radiance scanline {y} (width mismatch)")
            pos += 4
            for c in range(4):
                x = 0
                while x < w:
                    count = int(buf[pos])
                    pos += 1
                    if count > 128:
                        count -= 128
                        if x + count > w:
                            raise AssetError(f"{path}: corrupt Radiance run in scanline {y}")
                        out[y, x : x + count, c] = buf[pos]
                        pos += 1
                    else:
                        if count == 0 or x + count > w:
                            raise AssetError(f"{path}: corrupt Radiance run in scanline {y}")
                        chunk = buf[pos : pos + count]
                        if chunk.size < count:
                            raise IndexError
                        out[y, x : x + count, c] = chunk
                        pos += count
                    x += count
    except IndexError:
        raise AssetError(f"{path}: truncated Radiance pixel data ({h}x{w} expected)") from None
    return out


def _rgbe_to_float(rgbe: np.ndarray) -> np.ndarray:
    e = rgbe[..., 3].astype(np.int32)
    scale = np.where(e == 0, 0.0, np.ldexp(1.0, e - 136)).astype(np.float32)
    return rgbe[..., :3].astype(np.float32) * scale[..., None]


def write_radiance_hdr(path: str, rgb: np.ndarray) -> str:
    """Write flat (uncompressed) RGBE scanlines; every reader accepts them."""
    rgb = np.maximum(np.asarray(rgb[..., :3], dtype=np.float64), 0.0)
    h, w = rgb.shape[:2]
    peak = rgb.max(axis=-1)
    mant, expo = np.frexp(peak)
    scale = np.where(peak > 1e-32, mant * 256.0 / np.where(peak > 1e-32, peak, 1.0), 0.0)
    rgbe = np.zeros((h, w, 4), dtype=np.uint8)
    rgbe[..., :3] = np.clip(rgb * scale[..., None], 0, 255).astype(np.uint8)
    rgbe[..., 3] = np.where(peak > 1e-32, expo + 128, 0).astype(np.uint8)
    header = f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {h} +X {w}\n".encode()
    atomic.write_bytes(path, header + rgbe.tobytes())
    return path
