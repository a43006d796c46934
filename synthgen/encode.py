"""Bytes for shard members: sRGB PNGs, half-float EXRs, canonical JSON.

Encoders are deterministic (fixed PNG settings, EXR through the openexr
package, sorted-key JSON) so the same pixels give the same shard bytes.
"""

from __future__ import annotations

import io
import json
import os
import tempfile

import numpy as np
import OpenEXR
from PIL import Image


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear -> 8-bit sRGB (Blender's Standard view transform, exposure 0, no look)."""
    x = np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)
    y = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.round(y * 255.0).astype(np.uint8)


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def exr_bytes(arr: np.ndarray) -> bytes:
    """Half-float ZIP EXR; (H, W) -> channel Y, (H, W, 3) -> RGB."""
    # half floats top out at 65504; a sun can exceed that: clip rather than store inf
    arr = np.ascontiguousarray(np.clip(arr, -65504.0, 65504.0), dtype=np.float16)
    channels = {"Y": arr} if arr.ndim == 2 else {"RGB": arr[..., :3]}
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


def exr_from_bytes(data: bytes) -> np.ndarray:
    fd, path = tempfile.mkstemp(suffix=".exr")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        with OpenEXR.File(path, separate_channels=True) as f:
            ch = {k: np.asarray(v.pixels) for k, v in f.channels().items()}
    finally:
        os.unlink(path)
    if "Y" in ch and len(ch) == 1:
        return ch["Y"].astype(np.float32)
    return np.stack([ch["R"], ch["G"], ch["B"]], axis=-1).astype(np.float32)


def json_bytes(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
