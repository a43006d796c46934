"""Scalp hair at render time: a head's hair spec -> Blender hair curves on its scalp.

:func:`grow` reads a hair spec (``assets_manifest.hair``, version 1: style, density, length, clumping,
curl, frizz, parting, hairline, greying, colour) and an imported, placed head (scene frame: metres,
+Z up, face toward -Y), and adds one hair-curves object shaded with the Principled Hair BSDF
(:mod:`synthgen.render.strands`); brows, lashes and beards come from
:mod:`synthgen.render.facial_hair` when ``facial``.

Where hair grows, in order: faces whose material has role ``scalp`` (procedural heads' scalp shell);
else a material or vertex group named ``*scalp*`` (imported heads) or ICT-FaceKit's ``M_BackHead``;
else the head's skin. Each is cut by the spec's hairline (front height above the brow line, shape,
recession of temples and crown), which is drawn relative to the eyes' height and the cranium's extent.
Without a scalp role, a thin skin-coloured shell tinted toward the hair colour is added under the
hair (scalp seen through hair reads dark in the hair's colour, so fewer strands read as full hair).

Strands are grown in numpy rather than with Blender's procedural hair node assets: their clump,
curl and frizz nodes need guide curves, a surface-deform set-up and per-node seeds, and Blender's
random and noise nodes are not documented to give the same bits on every CPU; here every number
comes from one ``np.random.default_rng(spec["seed"])`` and element-wise maths
(``portable_math`` for transcendental functions), so the same spec gives the same points bytes.

The head is kept out of the hair with a radial height map: around a centre inside the cranium, the
largest (ellipsoid-normalised) radius of the head's surface per direction bin; every strand point is
pushed out along its direction from the centre to stay above it (plus a per-strand layer offset,
which gives the hair its volume).
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass

import bpy
import numpy as np

from assets_manifest import portable_math as pm
from synthgen.render import face_regions as fr
from synthgen.render import strands

STYLES = ("shaved", "buzz", "short", "medium", "long", "curly", "tied_back")
PARTINGS = ("none", "left", "right", "centre")
SHAPES = ("straight", "rounded", "m", "widow")
TIES = ("none", "bun", "ponytail")


@dataclass(frozen=True)
class StyleShape:
    strands: int        # strands at density 1 (a full scalp), before density_scale
    points: tuple       # points per strand at the shortest and the longest length of the style
    lift: float         # how much a strand stands out of the scalp at its root (0 flat .. 1 along the normal)
    follow: float       # how fast it turns to the comb direction per step
    gravity: float      # pull down toward the tip
    volume_mm: float    # how far the outer layer lies off the scalp


# Budget: the probe (40-60k strands of 8 points: 1.55-1.62x render time); measured here at
# 256 px / 32 spp with brows and lashes: ~420k points (medium) 1.9x, ~670k (long) 2.5x, so every style
# stays near 400k points at density 1; the short styles are cheap per strand and get more of them.
STYLE_SHAPES = {
    "shaved": StyleShape(60000, (3, 3), 0.9, 0.0, 0.0, 0.3),
    "buzz": StyleShape(60000, (3, 4), 0.7, 0.2, 0.0, 1.0),
    "short": StyleShape(48000, (5, 7), 0.45, 0.55, 0.1, 3.5),
    "medium": StyleShape(36000, (8, 11), 0.35, 0.45, 0.25, 9.0),
    "long": StyleShape(30000, (10, 12), 0.3, 0.4, 0.45, 10.0),
    "curly": StyleShape(26000, (12, 16), 0.85, 0.12, 0.04, 14.0),  # coils stand off the head: volume
    "tied_back": StyleShape(30000, (10, 12), 0.1, 0.6, 0.2, 3.0),
}
FULL_SCALP_M2 = 0.045      # area of a full adult scalp, for the strand count
ROOT_RADIUS_M = 0.00005    # 0.05 mm
TIP_RADIUS_M = 0.00002
HEAD_TOP_TO_EYE_M = 0.125  # the generator's adult head; other heads scale the hairline with theirs
SCALP_SHELL_M = 0.0003     # the added scalp shell lies this far off the skin
_NA, _NW = 72, 36          # radial height map bins: azimuth, elevation


class HairSpecError(ValueError):
    """A hair spec with a missing or bad key (the message names it)."""


# ------------------------------------------------------------------ spec --

def _num(spec: dict, key: str, lo: float, hi: float, where: str = "hair") -> float:
    if key not in spec:
        raise HairSpecError(f"{where}.{key}: missing")
    v = spec[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= v <= hi):
        raise HairSpecError(f"{where}.{key} = {v!r}: expected a number in [{lo}, {hi}]")
    return float(v)


def _choice(spec: dict, key: str, options: tuple, default: str | None = None, where: str = "hair") -> str:
    v = spec.get(key, default)
    if v not in options:
        raise HairSpecError(f"{where}.{key} = {v!r}: expected one of {', '.join(options)}")
    return v


@dataclass(frozen=True)
class Scalp:
    """The checked scalp-hair part of a spec."""
    seed: int
    style: str
    density: float
    length_m: float
    clumping: float
    curl: float
    curl_radius_m: float
    frizz: float
    parting: str
    tie: str
    recession: float
    shape: str
    hairline_height_m: float
    greying: float
    shade: strands.HairShade


def check_spec(spec: dict) -> Scalp:
    """The spec's scalp keys checked; a bad one raises :class:`HairSpecError` naming it."""
    if not isinstance(spec, dict):
        raise HairSpecError(f"hair spec must be a JSON object, not {type(spec).__name__}")
    if spec.get("version", 1) != 1:
        raise HairSpecError(f"hair.version = {spec.get('version')!r}: this renderer reads version 1")
    seed = spec.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise HairSpecError(f"hair.seed = {seed!r}: expected a non-negative integer")
    line = spec.get("hairline")
    if not isinstance(line, dict):
        raise HairSpecError(f"hair.hairline = {line!r}: expected an object with recession, shape, height_mm")
    return Scalp(
        seed=seed, style=_choice(spec, "style", STYLES),
        density=_num(spec, "density", 0.0, 1.0), length_m=_num(spec, "length_mm", 0.0, 2000.0) / 1000,
        clumping=_num(spec, "clumping", 0.0, 1.0), curl=_num(spec, "curl", 0.0, 1.0),
        curl_radius_m=_num(spec, "curl_radius_mm", 0.0, 200.0) / 1000, frizz=_num(spec, "frizz", 0.0, 1.0),
        parting=_choice(spec, "parting", PARTINGS, "none"), tie=_choice(spec, "tie", TIES, "none"),
        recession=_num(line, "recession", 0.0, 1.0, "hair.hairline"),
        shape=_choice(line, "shape", SHAPES, "rounded", "hair.hairline"),
        hairline_height_m=_num(line, "height_mm", 0.0, 300.0, "hair.hairline") / 1000,
        greying=_num(spec, "greying", 0.0, 1.0),
        shade=strands.HairShade(melanin=_num(spec, "melanin", 0.0, 1.0), redness=_num(spec, "redness", 0.0, 1.0),
                                roughness=_num(spec, "roughness", 0.0, 1.0), coat=_num(spec, "coat", 0.0, 1.0)))


# ------------------------------------------------------------- geometry --

@dataclass
class Skull:
    """A centre inside the cranium, its half-extents, and the radial height map of the head's surface."""
    centre: np.ndarray      # (3,)
    axes: np.ndarray        # (3,) ellipsoid half-extents (normalise radii so the map is nearly flat)
    table: np.ndarray       # (_NA, _NW) largest normalised radius of the surface per direction bin
    k: float                # head size relative to the generator's adult head
    # below the chin only a neck cylinder is kept out: pushing strands out of the shoulders along
    # their direction from the head's centre would stick them out sideways like antennae
    chin_z: float = -1e9
    neck_xy: tuple = (0.0, 0.0)
    neck_r: float = 0.0

    def unit(self, p: np.ndarray) -> np.ndarray:
        return (p - self.centre) / self.axes

    def _bins(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = pm.length(u)
        az = pm.arctan2(u[..., 0], -u[..., 1])  # 0 at the face
        ia = np.clip(np.floor((az + math.pi) * (_NA / (2 * math.pi))).astype(np.int64), 0, _NA - 1)
        w = u[..., 2] / np.maximum(s, 1e-12)
        iw = np.clip(np.floor((w + 1.0) * (_NW / 2)).astype(np.int64), 0, _NW - 1)
        return s, ia, iw

    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(normalised radius of p, of the head's surface in p's direction)."""
        s, ia, iw = self._bins(self.unit(p))
        return s, self.table[ia, iw]

    def push_out(self, p: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """p moved out along its direction from the centre to ``offset`` (normalised) above the surface."""
        u = self.unit(p)
        s, ia, iw = self._bins(u)
        need = self.table[ia, iw] + offset
        scale = np.where(s < need, need / np.maximum(s, 1e-9), 1.0)
        head = self.centre + u * scale[..., None] * self.axes
        below = p[..., 2] < self.chin_z
        dx, dy = p[..., 0] - self.neck_xy[0], p[..., 1] - self.neck_xy[1]
        r = np.sqrt(dx * dx + dy * dy)
        need_r = self.neck_r + offset * self.axes[0]
        grow = np.where(r < need_r, need_r / np.maximum(r, 1e-9), 1.0)
        neck = np.stack([self.neck_xy[0] + dx * grow, self.neck_xy[1] + dy * grow, p[..., 2]], axis=-1)
        return np.where(below[..., None], neck, head)

    def normal(self, p: np.ndarray) -> np.ndarray:
        """The ellipsoid's outward normal at p's direction (a smooth stand-in for the scalp's)."""
        return pm.normalize((p - self.centre) / (self.axes * self.axes), 1e-12)


def _skull(all_tris: np.ndarray, skin: np.ndarray, eye_z: float, centre_x: float, chin_z: float) -> Skull:
    v = skin.reshape(-1, 3)
    top = float(v[:, 2].max())
    cran = v[v[:, 2] >= eye_z]
    centre = np.array([centre_x, (cran[:, 1].min() + cran[:, 1].max()) / 2, eye_z])
    axes = np.array([(cran[:, 0].max() - cran[:, 0].min()) / 2, (cran[:, 1].max() - cran[:, 1].min()) / 2,
                     top - eye_z])
    axes = np.maximum(axes, 0.02)
    sk = Skull(centre, axes, np.zeros((_NA, _NW)), (top - eye_z) / HEAD_TOP_TO_EYE_M)
    pts = np.concatenate([all_tris.reshape(-1, 3), (all_tris[:, 0] + all_tris[:, 1] + all_tris[:, 2]) / 3,
                          (all_tris[:, 0] + all_tris[:, 1]) / 2, (all_tris[:, 1] + all_tris[:, 2]) / 2,
                          (all_tris[:, 2] + all_tris[:, 0]) / 2])
    pts = pts[pts[:, 2] >= chin_z]
    neck = v[(v[:, 2] < chin_z - 0.02 * sk.k) & (v[:, 2] > chin_z - 0.05 * sk.k)]
    if len(neck):
        sk.chin_z = chin_z
        sk.neck_xy = ((neck[:, 0].min() + neck[:, 0].max()) / 2, (neck[:, 1].min() + neck[:, 1].max()) / 2)
        # front-to-back: the slice's width may take in the tops of the shoulders
        sk.neck_r = (neck[:, 1].max() - neck[:, 1].min()) / 2
    s, ia, iw = sk._bins(sk.unit(pts))
    table = np.zeros((_NA, _NW))
    np.maximum.at(table, (ia, iw), s)
    # fill and soften: a bin is at least its neighbours' (azimuth wraps), twice
    for _ in range(2):
        t = table
        padded = np.concatenate([t[-1:], t, t[:1]], axis=0)
        padded = np.concatenate([padded[:, :1], padded, padded[:, -1:]], axis=1)
        table = np.max(np.stack([padded[1 + da:_NA + 1 + da, 1 + dw:_NW + 1 + dw]
                                 for da in (-1, 0, 1) for dw in (-1, 0, 1)]), axis=0)
    sk.table = table
    return sk


def _mesh_tris_named(head_objects: list, patterns: tuple[str, ...]) -> np.ndarray:
    """World triangles of slots whose material (or a vertex group covering them) matches a pattern."""
    out = []
    for obj in head_objects:
        if obj.type != "MESH" or obj.hide_render:
            continue
        names = [roles_base(s.material.name) if s.material else "" for s in obj.material_slots]
        slot_hit = [any(fnmatch.fnmatch(n.lower(), p) for p in patterns) for n in names]
        groups = [g.index for g in obj.vertex_groups if any(fnmatch.fnmatch(g.name.lower(), p) for p in patterns)]
        if not any(slot_hit) and not groups:
            continue
        tris, mat = fr._object_tris(obj)
        keep = np.zeros(len(tris), bool)
        for k, hit in enumerate(slot_hit):
            if hit:
                keep |= mat == k
        if groups:
            inside = np.zeros(len(obj.data.vertices), bool)
            for v in obj.data.vertices:
                inside[v.index] = any(g.group in groups and g.weight > 0.5 for g in v.groups)
            mesh = obj.data
            mesh.calc_loop_triangles()
            idx = np.empty(len(mesh.loop_triangles) * 3, np.int64)
            mesh.loop_triangles.foreach_get("vertices", idx)
            if len(idx) == 3 * len(tris):
                keep |= inside[idx.reshape(-1, 3)].all(axis=1)
        out.append(tris[keep])
    return np.concatenate(out) if out else np.zeros((0, 3, 3))


def roles_base(name: str) -> str:
    """A material's asset name without the role prefix role_materials gives it ("skin:M_BackHead")."""
    return name.split(":", 1)[1] if ":" in name else name


def _smoothstep(x, lo, hi):
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def hairline_depth(p: np.ndarray, sc: Scalp, sk: Skull, brow_z: float) -> np.ndarray:
    """How far (m) each point lies inside the hairline (negative: outside, no hair)."""
    k = sk.k
    u = p - sk.centre
    phi = np.abs(pm.arctan2(u[:, 0], -u[:, 1]))  # 0 at the face, pi at the back
    eye = sk.centre[2]
    front = brow_z + sc.hairline_height_m
    # the front at phi 0 .. the temples (~0.7) .. a sideburn (1.2) .. over the ear .. the nape
    knots = np.array([0.0, 0.35, 0.7, 1.0, 1.2, 1.4, 1.85, 2.3, math.pi])
    temple = {"straight": (0.0, 0.004), "rounded": (0.006, 0.018), "m": (-0.006, -0.014),
              "widow": (0.004, 0.012)}[sc.shape]
    rec = sc.recession
    z = [front, front - temple[0] * k + (0.012 if sc.shape == "m" else 0.0) * rec,
         front - temple[1] * k + 0.03 * rec * k, min(front - 0.025 * k, eye + 0.03 * k),
         eye - 0.02 * k + 0.02 * rec * k, eye + 0.012 * k, eye + 0.012 * k, eye - 0.035 * k, eye - 0.07 * k]
    line = np.interp(phi, knots, np.array(z))
    if sc.shape == "widow":  # a point at the middle of the front
        line = line - 0.008 * k * np.clip(1.0 - phi / 0.18, 0.0, 1.0)
    depth = p[:, 2] - line
    if rec > 0.45:  # a thinning crown, growing into a horseshoe at full recession
        crown = sk.centre + np.array([0.0, 0.15 * sk.axes[1], sk.axes[2]])
        radius = 0.12 * k * (rec - 0.45) / 0.55
        d = pm.length(p - crown) - radius
        depth = np.minimum(depth, d)
    return depth


def _tri_area_normal(tris: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = pm.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    area = 0.5 * pm.length(c)
    return area, c / np.maximum(2 * area, 1e-18)[:, None]


@dataclass
class ScalpRegion:
    tris: np.ndarray        # (S,3,3) triangles hair may grow on
    source: str             # "scalp role" | "named" | "skin estimate"
    brow_z: float


def scalp_region(head_objects: list, regions: fr.FaceRegions) -> ScalpRegion:
    """Where the scalp is, before the hairline cut (see the module docstring for the order)."""
    eye_z = regions.eye_z if regions.eye_z is not None else regions.head_top_z - HEAD_TOP_TO_EYE_M
    brow_z = regions.brow_z if regions.brow_z is not None else eye_z + 0.015
    if len(regions.scalp_tris):
        return ScalpRegion(regions.scalp_tris, "scalp role", brow_z)
    named = _mesh_tris_named(head_objects, ("*scalp*", "m_backhead*"))
    if len(named):
        return ScalpRegion(named, "named", brow_z)
    return ScalpRegion(regions.skin_tris, "skin estimate", brow_z)


# --------------------------------------------------------------- strands --

def strand_count(sc: Scalp, area_m2: float, density_scale: float) -> int:
    shape = STYLE_SHAPES[sc.style]
    frac = min(max(area_m2 / FULL_SCALP_M2, 0.05), 1.3)
    return int(round(shape.strands * sc.density * density_scale * frac))


def points_per_strand(sc: Scalp) -> int:
    lo, hi = STYLE_SHAPES[sc.style].points
    t = min(max((sc.length_m - 0.01) / 0.3, 0.0), 1.0)
    return int(round(lo + (hi - lo) * t))


def sample_roots(tris: np.ndarray, weight: np.ndarray, n: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """n points area-weighted on ``tris`` (weight: area x density per triangle); (points, tri index)."""
    cdf = np.cumsum(weight)
    idx = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    idx = np.minimum(idx, len(tris) - 1)
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    a, b, c = 1.0 - s, s * (1.0 - r2), s * r2
    t = tris[idx]
    return t[:, 0] * a[:, None] + t[:, 1] * b[:, None] + t[:, 2] * c[:, None], idx


def _tangent(f: np.ndarray, n: np.ndarray) -> np.ndarray:
    return pm.normalize(f - pm.dot3(f, n)[..., None] * n, 1e-12)


def _frame(t: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u = pm.normalize(pm.cross(t, n), 1e-12)
    return u, pm.cross(t, u)


def grow_strands(sc: Scalp, roots: np.ndarray, normals: np.ndarray, depth: np.ndarray, sk: Skull,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points (C,K,3), radius (C,K), strand length (C,)) for the style."""
    shape = STYLE_SHAPES[sc.style]
    c_n, k_n = len(roots), points_per_strand(sc)
    k = sk.k
    # shorter, finer hair toward the hairline, and a little length noise
    edge = _smoothstep(depth, 0.0, 0.012 * k)
    length = sc.length_m * (0.75 + 0.25 * rng.random(c_n)) * (0.35 + 0.65 * edge)
    curly = sc.style == "curly"
    # a helix of radius R and pitch P: the strand's path along the head is shorter than the strand
    radius_c = min(sc.curl_radius_m * (0.6 + 0.4 * sc.curl), 0.02) if curly else 0.0
    pitch = 3.0 * radius_c
    turn = 2 * math.pi * radius_c
    shrink = pitch / math.sqrt(turn * turn + pitch * pitch) if curly else 1.0
    path_len = length * shrink
    step = path_len / (k_n - 1)
    layer = rng.random(c_n)
    a_mean = (float(sk.axes[0]) + float(sk.axes[1]) + float(sk.axes[2])) / 3
    vol = shape.volume_mm / 1000 * min(1.0, sc.length_m / 0.05 + 0.2) * (0.5 + 0.5 * sc.density)
    u = sk.unit(roots)
    # comb direction: back and down, away from the part line on top
    if sc.parting == "none":
        side = np.clip(u[:, 0] * 1.5, -1.0, 1.0) * 0.4
        part_x = 0.0
    else:
        part_x = {"centre": 0.0, "left": 0.35, "right": -0.35}[sc.parting]
        side = np.where(u[:, 0] >= part_x, 1.0, -1.0) * (1.0 - _smoothstep(u[:, 1], -0.3, 0.4))
    front_flip = sc.parting != "none"
    back = np.where(front_flip, 0.5, 1.0) * np.ones(c_n)
    flow = np.stack([side, back, np.full(c_n, -0.5)], axis=1)
    gather = sk.centre + np.array([0.0, 0.92 * sk.axes[1], 0.25 * sk.axes[2]])
    tied = sc.style == "tied_back"
    if tied:
        flow = gather - roots

    pts = np.empty((c_n, k_n, 3))
    p = roots + normals * 0.0002
    pts[:, 0] = p
    n0 = normals
    d = pm.normalize(n0 * shape.lift + _tangent(flow, n0) * (1.0 - shape.lift), 1e-12)
    down = np.array([0.0, 0.0, -1.0])
    gathered = np.zeros(c_n, bool)
    for i in range(1, k_n):
        t = i / (k_n - 1)
        ne = sk.normal(p)
        if tied:
            to_g = gather - p
            dist = pm.length(to_g)
            gathered |= dist < 0.012 * k
            f = np.where(gathered[:, None], down, _tangent(to_g, ne))
        else:
            # combing "back" fades out over the back of the head (on a round back it would
            # converge every strand on the mid-line), and below the eyes hair only falls
            uy = (p[:, 1] - sk.centre[1]) / sk.axes[1]
            fl = np.stack([flow[:, 0], flow[:, 1] * (1.0 - _smoothstep(uy, 0.1, 0.7)), flow[:, 2]], axis=1)
            fall = _smoothstep(sk.centre[2] - p[:, 2], 0.0, 0.05 * k)[:, None]
            f = pm.normalize(_tangent(fl, ne) * (1.0 - fall) + down * fall, 1e-12)
        f = pm.normalize(f + down * (shape.gravity * t), 1e-12)
        d = pm.normalize(d * (1.0 - shape.follow) + f * shape.follow, 1e-12)
        p = p + d * step[:, None]
        if tied:  # a tail: the gathered strands pulled toward one axis below the tie
            axis = np.stack([np.full(c_n, gather[0]), np.full(c_n, gather[1] + 0.004), p[:, 2]], axis=1)
            pull = np.where(gathered, 0.5, 0.0)[:, None]
            p = p + (axis - p) * pull
        off = (0.0004 + vol * layer * min(1.0, 4 * t)) / a_mean
        if tied:
            off = np.where(gathered, 0.0004 / a_mean, off)
        p = sk.push_out(p, off)
        pts[:, i] = p

    tvals = np.linspace(0.0, 1.0, k_n)
    # curl: a helix (curly) or a wave (any curl) around the strand's path, growing from the root
    if curly or sc.curl > 0.05:
        tang = np.empty_like(pts)
        tang[:, 1:-1] = pts[:, 2:] - pts[:, :-2]
        tang[:, 0], tang[:, -1] = pts[:, 1] - pts[:, 0], pts[:, -1] - pts[:, -2]
        tang = pm.normalize(tang, 1e-12)
        e1, e2 = _frame(tang, sk.normal(pts))
        phase = rng.random(c_n) * 2 * math.pi
        ramp = _smoothstep(tvals, 0.0, 0.25)[None, :]
        if curly:
            turns = path_len / pitch
            ang = phase[:, None] + 2 * math.pi * turns[:, None] * tvals[None, :]
            amp = radius_c * ramp
            s_, c_ = pm.sin(ang), pm.cos(ang)
            pts = pts + (e1 * c_[..., None] + e2 * s_[..., None]) * amp[..., None]
        else:
            wave = max(sc.curl_radius_m, 0.004)
            ang = phase[:, None] + 2 * math.pi * (length / (4 * wave))[:, None] * tvals[None, :]
            amp = sc.curl * 0.35 * wave * ramp
            pts = pts + e1 * (pm.sin(ang) * amp)[..., None]

    # clumping: strands pulled toward their clump's mean path, more toward the tips
    if sc.clumping > 0.01 and k_n > 3:
        cell = (0.004 + 0.02 * min(sc.length_m, 0.3)) * k
        key = np.floor((roots - sk.centre) / cell).astype(np.int64)
        key -= key.min(axis=0)
        dims = key.max(axis=0) + 1
        flat = (key[:, 0] * dims[1] + key[:, 1]) * dims[2] + key[:, 2]
        _, inv = np.unique(flat, return_inverse=True)
        n_cl = int(inv.max()) + 1
        cnt = np.bincount(inv, minlength=n_cl).astype(np.float64)
        mean = np.empty((n_cl, k_n, 3))
        for j in range(k_n):
            for a in range(3):
                mean[:, j, a] = np.bincount(inv, weights=pts[:, j, a], minlength=n_cl) / cnt
        w = sc.clumping * 0.85 * pm.power(tvals, 1.3)[None, :, None] * (0.7 + 0.3 * rng.random(c_n))[:, None, None]
        pts = pts + (mean[inv] - pts) * w

    # frizz: small random kinks growing toward the tip
    if sc.frizz > 0.01 and k_n > 3:
        amp = sc.frizz * (0.0006 + 0.01 * np.minimum(length, 0.3))[:, None, None] * pm.power(tvals, 1.5)[None, :, None]
        pts = pts + rng.normal(size=pts.shape) * amp * 0.5

    for i in range(1, k_n):
        off = np.full(c_n, 0.0003 / a_mean)
        pts[:, i] = sk.push_out(pts[:, i], off)
    taper = _smoothstep(tvals, 0.6, 1.0)
    radius = (ROOT_RADIUS_M * (1.0 - taper) + TIP_RADIUS_M * taper)[None, :] * (0.8 + 0.4 * rng.random(c_n))[:, None]
    return pts, radius, length


# ----------------------------------------------------------------- Blender --

def _scalp_tint(sc: Scalp) -> float:
    """How strongly the scalp under the hair takes the hair's colour."""
    base = {"shaved": 0.35, "buzz": 0.75}.get(sc.style, 0.85)
    return base * (0.4 + 0.6 * sc.density)


def _hair_colour(sc: Scalp) -> list[float]:
    from assets_manifest.heads import appearance
    return appearance.hair_albedo(sc.shade.melanin, sc.shade.redness)


def _add_scalp_shell(tris: np.ndarray, depth: np.ndarray, sk: Skull, skin_mat, sc: Scalp, parent):
    """A thin shell over the skin under the hair, skin-shaded and tinted toward the hair colour,
    fading out at the hairline (a head without a scalp part)."""
    from synthgen.render import role_materials

    _, n = _tri_area_normal(tris)
    n = np.where((pm.dot3(n, (tris[:, 0] + tris[:, 1] + tris[:, 2]) / 3 - sk.centre) < 0)[:, None], -n, n)
    v = (tris + n[:, None, :] * SCALP_SHELL_M).reshape(-1, 3)
    mesh = bpy.data.meshes.new("scalp_shell")
    mesh.from_pydata(v.tolist(), [], [(3 * i, 3 * i + 1, 3 * i + 2) for i in range(len(tris))])
    fade = mesh.attributes.new("scalp_fade", "FLOAT", "POINT")
    fade.data.foreach_set("value", np.repeat(_smoothstep(depth, 0.0, 0.01 * sk.k), 3).astype(np.float32))
    mat = skin_mat.copy() if skin_mat is not None else bpy.data.materials.new("scalp")
    mat.name = "scalp:shell"
    role_materials.tint_toward_hair(mat, _hair_colour(sc), _scalp_tint(sc), fade_attribute="scalp_fade")
    mesh.materials.append(mat)
    obj = bpy.data.objects.new("scalp_shell", mesh)
    bpy.context.scene.collection.objects.link(obj)
    _parent(obj, parent)
    return obj


def _parent(obj, parent) -> None:
    if parent is not None:
        obj.parent = parent
        obj.matrix_parent_inverse = parent.matrix_world.inverted()


def _skin_material(head_objects: list):
    for obj in head_objects:
        if obj.type == "MESH":
            for s in obj.material_slots:
                if s.material is not None and s.material.get("synthgen_role") == "skin":
                    return s.material
    return None


@dataclass
class Built:
    """What :func:`build_strands` computed (points in the scene frame) before Blender sees it."""
    points: np.ndarray      # (C, K, 3)
    radius: np.ndarray      # (C, K)
    grey: np.ndarray        # (C,)
    tint: np.ndarray        # (C,)
    region: ScalpRegion
    skull: Skull
    tris: np.ndarray        # triangles inside the hairline
    depth: np.ndarray       # their centroids' depth inside the hairline (m)


def build_strands(spec: dict, head_objects: list, density_scale: float = 1.0,
                  regions: fr.FaceRegions | None = None) -> Built | None:
    """The strands of ``spec`` on the head (numpy only, deterministic); None when no hair grows.

    ``spec["density_scale"]``, when present, wins over ``density_scale``."""
    sc = check_spec(spec)
    density_scale = float(spec.get("density_scale", density_scale))
    regions = regions or fr.face_regions(head_objects)
    region = scalp_region(head_objects, regions)
    eye_z = regions.eye_z if regions.eye_z is not None else regions.head_top_z - HEAD_TOP_TO_EYE_M
    # a head without roles is all skin (face_regions)
    all_tris = np.concatenate(list(fr.collect_role_tris(head_objects).values()) or [regions.skin_tris])
    chin_z = regions.chin_z if regions.chin_z is not None else eye_z - 0.1 * (regions.head_top_z - eye_z) / 0.125
    sk = _skull(all_tris, regions.skin_tris, eye_z, regions.centre_x, chin_z)
    cent = (region.tris[:, 0] + region.tris[:, 1] + region.tris[:, 2]) / 3
    depth = hairline_depth(cent, sc, sk, region.brow_z)
    inside = depth > -0.002 * sk.k
    tris, depth = region.tris[inside], depth[inside]
    if not len(tris):
        return None
    area, normal = _tri_area_normal(tris)
    n = strand_count(sc, float(math.fsum(area.tolist())), density_scale)
    if n < 1:
        return None
    rng = np.random.default_rng(sc.seed)
    weight = area * (0.15 + 0.85 * _smoothstep(depth, -0.002 * sk.k, 0.008 * sk.k))
    roots, idx = sample_roots(tris, weight, n, rng)
    out = (pm.dot3(normal[idx], roots - sk.centre) < 0)[:, None]
    normals = np.where(out, -normal[idx], normal[idx])
    root_depth = hairline_depth(roots, sc, sk, region.brow_z)
    if sc.parting != "none" and sc.style not in ("shaved", "buzz", "tied_back"):
        # a narrow bare line along the part on top of the head
        part_x = sk.centre[0] + {"centre": 0.0, "left": 0.35, "right": -0.35}[sc.parting] * sk.axes[0]
        u = sk.unit(roots)
        on_part = (np.abs(roots[:, 0] - part_x) < 0.0012 * sk.k) & (u[:, 2] > 0.45) & (u[:, 1] < 0.3)
        keep = ~on_part
        roots, normals, root_depth = roots[keep], normals[keep], root_depth[keep]
    pts, radius, _ = grow_strands(sc, roots, normals, np.maximum(root_depth, 0.0), sk, rng)
    grey = (rng.random(len(pts)) < sc.greying).astype(np.float32)
    tint = rng.uniform(-1.0, 1.0, len(pts)).astype(np.float32)
    return Built(pts, radius, grey, tint, region, sk, tris, depth)


def grow(spec: dict, head_objects: list, parent=None, *, facial: bool = True,
         density_scale: float = 1.0) -> list:
    """Scalp hair (and, when ``facial``, brows, lashes and beard) for ``spec`` on the placed head.

    ``spec``'s own ``facial``/``density_scale`` keys win over the arguments. Returns the new objects
    (add them to the head's objects so they are removed with it). A mesh whose slots are all role
    ``hair`` (a modelled cap) is hidden: the strands replace it.
    """
    facial = bool(spec.get("facial", facial)) if isinstance(spec, dict) else facial
    density_scale = float(spec.get("density_scale", density_scale)) if isinstance(spec, dict) else density_scale
    sc = check_spec(spec)
    regions = fr.face_regions(head_objects)
    built = build_strands(spec, head_objects, density_scale, regions)
    made: list = []
    for obj in head_objects:
        if obj.type == "MESH" and obj.material_slots and all(
                s.material is not None and s.material.get("synthgen_role") == "hair" for s in obj.material_slots):
            obj.hide_render = True
    if built is not None:
        c_n, k_n = built.points.shape[:2]
        mat = strands.hair_material("hair:scalp", sc.shade)
        obj = strands.add_curves("hair_scalp", built.points.reshape(-1, 3), np.full(c_n, k_n),
                                 built.radius.reshape(-1), mat, grey=built.grey, tint=built.tint)
        _parent(obj, parent)
        made.append(obj)
        # Every head gets the tinted shell over the triangles inside the spec's hairline, fading at it.
        # A scalp part is not tinted itself: it covers the catalog's hairline, and where the spec
        # recedes further (or a job's style mix changes it) a tinted part would show as a painted cap.
        made.append(_add_scalp_shell(built.tris, built.depth, built.skull, _skin_material(head_objects),
                                     sc, parent))
    if facial:
        try:
            from synthgen.render import facial_hair
        except ImportError:
            facial_hair = None
        if facial_hair is not None:
            made.extend(facial_hair.grow_facial(spec, head_objects, parent, density_scale=density_scale,
                                                regions=regions))
    return made


def points_digest(objects: list) -> str:
    """sha256 of the curve points of the hair-curves objects among ``objects`` (for determinism checks)."""
    import hashlib

    h = hashlib.sha256()
    for o in objects:
        if o.type == "CURVES":
            co = np.empty(len(o.data.points) * 3, np.float32)
            o.data.position_data.foreach_get("vector", co)
            h.update(co.tobytes())
    return h.hexdigest()
