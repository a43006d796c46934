"""Which side of the face a lighting brightens: the measurement behind "the light turns the right way".

Two numbers in [-1, 1], positive toward image right:

* ``side_balance(image, mask)``: (R - L) / (R + L) of the mean luminance of the
  mask's right and left halves, split at the mask's centroid column (so a head
  off-centre or turned is still split through its middle).
* ``light_side(env)``: the x component of the mean light direction over the
  hemisphere facing the camera, weighted by luminance and ``max(0, d.z)``,
  for a camera-frame map in :mod:`assets_manifest.envmap`'s convention, where
  ``+x`` is image right (``synthgen.camera_env.camera_ray_directions``). A
  light at image right gives a positive value.

A relit face whose ``side_balance`` follows the target renders' (``relight
eval``'s "left/right agreement") or its lighting's ``light_side`` (``relight
infer`` with ``--rotations``) turns its light the right way.
"""

from __future__ import annotations

import numpy as np
import torch

from assets_manifest import envmap

LUMA = tuple(float(x) for x in envmap.LUMA_709)


def side_balance(image: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """(B,) right-minus-left luminance balance of (B, 3, H, W) images in [0, 1] inside (B, 1, H, W) masks."""
    img = image.float()
    b, _, h, w = img.shape
    m = torch.ones(b, 1, h, w) if mask is None else mask.float().to(img.device)
    luma = (img * torch.tensor(LUMA, device=img.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    cols = torch.arange(w, dtype=torch.float32, device=img.device).view(1, 1, 1, w) + 0.5
    centre = (m * cols).sum((1, 2, 3)) / m.sum((1, 2, 3)).clamp_min(eps)
    right = (cols > centre.view(b, 1, 1, 1)).float() * m
    left = m - right
    r = (luma * right).sum((1, 2, 3)) / right.sum((1, 2, 3)).clamp_min(eps)
    l_ = (luma * left).sum((1, 2, 3)) / left.sum((1, 2, 3)).clamp_min(eps)
    return (r - l_) / (r + l_).clamp_min(eps)


def light_side(env: np.ndarray) -> float:
    """x of the luminance-weighted mean light direction toward the camera side of an (H, W, 3) camera-frame map."""
    env = np.clip(np.nan_to_num(np.asarray(env, dtype=np.float64)[..., :3]), 0.0, None)
    h, w = env.shape[:2]
    d = envmap.directions(h, w)
    weight = (env @ np.asarray(LUMA)) * np.clip(d[..., 2], 0.0, None) * envmap.solid_angles(h, w)
    total = weight.sum()
    return float((weight * d[..., 0]).sum() / total) if total > 0 else 0.0


def correlation(a, b) -> float:
    """Pearson correlation of two sequences (nan when either is constant)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
