"""The rules an asset must pass, shared by ``scan`` (before listing) and ``validate`` (after).

Each check returns problems as one-line strings that name the file; an
empty list means the asset is good.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from assets_manifest import axes
from assets_manifest.schema import has_scheme

MIN_HDRI_HEIGHT = 16
# Real captures carry tiny negatives from demosaicing and merging (the Poly
# Haven maps bpy ships go down to -0.002). Those are noise, clamped at use;
# anything below this is a broken file.
NEGATIVE_TOLERANCE = 0.01
# A bust is ~0.25-0.7 m across once its units are applied (assets_manifest.axes).
# Centimetre or millimetre assets without a ``units`` declaration would render
# as giants; say so instead of framing nothing.
HEAD_DIAGONAL_RANGE_M = (0.05, 5.0)
MAX_HEAD_FACES = 5_000_000


def check_hdri(uri: str, rgb: np.ndarray) -> list[str]:
    h, w = rgb.shape[:2]
    problems = []
    finite = np.isfinite(rgb)
    if not finite.all():
        bad = int((~finite).any(axis=-1).sum())
        problems.append(f"{uri}: {bad} pixel(s) are NaN or Inf")
    negative = (rgb < -NEGATIVE_TOLERANCE) & finite
    if negative.any():
        bad = int(negative.any(axis=-1).sum())
        problems.append(f"{uri}: {bad} pixel(s) are negative, down to {float(rgb[negative].min()):.4g} (radiance must be >= 0)")
    if w != 2 * h:
        problems.append(f"{uri}: {w}x{h} is not 2:1 (an equirectangular map must be twice as wide as high)")
    elif h < MIN_HDRI_HEIGHT:
        problems.append(f"{uri}: {w}x{h} is too small (at least {2 * MIN_HDRI_HEIGHT}x{MIN_HDRI_HEIGHT})")
    if finite.all() and float(np.max(rgb, initial=0.0)) <= 0.0:
        problems.append(f"{uri}: the map is black (no light)")
    return problems


def check_head(uri: str, info: dict[str, Any], place: dict[str, Any] | None = None) -> list[str]:
    """``place``: the units and axes in force (:func:`assets_manifest.axes.placement`); size and facing
    are checked after applying them. ``info["_points"]``, when present, are the stored vertices."""
    problems = []
    scale = place["unit_scale"] if place else 1.0
    if info["faces"] == 0 or info["vertices"] == 0:
        return [f"{uri}: mesh is empty (no faces)"]
    if info["faces"] > MAX_HEAD_FACES:
        problems.append(f"{uri}: {info['faces']} faces is more than {MAX_HEAD_FACES}; decimate it first")
    diag = scale * float(np.linalg.norm(np.subtract(info["bbox_max"], info["bbox_min"])))
    lo, hi = HEAD_DIAGONAL_RANGE_M
    if not lo <= diag <= hi:
        units = f"units {scale:g} m" if place else "metres"
        hint = (' (centimetres or millimetres? declare them in a sidecar, e.g. {"units": "cm"})'
                if diag > hi else "")
        problems.append(f"{uri}: bounding-box diagonal {diag:.4g} m (in {units}) is outside [{lo}, {hi}] m{hint}")
    elif place is not None:
        facing = axes.facing_problem(info.get("_points"), place, uri)
        if facing:
            problems.append(facing)
    for tex in info.get("textures", []):
        t = tex["uri"]
        if t.startswith("embedded:missing"):
            problems.append(f"{uri}: {tex['role']} texture points at a glTF image that does not exist")
        elif not t.startswith("embedded:") and not has_scheme(t) and not os.path.exists(t):
            problems.append(f"{uri}: {tex['role']} texture {t} is missing")
    return problems
