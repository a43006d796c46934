"""Non-learned relighting baselines for ``relight eval``: copy the input, or transfer the light's colour.

*Colour transfer* scales the input render, per channel and in linear light,
by the ratio of the target lighting's mean irradiance to the input lighting's:

    out_c = input_c * E_c(target env) / E_c(input env)

``E`` is the irradiance a surface facing the camera receives, as a mean: the
cosine-weighted mean of the camera-frame HDR env map (the ``env_XX.exr``
members) over the hemisphere facing the camera,

    E = sum_p L_p max(0, d_p.z) dw_p / sum_p max(0, d_p.z) dw_p

with ``d_p`` and ``dw_p`` the direction and solid angle of pixel p in the
convention of :mod:`assets_manifest.envmap` (``+z`` points from the subject
toward the camera; ``d.z = cos(phi) cos(theta)``, ``dw = cos(theta) dphi
dtheta``). A constant map of value ``a`` has ``E = a``; a map lit only
behind the camera's subject (``d.z <= 0``) has ``E = 0``. It is exact for a
Lambertian surface facing the camera and captures the exposure and colour of
a lighting change, not its direction. Where an input channel's ``E`` is 0
the ratio is taken as 1 (there is nothing to scale from).

Determinism: the weights come from scalar ``math.cos`` (not numpy's SIMD
transcendentals), sums are ``math.fsum`` (correctly rounded, so independent
of order), and the sRGB transfer goes through 256-entry tables built with
scalar ``math.pow``; the output is an 8-bit sRGB image (what a PNG of the
result would hold), as a float tensor in [0, 1].
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from relight.shard_safety import DataError, ReadPolicy, decode_member, tar_samples
from synthgen.format import shard as shard_format


@lru_cache(maxsize=8)
def hemisphere_weights(height: int, width: int) -> np.ndarray:
    """(H, W) float64 weights ``max(0, d.z) dw`` of a camera-frame equirect map (``assets_manifest.envmap``)."""
    dphi, dtheta = 2 * math.pi / width, math.pi / height
    col = [max(0.0, math.cos(2 * math.pi * ((c + 0.5) / width - 0.5))) for c in range(width)]
    row = [math.cos(math.pi * (0.5 - (r + 0.5) / height)) ** 2 * dphi * dtheta for r in range(height)]
    return np.asarray(row, dtype=np.float64)[:, None] * np.asarray(col, dtype=np.float64)[None, :]


def mean_irradiance(env: np.ndarray) -> np.ndarray:
    """(3,) float64: the cosine-weighted mean of an (H, W, 3) camera-frame map over the camera-facing hemisphere."""
    env = np.asarray(env, dtype=np.float64)
    if env.ndim != 3 or env.shape[2] < 3:
        raise ValueError(f"env map of shape {env.shape}: expected (H, W, 3)")
    env = np.clip(np.nan_to_num(env[..., :3], nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)
    w = hemisphere_weights(env.shape[0], env.shape[1])
    total = math.fsum(w.ravel())
    return np.array([math.fsum((env[..., c] * w).ravel()) / total for c in range(3)])


def irradiance_ratio(e_in: np.ndarray, e_out: np.ndarray) -> np.ndarray:
    """(3,) per-channel gain ``e_out / e_in`` (1 where ``e_in`` is 0)."""
    e_in, e_out = np.asarray(e_in, dtype=np.float64), np.asarray(e_out, dtype=np.float64)
    safe = np.where(e_in > 0, e_in, 1.0)
    return np.where(e_in > 0, e_out / safe, 1.0)


def _srgb_to_linear(x: float) -> float:
    return x / 12.92 if x <= 0.04045 else math.pow((x + 0.055) / 1.055, 2.4)


# linear value of each 8-bit sRGB code, and the linear value where code k - 1 rounds up to k
# (the inverse of synthgen.format.codecs.srgb_encode, so encode(decode(k)) == k)
_DECODE = np.array([_srgb_to_linear(k / 255.0) for k in range(256)], dtype=np.float64)
_BOUNDS = np.array([_srgb_to_linear((k - 0.5) / 255.0) for k in range(1, 256)], dtype=np.float64)


def srgb_decode(x: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 1] -> linear float64: exact at 8-bit codes, linear between them (resampled images)."""
    t = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0) * 255.0
    k = np.minimum(np.floor(t).astype(np.int64), 254)
    f = t - k
    return _DECODE[k] * (1.0 - f) + _DECODE[k + 1] * f


def srgb_encode8(linear: np.ndarray) -> np.ndarray:
    """Linear float -> 8-bit sRGB codes (clipped to [0, 1]), as ``codecs.srgb_encode`` rounds them (ties go up)."""
    return np.searchsorted(_BOUNDS, np.asarray(linear, dtype=np.float64), side="right").astype(np.uint8)


def colour_transfer(inp: torch.Tensor, ratio: np.ndarray) -> torch.Tensor:
    """(B, 3, H, W) sRGB images in [0, 1] scaled per channel in linear light by ``ratio`` (B, 3)."""
    x = srgb_decode(inp.detach().cpu().double().numpy())
    gain = np.asarray(ratio, dtype=np.float64).reshape(x.shape[0], 3, 1, 1)
    out = srgb_encode8(x * gain).astype(np.float32) / np.float32(255.0)
    return torch.from_numpy(out)


def group_irradiance(urls: list[str], policy: ReadPolicy = ReadPolicy()) -> dict[str, list[np.ndarray]]:
    """Group key -> mean irradiance (3,) of each of its lightings, from the ``env_XX.exr`` members of ``urls``."""
    out: dict[str, list[np.ndarray]] = {}
    for sample in tar_samples(({"url": u} for u in urls), policy=policy):
        key = sample["__key__"]
        fields = sorted(f for f in sample if f.startswith("env_") and f.endswith(".exr"))
        values = []
        for i in range(len(fields)):
            field = shard_format.env_field(i, hdr=True)
            if field not in sample:
                raise DataError(f"{sample['__url__']}: sample {key}: no member {field}")
            try:
                env = decode_member(f".{field}", sample[field], policy.max_image_side)
            except DataError as e:
                raise type(e)(f"{sample['__url__']}: sample {key}: member {str(e).splitlines()[0]}") from None
            if env.ndim == 2:  # a grey (Y) map
                env = np.repeat(env[..., None], 3, axis=-1)
            values.append(mean_irradiance(env))
        out[key] = values
    return out
