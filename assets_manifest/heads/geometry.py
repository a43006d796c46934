"""Procedural head geometry: a signed-distance bust, meshed, plus eyes and hair.

Conventions (all parts, all outputs of this package): metres, right-handed,
+Z up, the face looks toward -Y (Blender's front view), +X is the head's own
left. The origin is on the mid-sagittal plane at the height of the eye
centres, roughly above the ear canals; the vertex sits near z = +0.12 m,
the chin near z = -0.11 m and the flat bottom of the bust (upper shoulders)
near z = -0.25 m, all times `head_scale`.

Why signed distances: a bust is one closed surface with overhangs (ears),
cavities (nostrils, eye sockets, an open mouth) and thin folds (eyelids,
lips). Smooth unions of ellipsoids and capsules give all of that with
guaranteed watertight topology through marching cubes; a deformed template
would need a hand-made base mesh we do not have. The skin is meshed at
~1.2 mm, then quadric decimation brings it to the face budget, keeping
detail where curvature is (face, ears) rather than on the skull and chest.

Parts returned by `build_head`: "skin"; "eye_L", "eye_R" (eyeballs: sclera,
iris and pupil are regions of the UV v coordinate, v = angle from the gaze
axis / pi, see EYE_UV); "cornea_L", "cornea_R" (closed glossy shells over the
eyeballs); and "hair" when hair_coverage >= HAIR_MIN_COVERAGE. Every part is
closed and outward-facing once its UV-seam duplicates are welded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from . import sdf as S
from .params import HAIR_MIN_COVERAGE, HeadParams

EYE_RADIUS = 0.0122
# Eyeball UV: v = polar angle from the gaze axis / pi (0 at the pupil centre).
EYE_UV = {"pupil_v": 0.052, "iris_v": 0.165, "limbus_width_v": 0.012}

SKIN_CELL = 0.0012      # marching-cubes spacing for the skin, metres
SKIN_FACES = 42000      # decimation target
HAIR_CELL = 0.0022
HAIR_FACES = 8000


@dataclass
class Layout:
    """Landmarks and dimensions derived from the params, at head_scale = 1."""
    p: HeadParams
    eye_c: np.ndarray          # (2, 3) eye centres, L (+x) then R
    nose_tip: np.ndarray
    subnasale: np.ndarray
    mouth: np.ndarray          # stomion (lip contact point)
    chin: np.ndarray
    ear_c: np.ndarray          # (2, 3)
    top_z: float


def make_layout(p: HeadParams) -> Layout:
    ex = 0.032 * p.eye_spacing
    eye_c = np.array([[ex, -0.066, 0.0], [-ex, -0.066, 0.0]])
    fl = p.face_length
    nl = p.nose_length
    proj = p.nose_projection
    subnasale = np.array([0.0, -0.093, -0.050 * nl])
    nose_tip = np.array([0.0, -0.093 - 0.022 * proj, -0.037 * nl + 0.004 * p.nose_tip_up])
    mouth = np.array([0.0, -0.094, -0.050 * nl - 0.021 * fl])
    chin = np.array([0.0, -0.087 - 0.007 * p.chin_projection, -0.112 * fl])
    ear_c = np.array([[0.071 * p.cranium_width, 0.006, -0.014],
                      [-0.071 * p.cranium_width, 0.006, -0.014]])
    return Layout(p, eye_c, nose_tip, subnasale, mouth, chin, ear_c, 0.121)


# --------------------------------------------------------------------- skin --

def _cranium(q: np.ndarray, L: Layout) -> np.ndarray:
    p = L.p
    cw, cl = p.cranium_width, p.cranium_length
    # egg: the skull is broader behind the ears than at the temples
    qq = q.copy()
    qq[:, 0] = q[:, 0] / (1.0 + 0.10 * np.clip((q[:, 1] - 0.0) / 0.1, -1.0, 1.0))
    d = S.ellipsoid(qq, (0.0, 0.012 * cl, 0.029), (0.073 * cw, 0.099 * cl, 0.092))
    slope = p.forehead_slope
    fore = S.ellipsoid(q, (0.0, -0.040, 0.046), (0.062 * cw, 0.050, 0.060), S.rot_x(-8 - 14 * slope))
    d = S.smin(d, fore, 0.02)
    return d


def _brow(q: np.ndarray, L: Layout) -> np.ndarray:
    b = L.p.brow_ridge
    ex = L.eye_c[0, 0]
    d = np.full(len(q), 1.0)
    for sx in (1.0, -1.0):
        a = (0.0, -0.086 - 0.003 * b, 0.021)
        c = (sx * (ex + 0.016), -0.070 - 0.002 * b, 0.019)
        d = np.minimum(d, S.capsule(q, a, c, 0.0055 + 0.003 * b))
        # lateral brow end curving back to the temple
        d = np.minimum(d, S.capsule(q, c, (sx * (ex + 0.030), -0.046, 0.012), 0.006 + 0.002 * b))
    return d


def _face(q: np.ndarray, L: Layout) -> np.ndarray:
    """Mid and lower face masses: cheeks, maxilla, jaw and chin."""
    p = L.p
    fw, fl, jw = p.face_width, p.face_length, p.jaw_width
    cheek_z = -0.030 * fl
    d = S.ellipsoid(q, (0.0, -0.028, -0.020 * fl), (0.064 * fw, 0.052, 0.062 * fl))
    muzzle = S.ellipsoid(q, (0.0, -0.064, -0.062 * fl), (0.033 * p.mouth_width, 0.030, 0.034 * fl))
    d = S.smin(d, muzzle, 0.02)
    for sx in (1.0, -1.0):
        zyg = S.ellipsoid(q, (sx * 0.050 * fw, -0.052, -0.012), (0.020, 0.016 + 0.005 * p.cheekbones, 0.011),
                          S.rot_z(sx * 30))
        d = S.smin(d, zyg, 0.012)
        smile_lift = 0.004 * p.smile
        cheek = S.ellipsoid(q, (sx * 0.037 * fw, -0.066 + 0.004 * (1 - p.cheek_fullness), cheek_z + smile_lift),
                            (0.022, 0.018 + 0.006 * p.cheek_fullness + 0.003 * p.smile, 0.026))
        d = S.smin(d, cheek, 0.015)
    # mandible: ramus and body on each side, meeting at the chin
    gz = -0.080 * fl + 0.010 * (1 - p.jaw_angle)
    chin = L.chin
    jaw = np.full(len(q), 1.0)
    for sx in (1.0, -1.0):
        gon = (sx * 0.050 * jw, -0.010 - 0.006 * (1 - p.jaw_angle), gz)
        ramus = S.round_cone(q, (sx * 0.055 * p.cranium_width, 0.004, -0.030), gon, 0.011, 0.010 + 0.004 * p.jaw_angle)
        body = S.round_cone(q, gon, (sx * 0.016 * p.chin_width, chin[1] + 0.012, chin[2] + 0.008),
                            0.010 + 0.004 * p.jaw_angle, 0.011)
        jaw = S.smin(jaw, S.smin(ramus, body, 0.004 + 0.012 * (1 - p.jaw_angle)), 0.01)
    chin_e = S.ellipsoid(q, (0.0, chin[1] + 0.012, chin[2] + 0.010), (0.020 * p.chin_width, 0.013, 0.016))
    jaw = S.smin(jaw, chin_e, 0.012)
    if p.jaw_open > 0:
        # the jaw hinges near the ear: rotate the lower face part down
        jaw_open_shift = 0.0
        del jaw_open_shift
    d = S.smin(d, jaw, 0.02)
    return d


def _neck_shoulders(q: np.ndarray, L: Layout) -> np.ndarray:
    p = L.p
    nw, sw = p.neck_width, p.shoulder_width
    qq = q.copy()
    qq[:, 0] /= 1.08  # neck is wider than deep
    neck = S.round_cone(qq, (0.0, 0.016, -0.215), (0.0, 0.010, -0.045), 0.057 * nw, 0.047 * nw)
    sh = S.ellipsoid(q, (0.0, 0.030, -0.280), (0.160 * sw, 0.090, 0.075))
    chest = S.ellipsoid(q, (0.0, -0.005, -0.285), (0.110 * sw, 0.085, 0.07))
    d = S.smin(neck, S.smin(sh, chest, 0.03), 0.035)
    return d


def _eye_socket_cut(q: np.ndarray, L: Layout) -> np.ndarray:
    d = np.full(len(q), 1.0)
    for c in L.eye_c:
        sx = np.sign(c[0])
        hollow = S.ellipsoid(q, (c[0] + sx * 0.002, c[1] - 0.010, c[2] + 0.002), (0.019, 0.014, 0.0135))
        d = np.minimum(d, hollow)
    return d


def _lid_opening(q: np.ndarray, L: Layout, c: np.ndarray) -> np.ndarray:
    """Signed distance (metres, approx.) to the palpebral fissure as seen from the eye centre."""
    p = L.p
    sx = np.sign(c[0])
    v = q - c
    # angles: a horizontal (positive toward the temple), e vertical
    a = np.arctan2(sx * v[:, 0], -v[:, 1])
    e = np.arctan2(v[:, 2], np.hypot(v[:, 0], v[:, 1]))
    size = p.eye_size
    a_med, a_lat = -0.95 * size, 0.95 * size
    t = np.clip((a - a_med) / (a_lat - a_med), 0.0, 1.0)   # 0 medial .. 1 lateral corner
    tilt = np.radians(5.0) * p.eye_tilt
    corner_e = (t - 0.5) * 2 * tilt * 0.5 + 0.5 * tilt
    # lid margins: the upper peaks a little medially, the lower a little laterally
    up_peak = 0.42 * size * np.sin(np.pi * t ** 0.85)
    lo_peak = 0.30 * size * np.sin(np.pi * t ** 1.15)
    e_up = corner_e + up_peak
    e_lo = corner_e - lo_peak
    closure = p.eyelid_closure
    e_up = e_up - closure * (e_up - (e_lo + 0.15 * (e_up - e_lo))) - 0.08 * p.smile * up_peak
    e_lo = e_lo + 0.25 * p.smile * lo_peak
    r = EYE_RADIUS
    d_ang = np.maximum.reduce([e - e_up, e_lo - e, a_med - a, a - a_lat])
    return d_ang * r


def _eyelid(q: np.ndarray, L: Layout, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lid shell around one eye, clearance sphere around its eyeball)."""
    dist = S.length(q - c)
    inner = EYE_RADIUS + 0.0007
    thick = 0.0024
    shell = np.abs(dist - (inner + thick * 0.5)) - thick * 0.5
    lid = S.smax(shell, -_lid_opening(q, L, c), 0.0012)
    # lids only on the front half of the eye
    lid = S.smax(lid, q[:, 1] - (c[1] + 0.002), 0.003)
    return lid, dist - inner


def _nose(q: np.ndarray, L: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(nose body, nostril cavities)."""
    p = L.p
    tip = L.nose_tip
    sn = L.subnasale
    nw = p.nose_width
    nasion = np.array([0.0, -0.083, 0.004])
    hump = 0.0025 * p.nose_bridge
    mid = 0.5 * (nasion + tip) + np.array([0.0, -0.004 - hump, 0.0])
    bridge = S.smin(S.round_cone(q, nasion, mid, 0.0045, 0.0055),
                    S.round_cone(q, mid, tip + np.array([0, 0.004, 0.003]), 0.0055, 0.0075), 0.004)
    # the side walls widen toward the cheeks
    wall = S.round_cone(q, nasion + np.array([0, 0.012, -0.004]), sn + np.array([0, 0.012, 0.010]), 0.006, 0.013 * nw)
    body = S.smin(bridge, wall, 0.006)
    tip_ball = S.ellipsoid(q, tip + np.array([0.0, 0.0085, 0.0]), (0.0085 * nw, 0.0085, 0.008))
    body = S.smin(body, tip_ball, 0.004)
    flare = p.nostril_flare
    nostrils = np.full(len(q), 1.0)
    for sx in (1.0, -1.0):
        ala_c = np.array([sx * (0.0125 + 0.002 * flare) * nw, sn[1] + 0.001, sn[2] + 0.006])
        ala = S.ellipsoid(q, ala_c, (0.0075 + 0.001 * flare, 0.0085, 0.0068), S.rot_z(sx * 20))
        body = S.smin(body, ala, 0.0022)
        hole_c = np.array([sx * 0.0068 * nw, 0.5 * (tip[1] + sn[1]) + 0.002, sn[2] + 0.0005])
        hole = S.ellipsoid(q, hole_c, (0.0032 * nw, 0.0058, 0.0032), S.rot_z(sx * 15) @ S.rot_x(-20))
        nostrils = np.minimum(nostrils, hole)
    # columella: the bridge of skin between the nostrils
    col = S.capsule(q, tip + np.array([0, 0.006, -0.005]), sn + np.array([0, -0.001, 0.002]), 0.0028)
    body = S.smin(body, col, 0.002)
    return body, nostrils


def _lips(q: np.ndarray, L: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(lips, mouth slit/cavity)."""
    p = L.p
    m = L.mouth
    mw = 0.025 * p.mouth_width * (1 + 0.06 * p.smile)
    x = q[:, 0]
    # the lips wrap the dental arch: depth relative to a parabola through the corners
    arch_depth = 0.016
    u = np.clip(x / mw, -1.5, 1.5)
    arch = m[1] + arch_depth * u * u
    lq = np.stack([x, q[:, 1] - arch, q[:, 2] - m[2]], axis=1)
    smile_curve = 0.005 * p.smile * u * u
    opening = 0.012 * p.jaw_open
    lz = lq[:, 2] - smile_curve
    taper = np.clip(1.0 - np.abs(u) ** 3, 0.0, 1.0)
    ul, ll = p.upper_lip, p.lower_lip
    # upper lip: cupid's bow bumps at +-6 mm
    bow = 0.0012 * np.exp(-((np.abs(x) - 0.006) / 0.004) ** 2) - 0.0008 * np.exp(-(x / 0.003) ** 2)
    up = S.ellipsoid(np.stack([x, lq[:, 1], lz - 0.0045 * ul - bow], 1),
                     (0, -0.0005, 0), (mw * 1.02, 0.0055 * ul, 0.0052 * ul + 0.001))
    up = up + 0.004 * (1 - taper)
    low = S.ellipsoid(np.stack([x, lq[:, 1], lz + 0.0055 * ll + opening], 1),
                      (0, 0.0005, 0), (mw * 0.92, 0.0062 * ll, 0.0058 * ll + 0.0005))
    low = low + 0.004 * (1 - taper)
    lips = S.smin(up, low, 0.0015)
    # mouth slit, widening into a cavity when the jaw opens
    slit_h = 0.0005 + 0.5 * opening
    a, b = mw * 0.98, 0.022
    ell = (np.sqrt((x / a) ** 2 + ((lq[:, 1] - 0.012) / b) ** 2) - 1.0) * a * b / np.hypot(a, b) * 1.4
    slit = S.smax(ell, np.abs(lz + 0.5 * opening) - slit_h, 0.0005)
    return lips, slit


def _ear(q: np.ndarray, L: Layout, c: np.ndarray) -> np.ndarray:
    p = L.p
    size = p.ear_size
    if True:
        sx = np.sign(c[0])
        # local frame: u outward, v backward, w up; tilted back 15 deg, swung out by protrusion
        swing = sx * (10 + 20 * p.ear_protrusion)
        rot = S.rot_z(swing) @ S.rot_x(-15)
        lq = S.to_local(q, c, rot)
        u, v, w = lq[:, 0] * sx, lq[:, 1], lq[:, 2]
        h = 0.031 * size
        # 2D outline: an egg, wider at the top than the lobe
        wv = 0.017 * size * (1.0 + 0.18 * np.clip(w / h, -1, 1))
        ov = v - 0.010 * size
        r2 = np.sqrt((ov / wv) ** 2 + (w / h) ** 2)
        d2 = (r2 - 1.0) * np.minimum(wv, h)
        plate = S.smax(d2, np.abs(u - 0.004) - 0.0022, 0.0015)
        rim = np.sqrt((d2 + 0.0032) ** 2 + (u - 0.0055) ** 2) - 0.0028
        ear = S.smin(plate, rim, 0.002)
        # antihelix: a weaker inner ridge on the upper half
        r_in = np.sqrt((ov / (wv * 0.62)) ** 2 + ((w - 0.004) / (h * 0.62)) ** 2)
        anti = np.sqrt(((r_in - 1.0) * 0.011) ** 2 + (u - 0.0050) ** 2) - 0.0019
        anti = S.smax(anti, -w - 0.004, 0.003)
        ear = S.smin(ear, anti, 0.002)
        # concha bowl in the front-lower middle, and the root joining the head
        concha = S.ellipsoid(np.stack([u, v, w], 1), (0.0075, 0.005 * size, -0.004 * size), (0.0065, 0.0085, 0.0105))
        root = S.ellipsoid(np.stack([u, v, w], 1), (-0.004, 0.004, -0.004), (0.008, 0.008, 0.014))
        ear = S.smin(ear, root, 0.004)
        ear = S.smax(ear, -concha, 0.002)
    return ear


def skin_sdf(q: np.ndarray, L: Layout) -> np.ndarray:
    """Signed distance to the skin surface at head_scale = 1.

    Features are evaluated inside boxes (`sdf.local`) that enclose them at
    the largest parameter values; that keeps one evaluation near 1 us/point.
    """
    ex = L.eye_c[0, 0]
    m = L.mouth
    big = 0.045  # margin for the large masses, blended with k up to 0.03
    d = S.local(lambda r: _cranium(r, L), q, (0, 0.014, 0.03), (0.095, 0.118, 0.095), big)
    d = S.smin(d, S.local(lambda r: _face(r, L), q, (0, -0.045, -0.045), (0.082, 0.078, 0.097), big), 0.022)
    d = S.smin(d, S.local(lambda r: _neck_shoulders(r, L), q, (0, 0.015, -0.17), (0.196, 0.108, 0.176), big), 0.03)
    d = S.smax(d, -S.local(lambda r: _eye_socket_cut(r, L), q, (0, -0.078, 0.002), (ex + 0.024, 0.016, 0.016)), 0.008)
    d = S.smin(d, S.local(lambda r: _brow(r, L), q, (0, -0.068, 0.017), (ex + 0.04, 0.03, 0.012)), 0.012)
    nose_c, nose_h = (0, -0.1, -0.03), (0.028, 0.035, 0.04)
    d = S.smin(d, S.local(lambda r: _nose(r, L)[0], q, nose_c, nose_h), 0.006)
    lip_c, lip_h = (0, -0.088, m[2]), (0.037, 0.028, 0.022)
    d = S.smin(d, S.local(lambda r: _lips(r, L)[0], q, lip_c, lip_h), 0.004)
    d = S.smax(d, -S.local(lambda r: _lips(r, L)[1], q, lip_c, lip_h), 0.0012)
    d = S.smax(d, -S.local(lambda r: _nose(r, L)[1], q, nose_c, nose_h), 0.0015)
    for c in L.eye_c:
        d = S.smin(d, S.local(lambda r: _eyelid(r, L, c)[0], q, c, (0.017, 0.017, 0.017)), 0.0035)
        d = S.smax(d, -S.local(lambda r: _eyelid(r, L, c)[1], q, c, (0.014, 0.014, 0.014)), 0.0006)
    for c in L.ear_c:
        d = S.smin(d, S.local(lambda r: _ear(r, L, c), q, c, (0.03, 0.035, 0.04)), 0.005)
    # flat bottom of the bust
    d = S.smax(d, -0.245 - q[:, 2], 0.004)
    return d


# ----------------------------------------------------------------- meshing --

def _finish(verts: np.ndarray, faces: np.ndarray, target_faces: int, keep_largest: bool = True) -> trimesh.Trimesh:
    import fast_simplification

    if len(faces) > target_faces:
        verts, faces = fast_simplification.simplify(
            verts.astype(np.float32), faces.astype(np.int32),
            target_count=target_faces, agg=7)
    mesh = trimesh.Trimesh(verts.astype(np.float64), faces.astype(np.int64), process=True)
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    if keep_largest:
        parts = mesh.split(only_watertight=False)
        if len(parts) > 1:
            mesh = max(parts, key=lambda m: len(m.faces))
    trimesh.repair.fix_normals(mesh)
    return mesh


def mesh_skin(L: Layout) -> trimesh.Trimesh:
    lo = (-0.235, -0.19, -0.285)
    hi = (0.235, 0.165, 0.165)
    v, f = S.mesh_sdf(lambda q: skin_sdf(q, L), lo, hi, SKIN_CELL)
    return _finish(v, f, SKIN_FACES)


def build_head(params: HeadParams) -> dict[str, trimesh.Trimesh]:
    params.validate()
    L = make_layout(params)
    skin = mesh_skin(L)
    parts = {"skin": skin}
    s = params.head_scale
    for m in parts.values():
        m.apply_scale(s)
    return parts
