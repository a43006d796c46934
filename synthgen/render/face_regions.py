"""Where the face is on an imported head: skin triangles, eyeballs and a few heights, from roles.

Strand generators (scalp hair, brows, lashes, beards) need to know where to grow them on any head,
not only the procedural ones. This module reads the imported, placed head objects (scene frame:
metres, +Z up, face toward -Y) and the role each material slot got from
:mod:`synthgen.render.role_materials` (``slot.material["synthgen_role"]``), and returns:

- the world-space triangles of the ``skin`` (and ``lips``, ``scalp``) slots;
- the eyeballs: a sphere (centre, radius) fitted to the vertices of each eye's ``sclera`` parts,
  else its ``iris`` parts (the procedural heads' eyeball), else its ``cornea``; the two eyes are
  told apart by the side of the head's centre plane (x) they lie on;
- heights: the top of the head, the eye line, the brow line and the chin (from a profile of
  rays cast at the face's middle), and a closest-point / ray-cast helper onto the skin
  (Blender's ``mathutils.bvhtree.BVHTree``: deterministic).

A head without eye roles gets ``eyes == []`` and ``None`` for the eye-relative heights; the
facial-hair generator then skips brows and lashes (without error). World coordinates are computed
element-wise (``portable_math.matmul``), not with BLAS, so they are the same bytes on any CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import bpy
import numpy as np
from mathutils import Vector
from mathutils.bvhtree import BVHTree

from assets_manifest import portable_math as pm

EYE_ROLES = ("sclera", "iris", "cornea")  # in order of preference for the sphere fit


@dataclass
class FaceRegions:
    """The face of one placed head (scene frame, metres). ``eyes`` is ordered +X first (the subject's left)."""
    skin_tris: np.ndarray                      # (T, 3, 3) float64
    lips_tris: np.ndarray                      # (L, 3, 3)
    scalp_tris: np.ndarray                     # (S, 3, 3)
    eyes: list[tuple[np.ndarray, float]]       # [(centre (3,), radius)]
    centre_x: float                            # the face's mid-plane
    head_top_z: float
    bottom_z: float                            # lowest skin point (neck or chin)
    eye_z: float | None = None                 # mean eyeball centre height
    brow_z: float | None = None                # estimated brow line (above the eyes)
    chin_z: float | None = None                # underside of the chin at the mid-plane
    mouth_z: float | None = None               # the lips' slit at the mid-plane
    front_y: float = 0.0                       # most forward skin point (-Y is forward)
    _bvh: BVHTree | None = field(default=None, repr=False)

    @property
    def has_eyes(self) -> bool:
        return len(self.eyes) == 2

    @property
    def eye_radius(self) -> float | None:
        return sum(r for _, r in self.eyes) / len(self.eyes) if self.eyes else None

    def closest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(closest skin points (N,3), their face normals (N,3), distances (N,)) for ``points`` (N,3)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        loc = np.empty_like(pts)
        nrm = np.zeros_like(pts)
        dist = np.full(len(pts), np.inf)
        for i, p in enumerate(pts):
            hit, n, _, d = self._bvh.find_nearest(Vector(p.tolist()))
            if hit is not None:
                loc[i], nrm[i], dist[i] = hit[:], n[:], d
            else:
                loc[i] = p
        return loc, nrm, dist

    def ray_cast(self, origins: np.ndarray, directions: np.ndarray, max_dist: float = 1.0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hit points (N,3), face normals (N,3), hit mask (N,)) of rays onto the skin (misses: NaN points)."""
        o = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
        d = np.broadcast_to(np.asarray(directions, dtype=np.float64), o.shape)
        loc = np.full_like(o, np.nan)
        nrm = np.zeros_like(o)
        ok = np.zeros(len(o), dtype=bool)
        for i in range(len(o)):
            hit, n, _, _ = self._bvh.ray_cast(Vector(o[i].tolist()), Vector(d[i].tolist()), max_dist)
            if hit is not None:
                loc[i], nrm[i], ok[i] = hit[:], n[:], True
        return loc, nrm, ok


def _object_tris(obj) -> tuple[np.ndarray, np.ndarray]:
    """(world triangles (T,3,3), material index per triangle (T,)) of one mesh object (evaluated)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    mesh = obj.evaluated_get(depsgraph).to_mesh()
    try:
        mesh.calc_loop_triangles()
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", co)
        tri = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
        mesh.loop_triangles.foreach_get("vertices", tri)
        mat = np.empty(len(mesh.loop_triangles), dtype=np.int64)
        mesh.loop_triangles.foreach_get("material_index", mat)
    finally:
        obj.evaluated_get(depsgraph).to_mesh_clear()
    m = np.array(obj.matrix_world, dtype=np.float64)
    world = pm.matmul(co.reshape(-1, 3), m[:3, :3].T) + m[:3, 3]
    return world[tri.reshape(-1, 3)], mat


def _slot_roles(obj) -> list[str | None]:
    return [(s.material.get("synthgen_role") if s.material else None) for s in obj.material_slots]


def collect_role_tris(head_objects: list) -> dict[str, np.ndarray]:
    """role -> (T,3,3) world triangles of every mesh slot with that role (slots without a role are left out)."""
    parts: dict[str, list[np.ndarray]] = {}
    for obj in head_objects:
        if obj.type != "MESH" or obj.hide_render:
            continue
        roles = _slot_roles(obj)
        if not any(roles):
            continue
        tris, mat = _object_tris(obj)
        for k, role in enumerate(roles):
            if role:
                sel = tris[mat == k] if len(roles) > 1 else tris
                if len(sel):
                    parts.setdefault(role, []).append(sel)
    return {r: np.concatenate(v) for r, v in parts.items()}


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere (centre, radius) through ``points`` (N,3): exact sums (math.fsum), no BLAS.

    Works on partial spheres too (an eyeball of which only the front is modelled).
    """
    p = np.asarray(points, dtype=np.float64)
    mid = (p.min(axis=0) + p.max(axis=0)) / 2
    q = p - mid
    cols = [q[:, 0], q[:, 1], q[:, 2], np.ones(len(q))]
    rhs = q[:, 0] * q[:, 0] + q[:, 1] * q[:, 1] + q[:, 2] * q[:, 2]
    # normal equations of |q|^2 = 2 c.q + k, solved by Gaussian elimination in Python floats
    a = [[math.fsum((cols[i] * cols[j]).tolist()) for j in range(4)] + [math.fsum((cols[i] * rhs).tolist())]
         for i in range(4)]
    for c in range(4):
        piv = max(range(c, 4), key=lambda r: abs(a[r][c]))
        a[c], a[piv] = a[piv], a[c]
        if a[c][c] == 0.0:
            raise ValueError("eye parts: vertices do not span a sphere")
        for r in range(4):
            if r != c:
                f = a[r][c] / a[c][c]
                a[r] = [x - f * y for x, y in zip(a[r], a[c])]
    sol = [a[i][4] / a[i][i] for i in range(4)]
    cx, cy, cz = sol[0] / 2, sol[1] / 2, sol[2] / 2
    radius = math.sqrt(max(sol[3] + cx * cx + cy * cy + cz * cz, 0.0))
    return mid + np.array([cx, cy, cz]), radius


def find_eyes(role_tris: dict[str, np.ndarray], centre_x: float) -> list[tuple[np.ndarray, float]]:
    """One fitted eyeball sphere per side of ``centre_x`` (+X first); [] unless both sides have eye parts."""
    eyes = []
    for side in (1.0, -1.0):
        for role in EYE_ROLES:
            tris = role_tris.get(role)
            if tris is None:
                continue
            v = np.unique(tris.reshape(-1, 3), axis=0)
            v = v[(v[:, 0] - centre_x) * side > 0]
            if len(v) >= 8:
                eyes.append(fit_sphere(v))
                break
    return eyes if len(eyes) == 2 else []


def _chin_mouth_z(regions: FaceRegions) -> tuple[float | None, float | None]:
    """(underside of the chin, the mouth's slit) from a profile of rays at the face's mid-plane.

    The chin ends below the mouth where the profile recedes toward the neck; the mouth is the
    deepest notch of the profile (between 20 % and 55 % of the way from the chin up to the eyes)
    measured against the lips on both sides of it (else 38 % of that way, the procedural heads').
    """
    r = regions.eye_radius
    zs = regions.eye_z - r * np.arange(4.0, 14.0, 0.08)  # from the nose down well past a long chin
    zs = zs[zs > regions.bottom_z]
    if len(zs) < 4:
        return None, None
    origins = np.stack([np.full(len(zs), regions.centre_x), np.full(len(zs), regions.front_y - 0.5), zs], axis=1)
    hit, _, ok = regions.ray_cast(origins, np.array([0.0, 1.0, 0.0]), 2.0)
    y = np.where(ok, hit[:, 1], np.inf)
    front = y[: max(4, len(y) // 2)].min()  # the lips' and chin's front
    # the chin ends where the profile goes a chin's depth (1.5 eye radii) behind its front and stays
    # there for an eye radius (the mouth's slit recedes too, but only for a few millimetres)
    receded = y > front + 1.5 * r
    k = 13  # samples in one eye radius (step 0.08 r)
    chin = next((float(zs[i]) for i in range(len(zs) - k) if receded[i:i + k].all()), float(zs[-1]))
    h = regions.eye_z - chin
    # the mouth: the notch with lips standing in front of it on both sides within half an eye radius
    # (the lips-to-chin sulcus has the chin further away; the nose's base has no lip above it)
    k = 6
    depth = np.full(len(zs), -np.inf)
    for i in range(k, len(zs) - k):
        if chin + 0.2 * h < zs[i] < chin + 0.55 * h and np.isfinite(y[i]):
            depth[i] = y[i] - max(y[i - k:i].min(), y[i + 1:i + k + 1].min())
    i = int(np.argmax(depth))
    mouth = float(zs[i]) if depth[i] > 0.0005 else chin + 0.38 * h
    return chin, mouth


def face_regions(head_objects: list) -> FaceRegions:
    """The :class:`FaceRegions` of an imported, placed head whose slots carry their roles."""
    tris = collect_role_tris(head_objects)
    skin = tris.get("skin")
    if skin is None:
        # no skin role (a scanned mesh whose materials match no preset): its visible faces are the skin
        whole = [_object_tris(o)[0] for o in head_objects if o.type == "MESH" and not o.hide_render]
        whole = [t for t in whole if len(t)]
        if not whole:
            raise ValueError("face_regions: the head has no visible mesh faces")
        skin = tris["skin"] = np.concatenate(whole)
    verts = skin.reshape(-1, 3)
    everything = np.concatenate([t.reshape(-1, 3) for t in tris.values()])
    centre_x = float((verts[:, 0].min() + verts[:, 0].max()) / 2)
    empty = np.zeros((0, 3, 3))
    regions = FaceRegions(skin_tris=skin, lips_tris=tris.get("lips", empty), scalp_tris=tris.get("scalp", empty),
                          eyes=find_eyes(tris, centre_x), centre_x=centre_x,
                          head_top_z=float(everything[:, 2].max()), bottom_z=float(verts[:, 2].min()),
                          front_y=float(verts[:, 1].min()))
    flat = verts.tolist()
    regions._bvh = BVHTree.FromPolygons(flat, [(3 * i, 3 * i + 1, 3 * i + 2) for i in range(len(skin))],
                                        all_triangles=True)
    if regions.eyes:
        regions.centre_x = (regions.eyes[0][0][0] + regions.eyes[1][0][0]) / 2
        regions.eye_z = float((regions.eyes[0][0][2] + regions.eyes[1][0][2]) / 2)
        # the brow's lower edge sits about 1.3 eyeball radii (~15 mm) above the eye's centre
        regions.brow_z = regions.eye_z + 1.3 * regions.eye_radius
        regions.chin_z, regions.mouth_z = _chin_mouth_z(regions)
    return regions
