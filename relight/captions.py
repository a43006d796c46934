"""Captions for relighting samples, generated from their metadata: deterministic, no model.

``synthetic_caption(meta, j, light_dir)`` describes the subject from the
head's generator parameters (skin tone from epidermal melanin via the
Fitzpatrick bands, hair colour, smile) and the target lighting ``j`` from the
map's name (``hdri_name``; the file stem of ``hdri_uri`` in ``relight-wds/1``
samples: ``studio_3`` -> "studio softboxes", ``sunset`` -> "sunset
light") and, when given, its dominant direction in the camera frame:

    "a portrait of a person with fair skin and auburn hair, smiling, lit from the upper right by studio softboxes"

Left and right are the *image's* (DESIGN.md camera frame: azimuth +90 is
image right), not the subject's. Heads without generator parameters get
"a portrait of a person"; unknown map names get "environment light". Same
metadata, same caption.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import numpy as np

from assets_manifest import envmap
from synthgen.format import shard as shard_format

GENERIC_SYNTHETIC = "a portrait of a person"
GENERIC_REAL = "a portrait photo of a person"

# Copied from assets_manifest.heads.appearance.FITZPATRICK_MELANIN_EDGES (importing
# that package pulls in trimesh, ~0.7 s, in every loader worker); a test keeps them equal.
FITZPATRICK_MELANIN_EDGES = (0.0, 0.035, 0.07, 0.12, 0.19, 0.30, 0.50)
SKIN_WORDS = {1: "very fair", 2: "fair", 3: "light", 4: "olive", 5: "brown", 6: "dark brown"}
HAIR_MIN_COVERAGE = 0.08  # assets_manifest.heads.params.HAIR_MIN_COVERAGE

PROCEDURAL_LIGHT = {
    "studio": "studio softboxes",
    "clear_sky": "a clear sky and the sun",
    "hazy_sky": "a hazy sun",
    "overcast": "an overcast sky",
    "rim": "coloured rim lights",
}
NAMED_LIGHT = {  # the maps bpy ships (assets_manifest.builtin copies them to hdri/blender/)
    "city": "city light", "courtyard": "a sunlit courtyard", "forest": "forest light",
    "interior": "indoor window light", "night": "night-time light", "studio": "studio light",
    "sunrise": "sunrise light", "sunset": "sunset light",
}


def skin_words(melanin: float) -> str:
    for t in range(6):
        if melanin < FITZPATRICK_MELANIN_EDGES[t + 1]:
            return SKIN_WORDS[t + 1]
    return SKIN_WORDS[6]


def hair_words(p: dict[str, Any]) -> str | None:
    if "hair_melanin" not in p:
        return None
    if p.get("hair_coverage", 1.0) < HAIR_MIN_COVERAGE:
        return "a shaved head"
    m, red = p["hair_melanin"], p.get("hair_redness", 0.0)
    if m < 0.12:
        colour = "platinum blond"
    elif m < 0.35:
        colour = "strawberry blond" if red > 0.5 else "blond"
    elif m < 0.6:
        colour = "auburn" if red > 0.5 else "light brown"
    elif m < 0.85:
        colour = "chestnut" if red > 0.5 else "brown"
    else:
        colour = "black"
    return f"{colour} hair"


def light_source_words(name: str | None) -> str:
    """Words for an HDRI from its catalog name (a file stem: ``overcast_0003``, ``sunset``)."""
    stem = (name or "").lower()
    style = stem.rsplit("_", 1)[0] if stem.rsplit("_", 1)[-1].isdigit() else stem
    return PROCEDURAL_LIGHT.get(style) or NAMED_LIGHT.get(stem) or "environment light"


def direction_words(azimuth_deg: float, elevation_deg: float) -> str:
    """'the front', 'the upper left', 'behind', 'above' ... (image left/right)."""
    if elevation_deg > 60:
        return "above"
    a = abs(azimuth_deg)
    side = "right" if azimuth_deg > 0 else "left"
    if a < 30:
        horiz = "the front"
    elif a <= 150:
        horiz = f"the {side}"
    else:
        return "behind, from above" if elevation_deg > 30 else "behind"
    if elevation_deg > 30:
        return "above" if horiz == "the front" else f"the upper {side}"
    if elevation_deg < -30:
        return "below" if horiz == "the front" else f"the lower {side}"
    return horiz


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return envmap.directions(h, w).astype(np.float32), envmap.solid_angles(h, w).astype(np.float32)


def light_direction(env_ldr: np.ndarray, min_strength: float = 0.15) -> tuple[float, float] | None:
    """Dominant (azimuth, elevation) in degrees of a camera-frame LDR env (H, W, 3) uint8, or None if diffuse.

    Radiance is approximated by undoing the DESIGN.md LDR encoding (x ** 2.2);
    the direction is the solid-angle and luminance weighted mean of the pixel
    directions. ``None`` when its length is under ``min_strength`` (light
    from everywhere: no useful direction to name).
    """
    dirs, omega = _grid(*env_ldr.shape[:2])
    lum = envmap.luminance((np.asarray(env_ldr, dtype=np.float32) / 255.0) ** 2.2) * omega
    total = float(lum.sum())
    if total <= 0:
        return None
    mean = np.tensordot(lum, dirs, axes=([0, 1], [0, 1])) / total
    if float(np.linalg.norm(mean)) < min_strength:
        return None
    return envmap.azimuth_elevation(mean)


def head_params(meta: dict[str, Any]) -> dict[str, Any]:
    raw = (meta.get("head") or {}).get("params")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


def _expression(p: dict[str, Any], procedural: str, arkit: tuple[str, ...]) -> float:
    """A procedural head's expression parameter, or an imported head's largest ARKit weight for it
    (ICT-FaceKit heads record ``expression_weights`` by ARKit blendshape name)."""
    weights = p.get("expression_weights") if isinstance(p.get("expression_weights"), dict) else {}
    values = [p.get(procedural, 0.0)] + [weights.get(name, 0.0) for name in arkit]
    return max(float(v) for v in values if isinstance(v, (int, float)))


def subject_words(meta: dict[str, Any]) -> str:
    p = head_params(meta)
    appearance = p.get("appearance") if isinstance(p.get("appearance"), dict) else {}
    traits = []
    melanin = p.get("melanin", appearance.get("melanin"))  # imported heads keep their skin model under appearance
    if isinstance(melanin, (int, float)) and math.isfinite(melanin):
        traits.append(f"{skin_words(float(melanin))} skin")
    hair = hair_words(p)  # a procedural head's; an imported head's appearance has no hair of its own
    if hair:
        traits.append(hair)
    out = GENERIC_SYNTHETIC + (" with " + " and ".join(traits) if traits else "")
    if _expression(p, "smile", ("mouthSmile_L", "mouthSmile_R")) > 0.4:
        out += ", smiling"
    if _expression(p, "jaw_open", ("jawOpen",)) > 0.4:
        out += ", mouth open"
    return out


def synthetic_caption(meta: dict[str, Any], j: int, light_dir: tuple[float, float] | None = None) -> str:
    """Caption for the render of ``meta`` (a sample's ``json``) under lighting ``j``."""
    lightings = meta.get("lightings") or []
    name = shard_format.hdri_name(lightings[j]) if 0 <= j < len(lightings) else None
    lit = "lit " + (f"from {direction_words(*light_dir)} " if light_dir else "") + f"by {light_source_words(name)}"
    return f"{subject_words(meta)}, {lit}"


def real_caption(sidecar: Any = None) -> str:
    """Caption of a real portrait: its sidecar text, a JSON sidecar's ``caption``/``text``, else generic."""
    if isinstance(sidecar, str) and sidecar.strip():
        return " ".join(sidecar.split())
    if isinstance(sidecar, dict):
        for key in ("caption", "text", "prompt"):
            if isinstance(sidecar.get(key), str) and sidecar[key].strip():
                return " ".join(sidecar[key].split())
    return GENERIC_REAL
