"""Eyebrows, eyelashes and beards as strands on any head, from the head's hair spec.

:func:`grow_facial` reads the spec's ``brows``, ``lashes``, ``beard``, ``melanin``, ``redness``,
``greying`` and ``seed`` keys (``assets_manifest/hair.py``), finds the face with
:mod:`synthgen.render.face_regions` (skin triangles, fitted eyeballs, brow/mouth/chin heights)
and builds up to three hair-curves objects through :mod:`synthgen.render.strands`:

- ``facial_brows``: roots on the skin in a brow-shaped band above each eye (arched per person),
  short strands lying nearly flat along the skin, pointing up and out at the brow's head and
  laterally along its body (the lower hairs a little up, the upper ones a little down), curving
  back onto the skin;
- ``facial_lashes``: roots on the lid margin (the skin rim closest to the eyeball around the
  aperture, found by casting rays at the eye), upper lid ``lashes.count`` per eye and a sparser,
  shorter lower row, leaving the lid and curling up (upper) or down (lower), fanned laterally;
- ``facial_beard``: ``stubble`` (very short, dense, over the whole beard area), ``moustache``
  (upper lip), ``goatee`` (moustache and chin) or ``beard`` (the whole area: cheeks below the
  cheekbones, jaw, chin, upper lip and under the chin, hanging down along the jaw).

A head whose material roles have no eyeball (``sclera``/``iris``/``cornea``) gets no brows and
no lashes (and no beard, whose regions are measured from the eyes): nothing is raised.

Determinism: every part draws from its own stream ``np.random.default_rng([seed, k])``; all maths
on positions is element-wise numpy plus ``portable_math`` (sin/cos), no BLAS. Ray casts and
closest points go through Blender's BVH tree, which is deterministic.
"""

from __future__ import annotations

import math

import numpy as np

from assets_manifest import portable_math as pm
from synthgen.render import strands
from synthgen.render.face_regions import FaceRegions, face_regions

MM = 1e-3
X, Y, Z = np.eye(3)
_STREAM = {"brows": 1, "lashes": 2, "beard": 3}
BEARD_STYLES = ("none", "stubble", "moustache", "goatee", "beard")


def _unit(v: np.ndarray) -> np.ndarray:
    return pm.normalize(v, 1e-12)


def _tangent(d: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``d`` projected onto the plane normal to ``n`` (row-wise), unit length."""
    return _unit(d - pm.dot3(d, n)[:, None] * n)


def strand_points(roots: np.ndarray, start: np.ndarray, bend: np.ndarray, lengths: np.ndarray,
                  n_points: int, power: int = 1) -> np.ndarray:
    """(C, n_points, 3) polylines: from each root, segments along ``start + t**power * bend`` (t 0..1).

    ``start`` (C,3) the unit direction leaving the root, ``bend`` (C,3) how far the direction turns
    by the tip (e.g. toward the skin for a brow hair, up for a lash), ``lengths`` (C,) metres.
    """
    c = len(roots)
    pts = np.empty((c, n_points, 3))
    pts[:, 0] = roots
    seg = (lengths / (n_points - 1))[:, None]
    for k in range(1, n_points):
        t = (k - 0.5) / (n_points - 1)
        pts[:, k] = pts[:, k - 1] + seg * _unit(start + t ** power * bend)
    return pts


def taper(c: int, n_points: int, root_m: float, tip_m: float) -> np.ndarray:
    """(C * n_points,) radii from ``root_m`` at the root to ``tip_m`` at the tip."""
    t = np.arange(n_points) / (n_points - 1)
    return np.tile(root_m + (tip_m - root_m) * t, c)


def _outward(n: np.ndarray, toward: np.ndarray) -> np.ndarray:
    """Normals flipped to point along ``toward`` (the BVH's face normals follow the mesh's winding)."""
    return np.where((pm.dot3(n, toward) < 0)[:, None], -n, n)


# ---------------------------------------------------------------- eyebrows

def brow_roots(reg: FaceRegions, brows: dict, rng: np.random.Generator, count: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(roots, normals, s, v, side) of ``count`` brow roots per eye on the skin.

    ``s`` 0 (the brow's head, near the nose) .. 1 (its tail), ``v`` 0 (lower edge) .. 1 (upper),
    ``side`` +1 for the +X eye. The band: from 1.6 eye radii nasal of the eye's centre to 2.5
    lateral, its lower edge 1.05 radii above the centre, arched up by ``arch`` (peak at 2/3 of
    its length, the tail dropping again), ``thickness_mm`` tall at the head tapering to ~45 %.
    """
    out = []
    thick = float(brows["thickness_mm"]) * MM
    arch = float(brows["arch"])
    for c, r in reg.eyes:
        side = 1.0 if c[0] > reg.centre_x else -1.0
        s = rng.random(count)
        v = rng.random(count)
        fringe = rng.random(count) < 0.12  # stray hairs just outside the band: no ruler-drawn edge
        v = np.where(fringe, -0.35 + 1.7 * v, v)
        s = np.where(rng.random(count) < 0.3 * s, s * 0.5, s)  # fewer hairs toward the tail
        rise = np.where(s < 0.65, 1 - ((s - 0.65) / 0.65) ** 2, 1 - ((s - 0.65) / 0.45) ** 2)
        low = c[2] + r * (1.05 + 0.6 * arch * rise)
        height = thick * (1.0 - 0.55 * s * s) * np.where(s < 0.08, 0.6 + 5.0 * s, 1.0)  # rounded head
        x = c[0] + side * r * (-1.6 + 4.1 * s)
        z = low + v * height
        origins = np.stack([x, np.full(count, reg.front_y - 0.05), z], axis=1)
        hit, n, ok = reg.ray_cast(origins, Y, 1.0)
        ok &= hit[:, 1] < c[1]  # on the face, not on a surface behind the eye
        n = _outward(n, -Y)
        out.append((hit[ok], n[ok], s[ok], v[ok], np.full(int(ok.sum()), side)))
    return tuple(np.concatenate([o[i] for o in out]) for i in range(5))


def grow_brows(reg: FaceRegions, spec: dict, rng: np.random.Generator, density_scale: float):
    """(points (C,P,3), radius (C*P,), grey (C,), tint (C,)) of both eyebrows, or None without eyes."""
    brows = spec["brows"]
    count = max(8, int(round((250 + 750 * float(brows["density"])) * density_scale)))
    roots, n, s, v, side = brow_roots(reg, brows, rng, count)
    c = len(roots)
    if c == 0:
        return None
    # angle in the face's plane from "lateral": up-and-out at the head, lateral then drooping at the tail
    theta = np.interp(s, [0.0, 0.12, 0.35, 1.0], [1.35, 0.9, 0.15, -0.3])
    theta = theta + 0.7 * (0.5 - np.clip(v, 0.0, 1.0)) * (s > 0.12) + rng.normal(0.0, 0.15, c)
    sn, cs = pm.sincos(theta)
    d = side[:, None] * cs[:, None] * X + sn[:, None] * Z
    start = _unit(_tangent(d, n) + 0.3 * n)              # ~17 degrees off the skin
    bend = -0.55 * n + rng.normal(0.0, 0.08, (c, 3))      # lying back onto the skin
    length = float(brows["length_mm"]) * MM * (0.6 + 0.4 * rng.random(c)) * np.where(s < 0.1, 0.7, 1.0)
    pts = strand_points(roots + 0.1 * MM * n, start, bend, length, 5)
    grey = (rng.random(c) < 0.5 * float(spec.get("greying", 0.0))).astype(np.float32)
    return pts, taper(c, 5, 0.06 * MM, 0.02 * MM), grey, rng.random(c)


# ---------------------------------------------------------------- eyelashes

def lid_margin(reg: FaceRegions, centre: np.ndarray, radius: float, phis: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """(points (A,3), found (A,)) on the lid margin at angles ``phis`` around the eye (0 = +X, pi/2 = up).

    For each angle, rays along +Y step outward from the eye's centre; the margin is the first hit on
    skin that lies in front of the eyeball and within 0.6 radii of its surface (the aperture's rim;
    the procedural heads' lids stand 3-6 mm off the eyeball, where the cornea bulges).
    """
    rho = radius * np.arange(0.15, 1.6, 0.02)
    sn, cs = pm.sincos(phis)
    xs = centre[0] + cs[:, None] * rho[None, :]
    zs = centre[2] + sn[:, None] * rho[None, :]
    a, b = xs.shape
    origins = np.stack([xs.ravel(), np.full(a * b, reg.front_y - 0.05), zs.ravel()], axis=1)
    hit, _, ok = reg.ray_cast(origins, Y, 1.0)
    gap = pm.length(hit - centre) - radius
    ok &= hit[:, 1] < centre[1] - 0.2 * radius
    near = (ok & (gap < 0.6 * radius)).reshape(a, b)
    first = np.argmax(near, axis=1)
    found = near.any(axis=1)
    # where a fold of the lid stands in front of the rim (the procedural heads' eyes sit in a
    # ~5 mm deep tunnel), lashes leave from the fold's front edge, the first point within 1 mm of
    # the most forward one in the next half radius; else they would grow hidden inside the lid.
    # On a lid that hugs the eyeball (ICT-FaceKit, scans) that point is the rim itself.
    y = np.where(ok.reshape(a, b), hit[:, 1].reshape(a, b), np.inf)
    span = np.arange(b)[None, :]
    window = (span >= first[:, None]) & (span < first[:, None] + 25) & np.isfinite(y)
    front = np.where(window, y, np.inf).min(axis=1)
    pick = np.argmax(window & (y <= front[:, None] + 1 * MM), axis=1)
    return hit.reshape(a, b, 3)[np.arange(a), pick], found


def grow_lashes(reg: FaceRegions, spec: dict, rng: np.random.Generator, density_scale: float):
    """Upper and lower lashes of both eyes (as :func:`grow_brows`), or None when no lid margin is found."""
    lashes = spec["lashes"]
    upper_n = max(4, int(round(int(lashes["count"]) * density_scale)))
    curl = float(lashes["curl"])
    parts = []
    for c, r in reg.eyes:
        side = 1.0 if c[0] > reg.centre_x else -1.0
        for upper, n_lash, frac in ((True, upper_n, 1.0), (False, max(2, upper_n * 2 // 5), 0.55)):
            phis = np.linspace(0.2, math.pi - 0.2, 29) + (0.0 if upper else math.pi)
            margin, found = lid_margin(reg, c, r, phis)
            if found.sum() < 4:
                continue
            phis, margin = phis[found], margin[found]
            phi = phis[0] + (phis[-1] - phis[0]) * rng.random(n_lash)
            lateral = side * pm.cos(phi)                       # -1 nasal .. +1 temporal
            keep = rng.random(n_lash) < 0.45 + 0.55 * (lateral + 1) / 2
            phi, lateral = phi[keep], lateral[keep]
            roots = np.stack([np.interp(phi, phis, margin[:, k]) for k in range(3)], axis=1)
            k = len(roots)
            radial = _unit(roots - c)
            up = Z if upper else -Z
            # out of the lid nearly straight ahead (under any fold above it), then curling away from the eye
            start = _unit(-Y + 0.12 * up + 0.35 * lateral[:, None] * side * X + rng.normal(0.0, 0.05, (k, 3)))
            bend = (1.2 + 2.4 * curl) * up + 0.6 * Y + rng.normal(0.0, 0.15, (k, 3))
            profile = 0.55 + 0.45 * (1 - ((lateral - 0.25) / 1.25) ** 2)
            length = float(lashes["length_mm"]) * MM * frac * profile * (0.8 + 0.2 * rng.random(k))
            parts.append(strand_points(roots + 0.3 * MM * radial, start, bend, length, 7, power=2))
    if not parts:
        return None
    pts = np.concatenate(parts)
    c = len(pts)
    grey = (rng.random(c) < 0.15 * float(spec.get("greying", 0.0))).astype(np.float32)
    return pts, taper(c, 7, 0.065 * MM, 0.02 * MM), grey, rng.random(c)


# ---------------------------------------------------------------- beards

def beard_mask(reg: FaceRegions, p: np.ndarray, style: str) -> np.ndarray:
    """Which points ``p`` (N,3) on the skin grow hair of beard ``style``.

    In face units: ``ax`` eye radii sideways from the mid-plane, ``zz`` 0 at the chin's underside
    .. 1 at the eyes, ``dy`` eye radii behind the eyes' centres (the ears are ~6 back).
    """
    r = reg.eye_radius
    h = reg.eye_z - reg.chin_z
    eye_y = (reg.eyes[0][0][1] + reg.eyes[1][0][1]) / 2
    ax = np.abs(p[:, 0] - reg.centre_x) / r
    zz = (p[:, 2] - reg.chin_z) / h
    dy = (p[:, 1] - eye_y) / r
    zm = (reg.mouth_z - reg.chin_z) / h
    lips = ((ax / 2.3) ** 2 + ((zz - zm + 0.015) / 0.085) ** 2 < 1.0) & (dy < 0.5)
    front = dy < 0.5
    moustache = front & (ax < 2.2 - 1.5 * np.clip(zz - zm - 0.12, 0, 1)) & (zz > zm) & (zz < zm + 0.18) & ~lips
    moustache |= front & (ax > 1.9) & (ax < 2.6) & (zz > zm - 0.12) & (zz < zm + 0.12) & ~lips
    chin = front & (ax < 1.8) & (zz > -0.08) & (zz < zm) & ~lips
    if style == "moustache":
        return moustache
    if style == "goatee":
        return moustache | chin
    # the cheek line: low beside the mouth, rising toward the sideburns in front of the ears
    top = zm + 0.12 + 0.06 * np.clip(ax - 2.0, 0.0, None) + 0.1 * np.clip(dy - 1.5, 0.0, None)
    cheeks = (zz < np.minimum(top, 0.9)) & (dy < 5.2) & ~lips
    neck = (zz < 0.0) & (zz > -0.4) & (dy < 3.5 + 6.0 * zz) & (ax < 4.5)
    return (cheeks & (zz >= 0.0)) | neck | moustache | chin


def _skin_samples(reg: FaceRegions, rng: np.random.Generator, style: str, per_m2: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(points, outward normals) drawn uniformly by area over the skin triangles in the beard mask."""
    tris = reg.skin_tris
    cent = (tris[:, 0] + tris[:, 1] + tris[:, 2]) / 3
    near = beard_mask(reg, cent, "beard")  # a superset: the style's own mask is applied per point
    tris = tris[near]
    if len(tris) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    cr = pm.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    area = 0.5 * pm.length(cr)
    total = math.fsum(area.tolist())
    n = int(round(total * per_m2))
    cum = np.cumsum(area)
    idx = np.minimum(np.searchsorted(cum, rng.random(n) * cum[-1]), len(tris) - 1)
    a, b = rng.random(n), rng.random(n)
    flip = a + b > 1
    a, b = np.where(flip, 1 - a, a), np.where(flip, 1 - b, b)
    t = tris[idx]
    p = t[:, 0] + a[:, None] * (t[:, 1] - t[:, 0]) + b[:, None] * (t[:, 2] - t[:, 0])
    normal = _unit(cr[idx])
    centre = np.array([reg.centre_x, (reg.eyes[0][0][1] + reg.eyes[1][0][1]) / 2 + 5 * reg.eye_radius, reg.eye_z])
    normal = _outward(normal, p - centre)
    # soft edges: the region test sees each point a little displaced
    jitter = rng.normal(0.0, 0.12 * reg.eye_radius, p.shape)
    keep = beard_mask(reg, p + jitter, style)
    return p[keep], normal[keep]


def grow_beard(reg: FaceRegions, spec: dict, rng: np.random.Generator, density_scale: float):
    """The beard of ``spec["beard"]["style"]`` (as :func:`grow_brows`), or None for ``none``."""
    beard = spec["beard"]
    style = beard["style"]
    if style == "none" or reg.chin_z is None or reg.mouth_z is None:
        return None
    density = float(beard.get("density", 0.7))
    stubble = style == "stubble"
    per_m2 = (1.5e6 if stubble else 6e5) * (0.4 + 0.6 * density) * density_scale
    roots, n = _skin_samples(reg, rng, style, per_m2)
    c = len(roots)
    if c == 0:
        return None
    side = np.where(roots[:, 0] > reg.centre_x, 1.0, -1.0)
    length_mm = max(0.3, float(beard["length_mm"]))
    down = _tangent(-Z + 0.35 * side[:, None] * X + rng.normal(0.0, 0.15, (c, 3)), n)
    if stubble:
        start = _unit(down + 0.6 * n)
        bend = np.zeros_like(start)
        points, radius = 2, taper(c, 2, 0.07 * MM, 0.05 * MM)
    else:
        start = _unit(down + 0.45 * n)
        gravity = min(2.0, length_mm / 25.0)
        bend = -gravity * Z + 0.4 * n + rng.normal(0.0, 0.25, (c, 3))  # hangs, and stands off the face
        points, radius = 6, taper(c, 6, 0.05 * MM, 0.02 * MM)
    length = length_mm * MM * (0.6 + 0.4 * rng.random(c))
    if style == "beard":  # longer on the chin and under it, shorter high on the cheeks
        zz = (roots[:, 2] - reg.chin_z) / (reg.eye_z - reg.chin_z)
        length = length * np.clip(1.3 - zz, 0.35, 1.3)
    pts = strand_points(roots, start, bend, length, points)
    grey = (rng.random(c) < float(spec.get("greying", 0.0))).astype(np.float32)
    return pts, radius, grey, rng.random(c)


# ---------------------------------------------------------------- assembly

def _check(spec: dict) -> None:
    for key in ("seed", "melanin", "brows", "lashes", "beard"):
        if key not in spec:
            raise ValueError(f"hair spec: key {key!r} missing (facial hair needs seed, melanin, brows, lashes, beard)")
    for part, keys in (("brows", ("density", "thickness_mm", "length_mm", "arch", "melanin")),
                       ("lashes", ("length_mm", "count", "curl")), ("beard", ("style", "length_mm"))):
        if not isinstance(spec[part], dict):
            raise ValueError(f"hair spec: {part} must be an object, got {type(spec[part]).__name__}")
        for k in keys:
            if k not in spec[part]:
                raise ValueError(f"hair spec: key {part}.{k} missing")
    if spec["beard"]["style"] not in BEARD_STYLES:
        raise ValueError(f"hair spec: beard.style {spec['beard']['style']!r}: expected one of {', '.join(BEARD_STYLES)}")


def _shade(spec: dict, melanin: float, redness: float) -> strands.HairShade:
    return strands.HairShade(melanin=min(1.0, max(0.0, melanin)), redness=min(1.0, max(0.0, redness)),
                             roughness=float(spec.get("roughness", 0.3)), coat=float(spec.get("coat", 0.05)))


def grow_facial(spec: dict, head_objects: list, parent=None, *, density_scale: float = 1.0,
                regions: FaceRegions | None = None) -> list:
    """Brows, lashes and the beard of ``spec`` on the placed head ``head_objects``; returns the new objects.

    ``parent``: the object the strands follow (the renderer's rig); ``density_scale`` multiplies
    every strand count; ``regions``: the head's :class:`FaceRegions` when the caller has them.
    """
    _check(spec)
    reg = regions if regions is not None else face_regions(head_objects)
    if not reg.has_eyes:
        return []
    seed = int(spec["seed"])
    mel, red = float(spec["melanin"]), float(spec.get("redness", 0.1))
    parts = (
        ("brows", grow_brows, lambda: _shade(spec, float(spec["brows"]["melanin"]), red)),
        ("lashes", grow_lashes, lambda: _shade(spec, max(0.85, float(spec["brows"]["melanin"])), 0.5 * red)),
        ("beard", grow_beard, lambda: _shade(spec, mel, min(1.0, 1.15 * red))),
    )
    made = []
    for name, grow, shade in parts:
        rng = np.random.default_rng([seed, _STREAM[name]])
        built = grow(reg, spec, rng, density_scale)
        if built is None:
            continue
        pts, radius, grey, tint = built
        c, p = pts.shape[:2]
        mat = strands.hair_material(f"facial_{name}", shade())
        obj = strands.add_curves(f"facial_{name}", pts.reshape(-1, 3), np.full(c, p), radius, mat,
                                 grey=grey, tint=tint, parent=parent)
        if parent is not None:  # the points are in the scene frame, wherever the parent is now
            obj.matrix_parent_inverse = parent.matrix_world.inverted()
        made.append(obj)
    return made
