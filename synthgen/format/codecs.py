"""Bytes for shard members and HDR maps: sRGB PNGs, OpenEXR, canonical JSON; and the one EXR reader.

Encoders are deterministic (fixed PNG settings, EXR through the openexr
package, sorted-key JSON) so the same pixels give the same shard bytes.

Every OpenEXR file the toolkit reads goes through :func:`read_exr_channels`:
shard members (``env_XX.exr``, passes), catalog HDR maps
(:mod:`assets_manifest.hdri_io`) and Blender's multi-part pass files
(:mod:`synthgen.render.passes`). It reads every part, because Blender 5.x
writes a multi-layer EXR as one part per pass and ``OpenEXR.File.channels()``
returns the first part only. :func:`read_exr` turns those channels into one
array (Y, or the first layer with R, G and B).
"""

from __future__ import annotations

import io
import json
import os
import tempfile

import numpy as np
import OpenEXR
from PIL import Image

HALF_MAX = 65504.0  # the largest half float


class DecodeError(ValueError):
    """A file or member that cannot be decoded; the message is one line naming it."""

    exit_code = 1  # bad input data (assets_manifest.cli_errors)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear -> 8-bit sRGB (Blender's Standard view transform, exposure 0, no look)."""
    x = np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)
    y = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.round(y * 255.0).astype(np.uint8)


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def exr_bytes(arr: np.ndarray, half: bool = True) -> bytes:
    """ZIP EXR, half floats unless ``half=False``; (H, W) -> channel Y, (H, W, 3+) -> RGB."""
    if half:  # half floats top out at 65504; a sun can exceed that: clip rather than store inf
        arr = np.ascontiguousarray(np.clip(arr, -HALF_MAX, HALF_MAX), dtype=np.float16)
    else:
        arr = np.ascontiguousarray(arr, dtype=np.float32)
    channels = {"Y": arr} if arr.ndim == 2 else {"RGB": np.ascontiguousarray(arr[..., :3])}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    # openexr 3.3/3.4 cannot write to a file object: go through a temporary file
    fd, path = tempfile.mkstemp(suffix=".exr")
    os.close(fd)
    try:
        with OpenEXR.File(header, channels) as f:
            f.write(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def read_exr_channels(path: str) -> dict[str, np.ndarray]:
    """Every channel of every part of an OpenEXR file, as (H, W) float32 arrays, top row first.

    Channel names are as stored (``R``, ``Y``, ``ViewLayer.Depth.Z``, ...). A
    damaged or non-EXR file raises :class:`DecodeError` naming ``path``.
    """
    channels: dict[str, np.ndarray] = {}
    try:
        with OpenEXR.File(path, separate_channels=True) as f:
            for part in f.parts:
                for name, ch in part.channels.items():
                    channels[name] = np.asarray(ch.pixels, dtype=np.float32)
    except Exception as e:  # openexr raises RuntimeError/ValueError/... on damaged files
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DecodeError(f"{path}: unreadable OpenEXR ({msg})") from None
    return channels


def exr_image(channels: dict[str, np.ndarray], where: str, rgb: bool = False) -> np.ndarray:
    """One image from EXR channels: (H, W) for a lone Y channel, else (H, W, 3) from R, G, B.

    Layered files name channels ``layer.R``; the first layer (by name) with R,
    G and B is taken. ``rgb=True`` repeats a Y channel into (H, W, 3).
    """
    by_suffix: dict[str, np.ndarray] = {}
    for name in sorted(channels):
        by_suffix.setdefault(name.rsplit(".", 1)[-1].upper(), channels[name])
    if all(c in by_suffix for c in "RGB"):
        out = np.stack([by_suffix[c] for c in "RGB"], axis=-1)
    elif "Y" in by_suffix:
        out = np.repeat(by_suffix["Y"][..., None], 3, axis=-1) if rgb else by_suffix["Y"]
    else:
        raise DecodeError(f"{where}: OpenEXR has no R,G,B or Y channels (has {', '.join(sorted(channels))})")
    if out.ndim < 2 or out.shape[0] == 0 or out.shape[1] == 0:
        raise DecodeError(f"{where}: OpenEXR has an empty data window")
    return out.astype(np.float32, copy=False)


def read_exr(path: str, rgb: bool = False) -> np.ndarray:
    """An EXR file as one float32 image (see :func:`exr_image`)."""
    return exr_image(read_exr_channels(path), path, rgb)


def exr_from_bytes(data: bytes, where: str = "EXR member") -> np.ndarray:
    """An EXR held in memory (a shard member) as one float32 image (see :func:`exr_image`)."""
    # openexr before 3.5 reads from a file name only
    fd, path = tempfile.mkstemp(suffix=".exr")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        channels = read_exr_channels(path)
    except DecodeError as e:
        raise DecodeError(str(e).replace(path, where, 1)) from None
    finally:
        os.unlink(path)
    return exr_image(channels, where)


def json_bytes(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
