"""Target lightings for relight: load an HDR map by path or name, turn it, encode it.

Uses the catalog's readers and the shared camera-frame convention
(:mod:`assets_manifest.envmap`), never a re-implementation, so a map given
here matches the ``env_XX`` members synthgen writes.
"""

from __future__ import annotations

import numpy as np

from assets_manifest import envmap, hdri_io, procedural_hdri
from synthgen import camera_env


def load_env(spec: str, width: int = 512) -> np.ndarray:
    """``spec`` is a path/URL to .exr/.hdr or ``procedural:STYLE:SEED`` (needs no file)."""
    if spec.startswith("procedural:"):
        parts = spec.split(":")
        if len(parts) != 3 or not parts[2].isdigit():
            raise ValueError(f"--env {spec!r}: expected procedural:STYLE:SEED, STYLE one of {', '.join(procedural_hdri.STYLES)}")
        return procedural_hdri.generate(parts[1], int(parts[2]), width).rgb
    return np.maximum(hdri_io.read_hdri(spec), 0.0)


def camera_frame_ldr(rgb: np.ndarray, rotate_deg: float = 0.0, exposure: float = 1.0, width: int = 256) -> np.ndarray:
    """The env map a model sees for a portrait shot from the front: turned by ``rotate_deg``, LDR, (width/2, width, 3).

    Same code path as synthgen's ``env_XX`` members (a camera in front of the
    face, yaw 0), so a map given here matches what training saw.
    """
    env = camera_env.camera_frame_env(rgb, camera_env.FRONTAL_CAMERA, rotate_deg, width)
    return envmap.ldr_encode(env, exposure)
