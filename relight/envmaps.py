"""Target lightings for relight: load an HDR map by path or name, turn it, encode it.

Uses the catalog's readers and the shared camera-frame convention
(:mod:`assets_manifest.envmap`), never a re-implementation, so a map given
here matches the ``env_XX`` members synthgen writes.
"""

from __future__ import annotations

import numpy as np

from assets_manifest import envmap, hdri_io, procedural_hdri


def load_env(spec: str, width: int = 512) -> np.ndarray:
    """``spec`` is a path/URL to .exr/.hdr or ``procedural:STYLE:SEED`` (needs no file)."""
    if spec.startswith("procedural:"):
        parts = spec.split(":")
        if len(parts) != 3 or not parts[2].isdigit():
            raise ValueError(f"--env {spec!r}: expected procedural:STYLE:SEED, STYLE one of {', '.join(procedural_hdri.STYLES)}")
        return procedural_hdri.generate(parts[1], int(parts[2]), width).rgb
    return np.maximum(hdri_io.read_hdri(spec), 0.0)


def camera_frame_ldr(rgb: np.ndarray, rotate_deg: float = 0.0, exposure: float = 1.0, width: int = 256) -> np.ndarray:
    """The env map as a model input: turned by ``rotate_deg``, LDR-encoded, resized to ``width`` x ``width/2``."""
    from PIL import Image

    turned = envmap.rotate_azimuth(rgb, rotate_deg)
    h = turned.shape[0]
    # box-filter down in linear light before encoding, as a renderer integrates
    factor = max(h // (width // 2), 1)
    if factor > 1:
        hh, ww = (turned.shape[0] // factor) * factor, (turned.shape[1] // factor) * factor
        turned = turned[:hh, :ww].reshape(hh // factor, factor, ww // factor, factor, 3).mean(axis=(1, 3))
    img = Image.fromarray(envmap.ldr_encode(turned, exposure))
    return np.asarray(img.resize((width, width // 2), Image.BILINEAR))
