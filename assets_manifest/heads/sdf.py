"""Signed-distance primitives and a narrow-band marching-cubes mesher.

All functions take points as an (N, 3) float array (float32 in the mesher:
half the memory traffic, and 4e-8 m resolution is plenty) and return (N,) signed
distances (negative inside), in metres. The primitives are the usual
bounds (Quilez's ellipsoid, tapered capsules) rather than exact distances; the
mesher only needs them to be roughly 1-Lipschitz near the surface.

`mesh_sdf` samples the field on a coarse grid first, then evaluates the fine
grid only inside blocks the surface can pass through (and, away from
`detail` boxes, interpolates it from a grid twice as coarse), so a 1.4 mm
grid over a whole bust costs well under a million evaluations.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .. import portable_math as pm

SDF = Callable[[np.ndarray], np.ndarray]


def length(v: np.ndarray) -> np.ndarray:
    # not einsum: its SIMD sum-of-products rounds differently per CPU (see portable_math)
    return pm.length(v)


def smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth union; k is the blend width in metres."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth intersection (smooth subtraction is smax(a, -b, k))."""
    return -smin(-a, -b, k)


def rot_x(deg: float) -> np.ndarray:
    s, c = pm.sincos(pm.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    s, c = pm.sincos(pm.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(deg: float) -> np.ndarray:
    s, c = pm.sincos(pm.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def to_local(p: np.ndarray, center, rot: np.ndarray | None = None) -> np.ndarray:
    """Coordinates of p in a frame at `center` whose axes are the columns of `rot`."""
    q = p - np.asarray(center, dtype=p.dtype)
    return q if rot is None else pm.matmul(q, rot)   # not `@`: BLAS kernels differ per CPU


def ellipsoid(p: np.ndarray, center, radii, rot: np.ndarray | None = None) -> np.ndarray:
    q = to_local(p, center, rot)
    r = np.asarray(radii, dtype=p.dtype)
    k0 = length(q / r)
    k1 = length(q / (r * r))
    # Quilez's bound outside; inside it overshoots for flat ellipsoids, so
    # use the scaled-sphere bound there (1-Lipschitz, matters for carving)
    return np.where(k0 >= 1.0, k0 * (k0 - 1.0) / np.maximum(k1, 1e-12), (k0 - 1.0) * r.min())


def sphere(p: np.ndarray, center, radius: float) -> np.ndarray:
    return length(p - np.asarray(center, dtype=p.dtype)) - radius


def tapered_capsule(p: np.ndarray, a, b, ra: float, rb: float) -> np.ndarray:
    """Capsule whose radius varies linearly along the segment.

    Close to an exact round cone when |ra - rb| is small next to the segment
    length, at a third of the cost (a bound, not an exact distance).
    """
    a = np.asarray(a, dtype=p.dtype)
    b = np.asarray(b, dtype=p.dtype)
    pa = p - a
    ba = b - a
    h = np.clip(pm.dot3(pa, ba) / float(pm.dot3(ba, ba)), 0.0, 1.0)
    return length(pa - h[:, None] * ba) - (ra + (rb - ra) * h)


def capsule(p: np.ndarray, a, b, r: float) -> np.ndarray:
    a = np.asarray(a, dtype=p.dtype)
    b = np.asarray(b, dtype=p.dtype)
    pa = p - a
    ba = b - a
    h = np.clip(pm.dot3(pa, ba) / float(pm.dot3(ba, ba)), 0.0, 1.0)
    return length(pa - h[:, None] * ba) - r


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def local(fn: SDF, q: np.ndarray, center, half, margin: float = None, n_out: int = 1):
    """Evaluate fn only inside the box center +- (half + margin).

    `half` must enclose the feature's surface; `margin` must exceed the blend
    width the feature is combined with. Outside the box the (Chebyshev)
    distance to the box plus the margin is returned: a lower bound of the
    feature's distance, so block culling in `mesh_sdf` stays conservative,
    and too large to change a smooth union or subtraction near the surface.
    With n_out > 1, fn returns that many fields and so does local.
    """
    margin = LOCAL_MARGIN if margin is None else margin
    gap = None
    for i in range(3):
        g = np.abs(q[:, i] - center[i]) - (half[i] + margin)
        gap = g if gap is None else np.maximum(gap, g)
    inside = gap <= 0.0
    bound = np.maximum(gap, 0.0) + margin
    if not inside.any():
        return bound if n_out == 1 else tuple(bound.copy() for _ in range(n_out))
    res = fn(q[inside])
    if isinstance(res, tuple):   # several fields from one evaluation
        outs = tuple(bound.copy() for _ in res)
        for o, r in zip(outs, res):
            o[inside] = r
        return outs
    bound[inside] = res
    return bound


# How far inside its `local` box a feature's surface must stay.
LOCAL_MARGIN = 0.015


def _active_blocks(fn: SDF, lo: np.ndarray, h: float, nblocks: np.ndarray, base: int,
                   safety: float) -> np.ndarray:
    """Integer coords of the base-size blocks the zero set may cross (coarse to fine)."""
    levels = (int(max(nblocks.max(), 1)) - 1).bit_length()   # ceil(log2(n)), in integers
    size = base * (1 << levels)
    n0 = np.ceil(nblocks * base / size).astype(int)
    blocks = np.stack(np.meshgrid(*[np.arange(k) for k in n0], indexing="ij"), -1).reshape(-1, 3)
    while True:
        centres = (lo + h * size * (blocks + 0.5)).astype(np.float32)
        half_diag = 0.5 * np.sqrt(3.0) * h * size
        keep = np.abs(fn(centres)) < safety * half_diag
        blocks = blocks[keep]
        if size == base:
            return blocks
        size //= 2
        kids = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
        blocks = (blocks[:, None, :] * 2 + kids[None]).reshape(-1, 3)
        blocks = blocks[np.all(blocks < nblocks, axis=1)]


def mesh_sdf(fn: SDF, lo, hi, h: float, detail=(), safety: float = 1.5):
    """Triangulate the zero set of `fn` inside the box [lo, hi] at spacing h.

    Returns (vertices (V, 3) float64, faces (F, 3) int64) wound outward.

    Blocks of 4 cells are culled coarse to fine while their centre is within
    `safety` half-diagonals of the surface (> 1 covers fields that are bounds
    rather than exact distances). Inside the kept blocks the field is sampled
    at 2h, 2-cell blocks whose corners cannot see the surface are dropped,
    and the remaining fine nodes are evaluated exactly inside the `detail`
    boxes ((lo, hi) pairs) and trilinearly interpolated elsewhere: smooth
    regions (skull, neck) cost an eighth of the evaluations.
    """
    from skimage.measure import marching_cubes

    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    nblocks = np.ceil((hi - lo) / (h * 4)).astype(int)
    blocks = _active_blocks(fn, lo, h, nblocks, 4, safety)
    if len(blocks) == 0:
        raise ValueError("no surface inside the meshing box")
    if (blocks.min(axis=0) == 0).any() or (blocks.max(axis=0) == nblocks - 1).any():
        raise ValueError("surface reaches the meshing box; enlarge it")
    # work in a sub-volume around the kept blocks
    b0 = blocks.min(axis=0)
    blocks = blocks - b0
    origin = lo + h * 4 * b0
    nb = blocks.max(axis=0) + 1

    # coarse nodes (spacing 2h) of the kept blocks
    coarse_shape = tuple(nb * 2 + 1)
    cmask = np.zeros(coarse_shape, dtype=bool)
    offs3 = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    ci = (blocks[:, None, :] * 2 + offs3[None]).reshape(-1, 3)
    cmask[ci[:, 0], ci[:, 1], ci[:, 2]] = True
    cidx = np.nonzero(cmask)
    coarse = np.full(coarse_shape, np.nan, dtype=np.float32)
    coarse[cidx] = fn((origin + 2 * h * np.stack(cidx, axis=1)).astype(np.float32))

    # 2-cell sub-blocks that may hold surface, judged from their corners. Away
    # from detail boxes the field is their trilinear interpolant, which has a
    # zero only where the corner signs differ; inside, thin features may hide
    # between corners, so any block the surface may approach is kept.
    offs2 = np.stack(np.meshgrid(*[np.arange(2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    sub = (blocks[:, None, :] * 2 + offs2[None]).reshape(-1, 3)
    corners = np.stack([coarse[sub[:, 0] + a, sub[:, 1] + b, sub[:, 2] + c] for a, b, c in offs2], axis=1)
    straddle = (corners < 0).any(axis=1) & (corners >= 0).any(axis=1)
    sub_lo = origin + 2 * h * sub
    in_detail = np.zeros(len(sub), dtype=bool)
    for dlo, dhi in detail:
        in_detail |= np.all((sub_lo + 2 * h >= np.asarray(dlo)) & (sub_lo <= np.asarray(dhi)), axis=1)
    near = np.abs(corners).min(axis=1) < safety * np.sqrt(3.0) * 2 * h
    sub = sub[straddle | (in_detail & near)]

    nodes = tuple(nb * 4 + 1)
    cell = np.zeros(nodes, dtype=bool)
    cidx2 = (sub[:, None, :] * 2 + offs2[None]).reshape(-1, 3)
    cell[cidx2[:, 0], cidx2[:, 1], cidx2[:, 2]] = True
    node = cell.copy()
    node[1:, :, :] |= cell[:-1, :, :]
    node[:, 1:, :] |= node[:, :-1, :].copy()
    node[:, :, 1:] |= node[:, :, :-1].copy()
    flat = np.flatnonzero(node)
    idx = np.stack(np.unravel_index(flat, nodes), axis=1)
    pts = origin + h * idx
    exact = np.zeros(len(idx), dtype=bool)
    for dlo, dhi in detail:
        exact |= np.all((pts >= np.asarray(dlo)) & (pts <= np.asarray(dhi)), axis=1)
    values = np.empty(len(idx), dtype=np.float32)
    if exact.any():
        values[exact] = fn(pts[exact].astype(np.float32))
    # trilinear from the coarse nodes: average the 1, 2, 4 or 8 around each fine node
    ii = idx[~exact]
    c0, odd = ii // 2, ii % 2
    cflat = coarse.reshape(-1)
    cs = np.array([coarse_shape[1] * coarse_shape[2], coarse_shape[2], 1])
    base_i = c0 @ cs     # integer products: exact, no BLAS
    acc = np.zeros(len(ii), dtype=np.float32)
    for off in offs2:
        acc += cflat[base_i + (odd * off) @ cs]
    values[~exact] = acc * 0.125
    if np.isnan(values).any():
        raise RuntimeError("mesh_sdf: interpolation read an unevaluated coarse node")
    vol = np.ones(nodes, dtype=np.float32)  # never read: masked out
    vol.reshape(-1)[flat] = values
    # skimage tests the mask at a cell's far corner (origin + 1), not its origin
    mask = np.zeros(nodes, dtype=bool)
    mask[1:, 1:, 1:] = cell[:-1, :-1, :-1]
    verts, faces, _, _ = marching_cubes(vol, 0.0, mask=mask, allow_degenerate=False)
    verts = origin + h * verts.astype(float)
    return verts, faces.astype(np.int64)
