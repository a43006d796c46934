"""Per-person skin detail and the face regions the skin shader varies over (pure numpy, no bpy).

The skin shader (:func:`synthgen.render.head_materials.skin_material`) adds
freckles, redness, mottling, a shinier T-zone, rougher cheeks, pores and
fine skin texture. How much of each a person has is drawn here from the
skin parameters every head already carries (seed, albedo, blush,
roughness_variation, micro_detail): same parameters, same detail, no new
catalog fields.

Face regions (T-zone, cheeks, nose) are ellipsoids in the head frame (the
scene frame at import: metres, +Z up, face toward -Y), placed from the
eyes: their midpoint and the inter-ocular distance (IOD) come from the
eye-role parts' vertices, which every head with eyes has (procedural,
ICT-FaceKit, imported). A head without eyes gets uniform detail.
"""

from __future__ import annotations

import numpy as np

# Fitzpatrick I-II skins have albedo luminance ~0.3-0.45, V-VI ~0.05-0.12 (assets_manifest.heads.appearance)
_DARK_LUM, _LIGHT_LUM = 0.10, 0.35
_STREAM = 15  # the detail draws' own stream of the head's seed (issue 15), apart from the generator's

# Regions in face units: (x, y, z) offsets from the eye midpoint and radii, in IODs (~63 mm).
# y is depth (-y is in front of the eyes): the radii along y are wide, so a region covers the
# skin in front of it and never reaches the back of the head.
REGIONS = {
    "forehead": ((0.0, -0.3, 0.95), (1.05, 0.8, 0.5)),
    "nose": ((0.0, -0.45, -0.42), (0.3, 0.7, 0.55)),
    "chin": ((0.0, -0.35, -1.55), (0.45, 0.7, 0.3)),
    "cheek_L": ((0.72, -0.25, -0.5), (0.42, 0.7, 0.42)),
    "cheek_R": ((-0.72, -0.25, -0.5), (0.42, 0.7, 0.42)),
}
T_ZONE = ("forehead", "nose", "chin")
CHEEKS = ("cheek_L", "cheek_R")


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


def detail_params(p: dict) -> dict[str, float]:
    """How much freckling, redness, mottling, T-zone shine and pore relief this skin has.

    ``p``: the skin shader's parameters (``albedo``, ``seed``, optional ``blush``,
    ``roughness_variation``, ``micro_detail``). Freckles are likelier and denser on lighter skin;
    about half of the lightest skins and few of the darkest have any.
    """
    r, g, b = (float(c) for c in p["albedo"][:3])
    lightness = _clip01((0.2126 * r + 0.7152 * g + 0.0722 * b - _DARK_LUM) / (_LIGHT_LUM - _DARK_LUM))
    u = np.random.default_rng([int(p.get("seed", 0)), _STREAM]).random(8).tolist()
    freckled = u[0] < 0.08 + 0.47 * lightness
    micro = float(p.get("micro_detail", 0.5))
    out = {
        "freckles": (0.25 + 0.75 * u[1]) * (0.35 + 0.65 * lightness) if freckled else 0.0,
        "freckle_mm": 1.2 + 1.6 * u[2],
        # blush: the procedural heads' 0.35 * min(1, haemoglobin / 0.02)
        "redness": _clip01(float(p.get("blush", 0.35)) / 0.35 * (0.55 + 0.6 * u[3])),
        "mottle": 0.06 + 0.14 * float(p.get("roughness_variation", 0.3)) + 0.04 * u[4],
        "tzone_shine": 0.07 + 0.12 * u[5],         # roughness taken off the T-zone (oily skin)
        "tzone_specular": 0.08 + 0.12 * u[5],      # specular level added there
        "cheek_rough": 0.04 + 0.06 * u[6],         # roughness added on the cheeks
        "pore_mm": 0.15 + 0.15 * u[7],             # pore diameter
        "micro": micro,
    }
    return {k: round(v, 6) for k, v in out.items()}


def face_frame(eye_points: np.ndarray) -> dict | None:
    """``{"centre": eye midpoint, "iod": inter-ocular distance}`` from eye vertices (N, 3) in the
    head frame; None without two eyes side by side.

    Bounding-box centres (exact min/max, no sums), so the frame is the same on every CPU.
    """
    pts = np.asarray(eye_points, dtype=np.float64).reshape(-1, 3)
    if len(pts) < 2:
        return None
    mid_x = (pts[:, 0].min() + pts[:, 0].max()) / 2.0
    sides = [pts[pts[:, 0] > mid_x], pts[pts[:, 0] <= mid_x]]
    if any(len(s) == 0 for s in sides):
        return None
    left, right = ((s.min(axis=0) + s.max(axis=0)) / 2.0 for s in sides)
    iod = float(left[0] - right[0])
    if not 0.03 < iod < 0.12:  # not a pair of human eyes in metres
        return None
    centre = (left + right) / 2.0
    return {"centre": [round(float(c), 5) for c in centre], "iod": round(iod, 5)}


def face_regions(frame: dict | None) -> dict[str, tuple[list[float], list[float]]]:
    """Region name -> (centre, radii) in the head frame (metres); {} without a frame."""
    if not frame:
        return {}
    c, u = frame["centre"], frame["iod"]
    return {name: ([round(c[i] + off[i] * u, 6) for i in range(3)], [round(r * u, 6) for r in radii])
            for name, (off, radii) in REGIONS.items()}
