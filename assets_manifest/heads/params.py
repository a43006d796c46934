"""Parameters of a procedural head: shape, expression and appearance.

`HeadParams` holds plain floats (plus the seed). Every parameter has a hard
range that `validate()` enforces and a narrower sampling range that
`sample_head_params()` draws from, so sampled heads stay plausible while a
user can still ask for (moderate) extremes by hand. Shape parameters are
mostly multipliers around an average adult (1.0) or 0..1 sliders.

Sampling uses numpy.random.default_rng(SeedSequence(seed)) only, and a
latent masculinity in [0, 1] that correlates jaw, brow, nose, neck and lip
parameters so that the features of one head agree with each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import appearance
from .. import portable_math as pm

PARAMS_VERSION = 2
# version 1 also had hair_volume_mm (the thickness of a painted hair cap); strand hair
# replaced the cap, and version-1 dicts load with that key ignored
OLD_PARAMS = {1: ("hair_volume_mm",)}


@dataclass(frozen=True)
class Spec:
    """Allowed range, sampling range and masculinity correlation of one parameter."""
    lo: float
    hi: float
    sample_lo: float
    sample_hi: float
    masc: float = 0.0   # shift of the sampling centre (parameter units) at masculinity 1 vs 0.5
    doc: str = ""


SPECS: dict[str, Spec] = {
    # head and face proportions
    "head_scale": Spec(0.85, 1.15, 0.93, 1.07, 0.06, "overall size (1 = 0.235 m vertex to chin)"),
    "cranium_width": Spec(0.85, 1.15, 0.93, 1.07, 0.0, "skull breadth"),
    "cranium_length": Spec(0.85, 1.15, 0.93, 1.07, 0.0, "skull length front to back"),
    "forehead_slope": Spec(0.0, 1.0, 0.1, 0.8, 0.2, "0 upright .. 1 sloping forehead"),
    "face_width": Spec(0.85, 1.15, 0.92, 1.08, 0.04, "cheekbone breadth"),
    "face_length": Spec(0.85, 1.15, 0.92, 1.08, 0.04, "height of the lower face"),
    "brow_ridge": Spec(0.0, 1.0, 0.1, 0.85, 0.3, "supraorbital ridge prominence"),
    "eye_spacing": Spec(0.88, 1.12, 0.94, 1.06, 0.0, "interpupillary distance"),
    "eye_size": Spec(0.85, 1.15, 0.92, 1.08, -0.04, "palpebral fissure size"),
    "eye_tilt": Spec(-1.0, 1.0, -0.5, 0.7, 0.0, "canthal tilt (+ outer corner up)"),
    "nose_length": Spec(0.8, 1.25, 0.9, 1.12, 0.06, "nasion to subnasale"),
    "nose_width": Spec(0.8, 1.35, 0.88, 1.2, 0.08, "alar breadth"),
    "nose_projection": Spec(0.8, 1.25, 0.88, 1.12, 0.06, "tip projection from the face"),
    "nose_bridge": Spec(0.0, 1.0, 0.1, 0.8, 0.2, "dorsal hump"),
    "nose_tip_up": Spec(-1.0, 1.0, -0.5, 0.6, -0.2, "tip rotation (+ upturned)"),
    "nostril_flare": Spec(0.0, 1.0, 0.1, 0.8, 0.1, "alar flare"),
    "cheekbones": Spec(0.0, 1.0, 0.2, 0.8, 0.0, "zygomatic prominence"),
    "cheek_fullness": Spec(0.0, 1.0, 0.1, 0.8, -0.1, "soft-tissue fullness of the cheeks"),
    "jaw_width": Spec(0.85, 1.15, 0.92, 1.08, 0.08, "bigonial breadth"),
    "jaw_angle": Spec(0.0, 1.0, 0.2, 0.8, 0.25, "0 rounded .. 1 square jaw"),
    "chin_projection": Spec(-1.0, 1.0, -0.5, 0.5, 0.2, "chin forward (+) or back (-)"),
    "chin_width": Spec(0.8, 1.2, 0.9, 1.1, 0.1, "chin breadth"),
    "mouth_width": Spec(0.85, 1.15, 0.92, 1.08, 0.02, "distance between mouth corners"),
    "upper_lip": Spec(0.6, 1.4, 0.75, 1.25, -0.2, "upper lip fullness"),
    "lower_lip": Spec(0.6, 1.4, 0.75, 1.25, -0.15, "lower lip fullness"),
    "ear_size": Spec(0.85, 1.2, 0.92, 1.1, 0.05, "ear length"),
    "ear_protrusion": Spec(0.0, 1.0, 0.0, 0.7, 0.0, "how far the ears stand off"),
    "neck_width": Spec(0.85, 1.2, 0.92, 1.1, 0.08, "neck girth"),
    "shoulder_width": Spec(0.85, 1.2, 0.92, 1.1, 0.08, "shoulder breadth"),
    # expression
    "smile": Spec(0.0, 1.0, 0.0, 0.8, 0.0, "closed-mouth smile"),
    "jaw_open": Spec(0.0, 1.0, 0.0, 0.6, 0.0, "mouth opening"),
    "eyelid_closure": Spec(0.0, 1.0, 0.0, 0.45, 0.0, "0 open .. 1 closed"),
    "gaze_yaw": Spec(-20.0, 20.0, -10.0, 10.0, 0.0, "degrees, + toward the head's left"),
    "gaze_pitch": Spec(-15.0, 15.0, -6.0, 6.0, 0.0, "degrees, + up"),
    # appearance
    "melanin": Spec(0.005, 0.5, 0.008, 0.45, 0.0, "epidermal melanin volume fraction"),
    "haemoglobin": Spec(0.001, 0.1, 0.01, 0.05, 0.0, "dermal blood volume fraction"),
    "roughness": Spec(0.2, 0.8, 0.45, 0.65, 0.0, "mean specular roughness"),
    "roughness_variation": Spec(0.0, 1.0, 0.1, 0.6, 0.0, "spatial roughness variation"),
    "subsurface_radius_mm": Spec(0.3, 5.0, 1.0, 2.5, 0.0, "mean free path of red light, mm"),
    "subsurface_weight": Spec(0.0, 1.0, 0.6, 1.0, 0.0, "Principled subsurface weight"),
    "micro_detail": Spec(0.0, 1.0, 0.2, 0.8, 0.0, "pore / wrinkle bump strength"),
    "iris_melanin": Spec(0.0, 1.0, 0.0, 1.0, 0.0, "0 blue .. 1 dark brown"),
    "hair_melanin": Spec(0.0, 1.0, 0.05, 1.0, 0.0, "0 white/blond .. 1 black"),
    "hair_redness": Spec(0.0, 1.0, 0.0, 0.8, 0.0, "pheomelanin share"),
    "hair_coverage": Spec(0.0, 1.0, 0.0, 1.0, 0.0, "0 bald .. 1 full hairline (the scalp region)"),
}

SHAPE_PARAMS = tuple(list(SPECS)[:29])
EXPRESSION_PARAMS = tuple(list(SPECS)[29:34])
APPEARANCE_PARAMS = tuple(list(SPECS)[34:])

# Below this coverage the head counts as bald; its scalp part keeps this minimal hairline.
HAIR_MIN_COVERAGE = 0.08


def _check_seed(seed) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"head param 'seed'={seed!r} must be a non-negative integer")


@dataclass
class HeadParams:
    """All parameters of one head; ranges and meanings are in `SPECS`.

    `seed` drives the small random variations of geometry and materials
    that are not parameters themselves (skin noise offsets, iris pattern).
    """

    seed: int = 0
    head_scale: float = 1.0
    cranium_width: float = 1.0
    cranium_length: float = 1.0
    forehead_slope: float = 0.4
    face_width: float = 1.0
    face_length: float = 1.0
    brow_ridge: float = 0.4
    eye_spacing: float = 1.0
    eye_size: float = 1.0
    eye_tilt: float = 0.1
    nose_length: float = 1.0
    nose_width: float = 1.0
    nose_projection: float = 1.0
    nose_bridge: float = 0.3
    nose_tip_up: float = 0.1
    nostril_flare: float = 0.4
    cheekbones: float = 0.5
    cheek_fullness: float = 0.4
    jaw_width: float = 1.0
    jaw_angle: float = 0.5
    chin_projection: float = 0.0
    chin_width: float = 1.0
    mouth_width: float = 1.0
    upper_lip: float = 1.0
    lower_lip: float = 1.0
    ear_size: float = 1.0
    ear_protrusion: float = 0.3
    neck_width: float = 1.0
    shoulder_width: float = 1.0
    smile: float = 0.0
    jaw_open: float = 0.0
    eyelid_closure: float = 0.0
    gaze_yaw: float = 0.0
    gaze_pitch: float = 0.0
    melanin: float = 0.05
    haemoglobin: float = 0.02
    roughness: float = 0.45
    roughness_variation: float = 0.3
    subsurface_radius_mm: float = 1.5
    subsurface_weight: float = 0.8
    micro_detail: float = 0.5
    iris_melanin: float = 0.5
    hair_melanin: float = 0.7
    hair_redness: float = 0.1
    hair_coverage: float = 0.8

    def validate(self) -> "HeadParams":
        """Raise ValueError naming the first parameter outside its allowed range."""
        _check_seed(self.seed)
        for name, spec in SPECS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise ValueError(f"head param '{name}'={value!r} is not a number")
            v = float(value)
            if not math.isfinite(v) or v < spec.lo or v > spec.hi:
                raise ValueError(f"head param '{name}'={value!r} out of range [{spec.lo}, {spec.hi}]")
        return self

    def to_dict(self) -> dict:
        """Plain JSON-able dict: params_version, seed and every parameter."""
        d: dict = {"params_version": PARAMS_VERSION, "seed": int(self.seed)}
        d.update({name: float(getattr(self, name)) for name in SPECS})
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "HeadParams":
        """Inverse of to_dict; unknown keys are an error, missing ones take defaults."""
        version = d.get("params_version", PARAMS_VERSION)
        if version != PARAMS_VERSION and version not in OLD_PARAMS:
            raise ValueError(f"head params_version {version!r} not supported (expected {PARAMS_VERSION})")
        dropped = OLD_PARAMS.get(version, ())
        known = set(SPECS) | {"seed", "params_version"} | set(dropped)
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise ValueError("unknown head param(s): " + ", ".join(repr(k) for k in unknown))
        kwargs = {k: v for k, v in d.items() if k not in known - set(SPECS) - {"seed"}}
        return cls(**kwargs).validate()

    def materials(self) -> dict:
        """Derived material colours (linear RGB) and flags, recorded beside the params."""
        skin = appearance.skin_albedo(self.melanin, self.haemoglobin)
        return {
            "skin_albedo": skin,
            "lip_albedo": appearance.lip_albedo(skin, self.haemoglobin),
            "iris_albedo": appearance.iris_albedo(self.iris_melanin),
            "hair_albedo": appearance.hair_albedo(self.hair_melanin, self.hair_redness),
            "fitzpatrick_type": appearance.fitzpatrick_type(self.melanin),
            "subsurface_radius_rgb_mm": [round(self.subsurface_radius_mm * c, 5) for c in (1.0, 0.37, 0.18)],
            "has_hair": bool(self.hair_coverage >= HAIR_MIN_COVERAGE),
        }


def sample_head_params(seed: int) -> "HeadParams":
    """Draw a plausible head from `seed` (a non-negative int); same seed, same head."""
    _check_seed(seed)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
    masc = float(rng.uniform(0.0, 1.0))
    values: dict[str, float] = {}
    for name, spec in SPECS.items():
        z = float(rng.standard_normal())
        mid = 0.5 * (spec.sample_lo + spec.sample_hi)
        half = 0.5 * (spec.sample_hi - spec.sample_lo)
        # tanh keeps draws inside the sampling range without piling them on its ends
        offset = spec.masc * (masc - 0.5) * 2.0 + 0.55 * half * z
        # portable tanh/exp/log: numpy's SIMD ones can differ in the last bit per CPU
        values[name] = mid + half * float(pm.tanh(offset / half))
    rng.standard_normal()  # was hair_volume_mm's draw: kept so every seed keeps its other values
    # skin: a Fitzpatrick type uniformly, then a melanin fraction inside its band
    fitz = int(rng.integers(1, 7))
    edges = appearance.FITZPATRICK_MELANIN_EDGES
    lo, hi = max(edges[fitz - 1], SPECS["melanin"].sample_lo), min(edges[fitz], SPECS["melanin"].sample_hi)
    values["melanin"] = float(rng.uniform(lo, hi))
    values["haemoglobin"] = float(pm.exp(rng.uniform(float(pm.log(0.01)), float(pm.log(0.05)))))
    # darker skin goes with darker irises and hair, more often than not
    dark = (fitz - 1) / 5.0
    values["iris_melanin"] = float(np.clip(rng.beta(1.2, 1.2) * (1 - dark) + dark * rng.uniform(0.7, 1.0), 0, 1))
    values["hair_melanin"] = float(np.clip(rng.beta(2.0, 1.2) * (1 - dark) + dark * rng.uniform(0.85, 1.0), 0.05, 1.0))
    values["hair_redness"] = float(np.clip(rng.beta(1.0, 4.0) * (1 - dark), 0.0, 0.8))
    # coverage: mostly full, sometimes receding, sometimes bald (more often for masculine heads)
    u = float(rng.uniform())
    if u < 0.08 + 0.12 * masc:
        values["hair_coverage"] = 0.0
    elif u < 0.15 + 0.25 * masc:
        values["hair_coverage"] = float(rng.uniform(0.3, 0.6))
    else:
        values["hair_coverage"] = float(rng.uniform(0.75, 1.0))
    values = {k: round(v, 6) for k, v in values.items()}
    return HeadParams(seed=int(seed), **values).validate()
