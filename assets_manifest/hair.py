"""Hair parameters of a head: scalp style, colour, hairline, brows, lashes and beard (no bpy).

Every head in a catalog carries a hair spec in ``generator_params["hair"]``
(a JSON object, version 1). The renderer grows strands from it at render time
(``synthgen.render.hair``); each sample's JSON records :func:`summary` of it.

* :func:`draw_hair` draws a spec from a seed: a plausible adult mix of styles
  (:data:`DEFAULT_MIX`), a hairline that recedes more often on masculine
  heads, greying (mostly none), a beard whose probability rises with
  masculinity, and per-person brows and lashes. The colour is the head's own
  when given (procedural heads pass their ``hair_melanin``/``hair_redness``).
* :func:`resolve` applies a job's ``[hair]`` section: off (None), another
  style mix (the style is re-picked from the spec's ``style_u`` and its
  style-dependent keys re-derived from its ``seed``, so a head keeps its seed,
  colour, hairline and beard), and the render-only keys ``facial`` and
  ``density_scale`` folded in, so the renderer reads one JSON object.

Deterministic from the seed on any CPU: numpy Generator draws and plain float
arithmetic only (no transcendental functions), values rounded to 6 decimals.

Keys (lengths in mm, the rest 0..1 unless said): ``version``, ``seed`` (strand
seed), ``style`` (:data:`STYLES`), ``style_u``, ``density``, ``length_mm``,
``clumping``, ``curl``, ``curl_radius_mm``, ``frizz``, ``parting``
(none/left/right/centre), ``tie`` (none, or bun/ponytail for ``tied_back``:
the hair is pulled back from the face and gathered at the back of the head),
``hairline`` {``recession`` (0 full .. 1 no hair on top: sides and back only),
``shape`` (straight/rounded/m/widow), ``height_mm`` (brow line to hairline at
the centre)}, ``greying`` (fraction of white strands), ``melanin``,
``redness``, ``roughness``, ``coat`` (Principled Hair BSDF), ``brows``
{``density``, ``thickness_mm`` (height of the brow band), ``length_mm`` (of one
hair), ``arch``, ``melanin``}, ``lashes`` {``length_mm``, ``count`` (per upper
lid), ``curl``}, ``beard`` {``style`` (:data:`BEARD_STYLES`), ``length_mm``,
``density``}. A resolved spec adds ``facial`` and ``density_scale``.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import numpy as np

from synthgen.format.config import ConfigError

VERSION = 1
STYLES = ("shaved", "buzz", "short", "medium", "long", "curly", "tied_back")
# a plausible adult mix: short most common, then medium, long, buzz, curly, tied back, shaved
DEFAULT_MIX: dict[str, float] = {"short": 0.30, "medium": 0.20, "long": 0.15, "buzz": 0.11, "curly": 0.10,
                                 "tied_back": 0.09, "shaved": 0.05}
BEARD_STYLES = ("none", "stubble", "moustache", "goatee", "beard")
HAIRLINE_SHAPES = ("straight", "rounded", "m", "widow")
PARTINGS = ("none", "left", "right", "centre")
TIES = ("none", "bun", "ponytail")

# style -> (length range mm, density range, clumping range, curl range, curl radius range mm, frizz range)
_STYLE_RANGES: dict[str, tuple[tuple[float, float], ...]] = {
    "shaved": ((0.3, 1.0), (0.55, 0.95), (0.0, 0.0), (0.0, 0.0), (10.0, 20.0), (0.0, 0.1)),
    "buzz": ((2.0, 6.0), (0.6, 1.0), (0.0, 0.1), (0.0, 0.1), (10.0, 20.0), (0.0, 0.15)),
    "short": ((20.0, 70.0), (0.6, 1.0), (0.2, 0.6), (0.0, 0.35), (8.0, 25.0), (0.02, 0.25)),
    "medium": ((80.0, 180.0), (0.6, 1.0), (0.3, 0.7), (0.0, 0.4), (10.0, 30.0), (0.02, 0.25)),
    "long": ((200.0, 400.0), (0.6, 1.0), (0.35, 0.8), (0.0, 0.4), (12.0, 35.0), (0.02, 0.25)),
    "curly": ((40.0, 200.0), (0.7, 1.0), (0.3, 0.7), (0.7, 1.0), (3.0, 8.0), (0.2, 0.6)),
    "tied_back": ((150.0, 350.0), (0.6, 1.0), (0.4, 0.8), (0.0, 0.3), (10.0, 30.0), (0.02, 0.2)),
}
_BEARD_WEIGHTS = {"stubble": 0.40, "moustache": 0.12, "goatee": 0.15, "beard": 0.33}
_BEARD_LENGTH = {"none": (0.0, 0.0), "stubble": (0.5, 2.0), "moustache": (5.0, 15.0), "goatee": (5.0, 30.0),
                 "beard": (8.0, 60.0)}
BALD_COVERAGE = 0.08  # = assets_manifest.heads.params.HAIR_MIN_COVERAGE (not imported: it loads the generator)
_HAIR_TAG = 0x48414952  # "HAIR": keeps hair draws apart from other draws on the same seed
_NESTED = ("hairline", "brows", "lashes", "beard")


def _r6(x: float) -> float:
    return round(float(x), 6)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi)) if hi > lo else float(lo)


def _seed_of(seed: Any, where: str = "hair seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{where} {seed!r} must be a non-negative integer")
    return int(seed)


def derive_seed(*parts: int) -> int:
    """A 31-bit hair seed from integers (a head seed, a catalog seed and index, ...)."""
    state = np.random.SeedSequence([int(p) for p in parts] + [_HAIR_TAG]).generate_state(1, np.uint32)
    return int(state[0]) & 0x7FFFFFFF


def seed_from_sha256(sha256: str) -> int:
    """A 31-bit hair seed from a file's sha256 (hex): the same file gets the same hair wherever it lies."""
    return derive_seed(int(sha256[:8], 16), int(sha256[8:16], 16))


def procedural_masculinity(head_seed: int) -> float:
    """The latent masculinity ``assets_manifest.heads.sample_head_params(head_seed)`` drew (its first draw)."""
    return float(np.random.default_rng(np.random.SeedSequence(int(head_seed))).uniform(0.0, 1.0))


def check_mix(mix: Any, where: str = "<job>", key: str = "hair.styles") -> dict[str, float]:
    """A style mix checked: style names from :data:`STYLES`, non-negative numbers, not all zero."""
    if not isinstance(mix, Mapping):
        raise ConfigError(f"{where}: {key} must be a table of style = weight (styles: {', '.join(STYLES)})")
    out = {}
    for name, w in mix.items():
        if name not in STYLES:
            raise ConfigError(f"{where}: {key}.{name}: unknown hair style (styles: {', '.join(STYLES)})")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w) or w < 0:
            raise ConfigError(f"{where}: {key}.{name} = {w!r} must be a non-negative number")
        out[name] = float(w)
    if out and sum(out.values()) <= 0:
        raise ConfigError(f"{where}: {key}: every weight is 0; give at least one style a positive weight")
    return out


def pick_style(u: float, mix: Mapping[str, float] | None = None) -> str:
    """The style at ``u`` in [0, 1) on the cumulative weights of ``mix`` (in :data:`STYLES` order)."""
    mix = DEFAULT_MIX if not mix else mix
    names = [s for s in STYLES if mix.get(s, 0.0) > 0]
    total = sum(float(mix[s]) for s in names)
    acc = 0.0
    for s in names:
        acc += float(mix[s]) / total
        if u < acc:
            return s
    return names[-1]


def _style_keys(seed: int, style: str) -> dict[str, Any]:
    """The style-dependent keys, drawn from the hair seed and the style alone (so a re-pick re-derives them)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _HAIR_TAG, 1, STYLES.index(style)]))
    length, dens, clump, curl, radius, frizz = _STYLE_RANGES[style]
    out: dict[str, Any] = {
        "length_mm": _u(rng, *length), "density": _u(rng, *dens), "clumping": _u(rng, *clump),
        "curl": _u(rng, *curl), "curl_radius_mm": _u(rng, *radius), "frizz": _u(rng, *frizz),
    }
    if style != "curly" and rng.uniform() < 0.6:  # most straight hair is straight, some wavy
        out["curl"] = out["curl"] * 0.15
    u = float(rng.uniform())
    if style in ("short", "medium", "long"):
        out["parting"] = PARTINGS[0 if u < 0.25 else 1 if u < 0.55 else 2 if u < 0.8 else 3]
    elif style == "tied_back":
        out["parting"] = "centre" if u < 0.4 else "none"
    else:
        out["parting"] = "none"
    out["tie"] = ("bun" if rng.uniform() < 0.35 else "ponytail") if style == "tied_back" else "none"
    return out


def coverage_recession(coverage: float) -> float:
    """The least recession a procedural head's ``hair_coverage`` implies: none from 0.75 up (its full-hair
    band), 1 (bald on top) below :data:`BALD_COVERAGE`, linear between."""
    return 1.0 if coverage < BALD_COVERAGE else min(1.0, max(0.0, 1.0 - coverage / 0.75))


def _hairline(rng: np.random.Generator, masc: float, coverage: float) -> dict[str, Any]:
    # recession: mostly little; more, and more often, with masculinity; a head's low coverage forces it
    recession = float(rng.beta(1.0, 10.0 - 6.0 * masc))
    if rng.uniform() < 0.35 * masc:
        recession = max(recession, _u(rng, 0.3, 0.8))
    else:
        rng.uniform()  # keep the stream in step
    recession = min(1.0, max(recession, coverage_recession(coverage)))
    u = float(rng.uniform())
    p_m = masc * (0.1 + 0.5 * min(1.0, 2.0 * recession + 0.2))
    shape = "m" if u < p_m else "widow" if u < p_m + 0.1 else "rounded" if u < p_m + 0.55 else "straight"
    height = float(np.clip(58.0 + 7.0 * rng.standard_normal(), 42.0, 75.0)) + 60.0 * recession
    return {"recession": _r6(recession), "shape": shape, "height_mm": _r6(height)}


def _beard(rng: np.random.Generator, masc: float) -> dict[str, Any]:
    p_any = min(0.8, max(0.0, 1.3 * (masc - 0.4)))
    style = "none"
    if rng.uniform() < p_any:
        style = pick_style_from(float(rng.uniform()), _BEARD_WEIGHTS)
    else:
        rng.uniform()
    lo, hi = _BEARD_LENGTH[style]
    length, density = _u(rng, lo, hi), _u(rng, 0.4, 1.0)
    if style == "none":
        density = 0.0
    return {"style": style, "length_mm": _r6(length), "density": _r6(density)}


def pick_style_from(u: float, weights: Mapping[str, float]) -> str:
    total, acc = sum(weights.values()), 0.0
    for name, w in weights.items():
        acc += w / total
        if u < acc:
            return name
    return list(weights)[-1]


def draw_hair(seed: int, *, melanin: float | None = None, redness: float | None = None,
              masculinity: float = 0.5, coverage: float = 1.0, mix: Mapping[str, float] | None = None) -> dict:
    """A hair spec (version 1, module docstring) drawn from ``seed``; same arguments, same dict.

    ``melanin``/``redness``: the head's hair colour (0..1), drawn when None; ``masculinity`` in
    [0, 1] raises recession and beard odds; ``coverage`` (a procedural head's ``hair_coverage``,
    1 = full) caps the hairline: recession is at least :func:`coverage_recession`; ``mix``: style weights
    (default :data:`DEFAULT_MIX`).
    """
    seed = _seed_of(seed)
    masc = min(1.0, max(0.0, float(masculinity)))
    coverage = min(1.0, max(0.0, float(coverage)))
    mix = check_mix(mix, "draw_hair", "mix") if mix else DEFAULT_MIX
    rng = np.random.default_rng(np.random.SeedSequence([seed, _HAIR_TAG, 0]))
    style_u = float(rng.uniform())
    style = pick_style(style_u, mix)
    drawn_mel = float(np.clip(rng.beta(2.0, 1.2), 0.05, 1.0))
    drawn_red = float(np.clip(rng.beta(1.0, 4.0), 0.0, 0.8))
    mel = drawn_mel if melanin is None else min(1.0, max(0.0, float(melanin)))
    red = drawn_red if redness is None else min(1.0, max(0.0, float(redness)))
    hairline = _hairline(rng, masc, coverage)
    # greying: none for most, partial for some, mostly white for a few
    g = float(rng.uniform())
    greying = 0.0 if g < 0.68 else _u(rng, 0.05, 0.5) if g < 0.93 else _u(rng, 0.5, 1.0)
    roughness, coat = _u(rng, 0.22, 0.42), _u(rng, 0.0, 0.12)
    brow_mel = min(1.0, mel + _u(rng, 0.0, 0.15))
    brows = {"density": _u(rng, 0.5, 1.0), "thickness_mm": _u(rng, 7.0, 12.0) + 4.0 * masc * float(rng.uniform()),
             "length_mm": _u(rng, 5.0, 11.0), "arch": min(1.0, max(0.0, _u(rng, 0.1, 0.9) - 0.25 * (masc - 0.5))),
             "melanin": brow_mel}
    lashes = {"length_mm": _u(rng, 7.0, 11.0), "count": int(rng.integers(80, 131)), "curl": _u(rng, 0.2, 0.8)}
    beard = _beard(rng, masc)
    spec: dict[str, Any] = {
        "version": VERSION, "seed": seed, "style": style, "style_u": _r6(style_u),
        **_style_keys(seed, style),
        "hairline": hairline, "greying": greying, "melanin": mel, "redness": red,
        "roughness": roughness, "coat": coat,
        "brows": {k: _r6(v) for k, v in brows.items()},
        "lashes": {k: (v if isinstance(v, int) else _r6(v)) for k, v in lashes.items()},
        "beard": beard,
    }
    return _rounded(spec)


def _rounded(spec: dict) -> dict:
    return {k: (_r6(v) if isinstance(v, float) else v) for k, v in spec.items()}


def resolve(spec: dict | None, job_hair: Any) -> dict | None:
    """The spec a group renders: None when the job's ``hair.enabled`` is false or the head has none.

    ``job_hair``: the job's ``[hair]`` section (``synthgen.job.HairSection`` or a dict with its keys).
    A non-empty ``styles`` mix re-picks the style from ``spec["style_u"]`` and re-derives the
    style-dependent keys from ``spec["seed"]``; everything else of the head stays. ``facial`` and
    ``density_scale`` are added to the result.
    """
    get = job_hair.get if isinstance(job_hair, Mapping) else (lambda k, d=None: getattr(job_hair, k, d))
    if spec is None or not get("enabled", True):
        return None
    out = copy.deepcopy(dict(spec))
    mix = check_mix(get("styles", {}) or {})
    if mix:
        style = pick_style(float(out["style_u"]), mix)
        if style != out.get("style"):
            out.update(_rounded(_style_keys(int(out["seed"]), style)), style=style)
    out["facial"] = bool(get("facial", True))
    out["density_scale"] = float(get("density_scale", 1.0))
    return out


def summary(spec: dict | None) -> dict | None:
    """What a sample's JSON records of the hair it was rendered with (None: no hair rendered)."""
    if spec is None:
        return None
    facial = spec.get("facial", True)
    beard = (spec.get("beard") or {}).get("style", "none") if facial else "none"
    return {"style": spec["style"], "length_mm": spec["length_mm"], "melanin": spec["melanin"],
            "redness": spec["redness"], "greying": spec["greying"], "beard": beard}


# ---- overrides from an imported head's sidecar ("hair": {...}) ----

_NUMBER_KEYS = ("density", "length_mm", "clumping", "curl", "curl_radius_mm", "frizz", "greying", "melanin",
                "redness", "roughness", "coat")
_UNIT_KEYS = {"density", "clumping", "curl", "frizz", "greying", "melanin", "redness", "roughness", "coat",
              "recession", "arch"}
_CHOICE_KEYS = {"style": STYLES, "parting": PARTINGS, "tie": TIES}
_NESTED_CHOICES = {("hairline", "shape"): HAIRLINE_SHAPES, ("beard", "style"): BEARD_STYLES}


def apply_overrides(spec: dict, overrides: Any, where: str) -> dict:
    """``spec`` with a sidecar's ``hair`` object applied (nested objects key by key); bad keys raise ValueError."""
    if not isinstance(overrides, Mapping):
        raise ValueError(f"{where}: hair must be false or an object of hair keys")
    out = copy.deepcopy(spec)
    for key, value in overrides.items():
        if key in _NESTED:
            if not isinstance(value, Mapping):
                raise ValueError(f"{where}: hair.{key} must be an object")
            for sub, v in value.items():
                if sub not in out[key]:
                    raise ValueError(f"{where}: hair.{key}.{sub}: unknown key (known: {', '.join(out[key])})")
                _check_value(f"hair.{key}.{sub}", v, out[key][sub], _NESTED_CHOICES.get((key, sub)), where)
                out[key][sub] = v
        elif key in _CHOICE_KEYS or key in _NUMBER_KEYS or key == "seed":
            _check_value(f"hair.{key}", value, out[key], _CHOICE_KEYS.get(key), where)
            out[key] = value
        else:
            known = sorted({*_NUMBER_KEYS, *_CHOICE_KEYS, *_NESTED, "seed"})
            raise ValueError(f"{where}: hair.{key}: unknown key (known: {', '.join(known)})")
    if "style" in overrides:
        # the given style's own keys, unless given too (a job's style mix still re-picks from style_u)
        for k, v in _style_keys(int(out["seed"]), out["style"]).items():
            if k not in overrides:
                out[k] = _r6(v) if isinstance(v, float) else v
    return out


def _check_value(key: str, value: Any, current: Any, choices: tuple[str, ...] | None, where: str) -> None:
    if choices is not None:
        if value not in choices:
            raise ValueError(f"{where}: {key} = {value!r} must be one of {', '.join(choices)}")
    elif isinstance(current, bool) or isinstance(value, bool) or not isinstance(value, (int, float)) \
            or (isinstance(current, int) and not isinstance(value, int)) or not np.isfinite(value) or value < 0:
        raise ValueError(f"{where}: {key} = {value!r} must be a non-negative "
                         f"{'integer' if isinstance(current, int) else 'number'}")
    elif key.rsplit(".", 1)[-1] in _UNIT_KEYS and value > 1:
        raise ValueError(f"{where}: {key} = {value!r} must be in [0, 1]")
