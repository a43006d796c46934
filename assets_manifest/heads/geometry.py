"""Procedural head geometry: a signed-distance bust, meshed, plus eyes, scalp and mouth.

Conventions (all parts, all outputs of this package): metres, right-handed,
+Z up, the face looks toward -Y (Blender's front view), +X is the head's own
left, so "eye_L" sits at +X. The origin is on the mid-sagittal plane at the
height of the eye centres, above the ear canals; at head_scale 1 the vertex
is near z = +0.12 m, the chin near z = -0.115 m and the flat bottom of the
bust (upper shoulders) at z = -0.245 m. Everything scales with head_scale
about the origin.

Why signed distances: a bust is one closed surface with overhangs (ears),
cavities (nostrils, an open mouth) and thin folds (eyelids, lips). Smooth
unions of ellipsoids and capsules model all of that and marching cubes turns
it into a watertight, consistently wound mesh; a deformed template would
need a hand-made base mesh this project does not have. The skin is meshed at
SKIN_CELL (1.4 mm; sampled exactly around eyes, nose, mouth and ears and
interpolated from a 2.8 mm grid elsewhere), quadric-decimated to SKIN_FACES
(detail stays where curvature is), and the decimated vertices are snapped
back onto the field, whose gradient gives the vertex normals.

Parts returned by `build_head`: "skin"; "eye_L", "eye_R" (eyeballs with
sclera, iris and pupil as UV v bands, see eyes.EYE_UV); "cornea_L",
"cornea_R" (closed glossy shells over the eyeballs); "scalp" (a thin shell
0.1-0.4 mm over the skin inside the hairline, where strand hair is grown at
render time; bald heads keep a minimal fringe); "teeth_upper",
"teeth_lower" (rows of crowns on a parabolic arch, the lower row turning
with the jaw), "gums_upper", "gums_lower" and "mouth" (a thin lining of the
oral cavity carved behind the lips, so an open mouth shows teeth and a dark
interior). Teeth and gums reach into the skin's solid, so only what the
lip slit and the cavity uncover is seen. Each part is closed and
outward-facing once its UV-seam duplicates are welded (uv.weld).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from . import eyes as E
from .. import portable_math as pm
from . import sdf as S
from . import uv as U
from .params import HAIR_MIN_COVERAGE, HeadParams

SKIN_CELL = 0.0014      # marching-cubes spacing for the skin, metres
SKIN_FACES = 40000      # decimation target for the skin
DECIMATE_AGG = 3.0  # lower than the default 7: fewer folded slivers around eyes and lips
BUST_BOTTOM = -0.245
SKIN_BOX = ((-0.235, -0.19, -0.285), (0.235, 0.165, 0.165))
# Boxes (lo, hi) where the skin field is sampled exactly at SKIN_CELL; elsewhere
# it is interpolated from 2 x SKIN_CELL samples (see sdf.mesh_sdf).
SKIN_DETAIL = (((-0.05, -0.14, -0.10), (0.05, -0.045, 0.03)),
               ((0.045, -0.03, -0.065), (0.115, 0.055, 0.035)),
               ((-0.115, -0.03, -0.065), (-0.045, 0.055, 0.035)))


@dataclass
class Layout:
    """Landmarks derived from the params, at head_scale = 1."""
    p: HeadParams
    eye_c: np.ndarray          # (2, 3) eye centres, L (+x) then R
    gaze: np.ndarray           # unit gaze direction
    nasion: np.ndarray
    nose_tip: np.ndarray
    subnasale: np.ndarray
    mouth: np.ndarray          # stomion (lip contact point, mouth closed)
    chin: np.ndarray           # pogonion
    ear_c: np.ndarray          # (2, 3)
    hinge: np.ndarray          # jaw rotation axis point (axis = x)
    jaw_angle: float           # radians of mouth opening

    def landmarks(self) -> dict[str, list[float]]:
        s = self.p.head_scale
        out = {
            "eye_L": self.eye_c[0], "eye_R": self.eye_c[1], "nasion": self.nasion,
            "nose_tip": self.nose_tip, "mouth": self.mouth, "chin": self.chin,
            "ear_L": self.ear_c[0], "ear_R": self.ear_c[1],
            "head_top": np.array([0.0, 0.012, 0.121]),
        }
        return {k: [round(float(c) * s, 6) for c in v] for k, v in out.items()}


def make_layout(p: HeadParams) -> Layout:
    ex = 0.0315 * p.eye_spacing
    eye_c = np.array([[ex, -0.067, 0.0], [-ex, -0.067, 0.0]])
    fl, nl, proj = p.face_length, p.nose_length, p.nose_projection
    nasion = np.array([0.0, -0.0835, 0.004])
    subnasale = np.array([0.0, -0.0925, -0.050 * nl])
    nose_tip = np.array([0.0, -0.0925 - 0.023 * proj, -0.038 * nl + 0.004 * p.nose_tip_up])
    mouth = np.array([0.0, -0.0925, subnasale[2] - 0.020 * fl])
    chin = np.array([0.0, -0.093 - 0.007 * p.chin_projection, -0.099 * fl])
    ear_c = np.array([[0.0715 * p.cranium_width, 0.008, -0.016],
                      [-0.0715 * p.cranium_width, 0.008, -0.016]])
    hinge = np.array([0.0, 0.005, -0.025])
    return Layout(p, eye_c, E.gaze_direction(p.gaze_yaw, p.gaze_pitch), nasion, nose_tip,
                  subnasale, mouth, chin, ear_c, hinge, float(pm.radians(9.0) * p.jaw_open))


def _jaw_frame(q: np.ndarray, L: Layout) -> np.ndarray:
    """Points mapped into the closed-jaw frame (inverse of the opening rotation)."""
    if L.jaw_angle == 0.0:
        return q
    # opening turns the chin down and back about the hinge: rotate points the other way
    return S.to_local(q, L.hinge, S.rot_x(np.degrees(L.jaw_angle))) + L.hinge.astype(q.dtype)


# --------------------------------------------------------------------- skin --

def _cranium(q: np.ndarray, L: Layout) -> np.ndarray:
    p = L.p
    cw, cl = p.cranium_width, p.cranium_length
    # egg: the skull is broader behind the ears than at the temples
    qq = q.copy()
    qq[:, 0] = q[:, 0] / (1.0 + 0.09 * np.clip(q[:, 1] / 0.1, -1.0, 1.0))
    d = S.ellipsoid(qq, (0.0, 0.012 * cl, 0.029), (0.0765 * cw, 0.099 * cl, 0.092))
    slope = p.forehead_slope
    fore = S.ellipsoid(q, (0.0, -0.047, 0.046), (0.063 * cw, 0.052, 0.062), S.rot_x(-(2 + 12 * slope)))
    return S.smin(d, fore, 0.02)


def _brow(q: np.ndarray, L: Layout) -> np.ndarray:
    b = L.p.brow_ridge
    ex = L.eye_c[0, 0]
    d = None
    for sx in (1.0, -1.0):
        a = (0.0, -0.087 - 0.003 * b, 0.019)
        c = (sx * (ex + 0.012), -0.0755 - 0.002 * b, 0.0175)
        e = S.capsule(q, a, c, 0.0055 + 0.003 * b)
        # lateral brow end curving back to the temple
        e = np.minimum(e, S.capsule(q, c, (sx * (ex + 0.028), -0.055, 0.012), 0.006 + 0.002 * b))
        d = e if d is None else np.minimum(d, e)
    return d


def _face(q: np.ndarray, L: Layout) -> np.ndarray:
    """Mid and lower face masses: cheeks, maxilla, jaw and chin."""
    p = L.p
    fw, fl, jw = p.face_width, p.face_length, p.jaw_width
    # the face narrows from the cheekbones to the jaw: taper x with height
    qq = q.copy()
    qq[:, 0] = q[:, 0] / (1.0 + 0.16 * np.clip((q[:, 2] + 0.022 * fl) / (0.062 * fl), -1.0, 1.0))
    d = S.ellipsoid(qq, (0.0, -0.030, -0.022 * fl), (0.062 * fw, 0.052, 0.062 * fl))
    muzzle = S.ellipsoid(q, (0.0, -0.064, -0.064 * fl), (0.029 * p.mouth_width, 0.029, 0.032 * fl))
    d = S.smin(d, muzzle, 0.025)
    for sx in (1.0, -1.0):
        zyg = S.ellipsoid(q, (sx * 0.050 * fw, -0.044, -0.012), (0.021, 0.016 + 0.005 * p.cheekbones, 0.013),
                          S.rot_z(sx * 30))
        d = S.smin(d, zyg, 0.02)
        lift = 0.005 * p.smile
        cheek = S.ellipsoid(q, (sx * 0.036 * fw, -0.046 - 0.003 * p.smile, -0.028 * fl + lift),
                            (0.025, 0.025 + 0.005 * p.cheek_fullness, 0.028))
        d = S.smin(d, cheek, 0.02)
    # lower face (in the opened-jaw frame): one tapered mass from the cheeks to
    # the chin keeps the surface smooth; thin mandible capsules only mark the jaw line
    j = _jaw_frame(q, L)
    chin = L.chin
    lz = -0.072 * fl
    lj = j.copy()
    lj[:, 0] = j[:, 0] / (1.0 + 0.30 * np.clip((j[:, 2] - lz) / (0.042 * fl), -1.0, 1.0))
    lower = S.ellipsoid(lj, (0.0, -0.036, lz), (0.049 * jw, 0.052, 0.042 * fl))
    gz = -0.082 * fl + 0.008 * (1 - p.jaw_angle)
    jaw = lower
    for sx in (1.0, -1.0):
        gon = (sx * 0.050 * jw, -0.008 - 0.006 * (1 - p.jaw_angle), gz)
        ramus = S.tapered_capsule(j, (sx * 0.053 * p.cranium_width, 0.004, -0.030), gon, 0.009, 0.007 + 0.003 * p.jaw_angle)
        body = S.tapered_capsule(j, gon, (sx * 0.016 * p.chin_width, chin[1] + 0.013, chin[2] - 0.006),
                                 0.007 + 0.003 * p.jaw_angle, 0.009)
        jaw = S.smin(jaw, S.smin(ramus, body, 0.006 + 0.01 * (1 - p.jaw_angle)), 0.02)
    chin_e = S.ellipsoid(j, (0.0, chin[1] + 0.013, chin[2] - 0.003), (0.021 * p.chin_width, 0.014, 0.016))
    jaw = S.smin(jaw, chin_e, 0.016)
    return S.smin(d, jaw, 0.028)


def _neck_shoulders(q: np.ndarray, L: Layout) -> np.ndarray:
    p = L.p
    nw, sw = p.neck_width, p.shoulder_width
    qq = q.copy()
    qq[:, 0] /= 1.06  # the neck is wider than deep
    neck = S.tapered_capsule(qq, (0.0, 0.016, -0.20), (0.0, 0.012, -0.07), 0.054 * nw, 0.047 * nw)
    chest = S.ellipsoid(q, (0.0, 0.005, -0.268), (0.115 * sw, 0.082, 0.075))
    d = S.smin(neck, chest, 0.03)
    for sx in (1.0, -1.0):
        trap = S.tapered_capsule(q, (sx * 0.035 * nw, 0.030, -0.140), (sx * 0.150 * sw, 0.018, -0.212), 0.030, 0.034)
        d = S.smin(d, trap, 0.025)
        scm = S.capsule(q, (sx * 0.050 * nw, 0.018, -0.055), (sx * 0.013, -0.040 * nw, -0.195), 0.0105 * nw)
        d = S.smin(d, scm, 0.02)
        clav = S.capsule(q, (sx * 0.022, -0.050, -0.207), (sx * 0.130 * sw, -0.016, -0.199), 0.0075)
        d = S.smin(d, clav, 0.02)
    return d


def _eye_socket_cut(q: np.ndarray, L: Layout) -> np.ndarray:
    d = None
    for c in L.eye_c:
        sx = np.sign(c[0])
        hollow = S.ellipsoid(q, (c[0] + sx * 0.0025, c[1] - 0.0085, c[2] + 0.0005), (0.0165, 0.0125, 0.0125))
        d = hollow if d is None else np.minimum(d, hollow)
    return d


def _eye_solid(q: np.ndarray, L: Layout, c: np.ndarray) -> np.ndarray:
    """Eyeball plus corneal bulge, as the lids see it."""
    ball = S.length(q - c) - E.EYE_RADIUS
    cornea = S.length(q - E.cornea_center(c, L.gaze).astype(q.dtype)) - E.CORNEA_RADIUS
    return S.smin(ball, cornea, 0.001)


def _lid_opening(q: np.ndarray, L: Layout, c: np.ndarray) -> np.ndarray:
    """Signed distance (metres, approx.) to the palpebral fissure as seen from the eye centre."""
    p = L.p
    sx = np.sign(c[0])
    v = q - c
    # angles: a horizontal (+ toward the temple), e vertical
    # portable_math, not numpy: SIMD-dispatched transcendentals differ per CPU
    a = pm.arctan2(sx * v[:, 0], -v[:, 1])
    e = pm.arctan2(v[:, 2], pm.hypot(v[:, 0], v[:, 1]))
    size = p.eye_size
    a_med, a_lat = -1.2 * size, 1.32 * size
    t = np.clip((a - a_med) / (a_lat - a_med), 0.0, 1.0)   # 0 medial .. 1 lateral corner
    tilt = pm.radians(6.0) * p.eye_tilt
    corner_e = (t - 0.5) * tilt - 0.02
    # lid margins: the upper peaks a little medially, the lower a little laterally
    up_peak = 0.36 * size * pm.sin(np.pi * pm.power(t, 0.85))
    lo_peak = 0.36 * size * pm.sin(np.pi * pm.power(t, 1.2))
    e_up = corner_e + up_peak
    e_lo = corner_e - lo_peak
    e_up = e_up - p.eyelid_closure * (e_up - (e_lo + 0.12 * (e_up - e_lo))) - 0.10 * p.smile * up_peak
    e_lo = e_lo + 0.25 * p.smile * lo_peak
    d_ang = np.maximum.reduce([e - e_up, e_lo - e, a_med - a, a - a_lat])
    return d_ang * E.EYE_RADIUS


def _eyelid(q: np.ndarray, L: Layout, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lid shell around one eye, clearance around its eyeball and cornea)."""
    solid = _eye_solid(q, L, c)
    gap, thick = 0.0006, 0.0024
    shell = np.abs(solid - (gap + thick * 0.5)) - thick * 0.5
    lid = S.smax(shell, -_lid_opening(q, L, c), 0.0012)
    # lids only on the front half of the eye
    lid = S.smax(lid, q[:, 1] - (c[1] + 0.002), 0.003)
    return lid, solid - gap


def _nose(q: np.ndarray, L: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(nose body, nostril cavities)."""
    p = L.p
    tip, sn, nasion = L.nose_tip, L.subnasale, L.nasion
    nw = p.nose_width
    hump = 0.002 * p.nose_bridge
    mid = 0.55 * nasion + 0.45 * tip + np.array([0.0, -0.0035 - hump, 0.0])
    bridge = S.smin(S.tapered_capsule(q, nasion, mid, 0.0045, 0.0052),
                    S.tapered_capsule(q, mid, tip + np.array([0, 0.0045, 0.003]), 0.0052, 0.0068), 0.004)
    # side walls widen toward the cheeks
    wall = S.tapered_capsule(q, nasion + np.array([0, 0.008, -0.004]), sn + np.array([0, 0.001, 0.012]),
                             0.0085, 0.0135 * nw)
    body = S.smin(bridge, wall, 0.008)
    tip_ball = S.ellipsoid(q, tip + np.array([0.0, 0.0078, 0.0005]), (0.0085 * nw, 0.0078, 0.0078))
    body = S.smin(body, tip_ball, 0.004)
    flare = p.nostril_flare
    holes = None
    for sx in (1.0, -1.0):
        ala_c = np.array([sx * (0.0122 + 0.0018 * flare) * nw, sn[1] - 0.0005, sn[2] + 0.0062])
        ala = S.ellipsoid(q, ala_c, (0.0064 + 0.001 * flare, 0.0085, 0.0064), S.rot_z(sx * 25))
        body = S.smin(body, ala, 0.0035)
        # nostril: a teardrop opening on the underside, its narrow end toward the tip, and a
        # shallow domed vestibule above it (no tunnel: the dark comes from occlusion)
        hole_c = np.array([sx * 0.0068 * nw, 0.5 * (tip[1] + sn[1]) + 0.0028, sn[2] + 0.0022])
        rot = pm.matmul(S.rot_z(sx * 22), S.rot_x(-12))
        hole = S.ellipsoid(q, hole_c, (0.0024 * nw, 0.0046, 0.0026), rot)
        narrow = S.ellipsoid(q, hole_c + np.array([-sx * 0.0012, -0.0036, 0.0004]), (0.0013, 0.0026, 0.0019), rot)
        hole = S.smin(hole, narrow, 0.0012)
        holes = hole if holes is None else np.minimum(holes, hole)
    # columella: the bridge of skin between the nostrils
    col = S.capsule(q, tip + np.array([0, 0.006, -0.005]), sn + np.array([0, -0.001, 0.0015]), 0.0026)
    body = S.smin(body, col, 0.002)
    return body, holes


def _lips(q: np.ndarray, L: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(lips, mouth slit / cavity)."""
    p = L.p
    m = L.mouth
    mw = 0.0245 * p.mouth_width * (1 + 0.08 * p.smile)
    ul, ll = p.upper_lip, p.lower_lip

    def arch_frame(r):
        # the lips wrap the dental arch: depth measured from a parabola through the corners
        x = r[:, 0]
        u = np.clip(x / mw, -1.3, 1.3)
        depth = 0.015
        slope = pm.hypot(1.0, 2.0 * depth * u / mw)
        w = (r[:, 1] - (m[1] + depth * u * u)) / slope
        z = r[:, 2] - m[2] - 0.0045 * p.smile * u * u
        return x, u, w, z

    x, u, w, z = arch_frame(q)
    taper = 0.0045 * np.clip(pm.power(np.abs(u), 3), 0.0, 2.0)
    # upper lip with a cupid's bow: peaks at +-6 mm, a dip on the midline
    bow = 0.0011 * pm.exp(-((np.abs(x) - 0.006) / 0.004) ** 2) - 0.0007 * pm.exp(-(x / 0.003) ** 2)
    up = S.ellipsoid(np.stack([x, w, z - 0.0048 * ul - bow], 1), (0, -0.0014 * ul, 0),
                     (mw * 1.02, 0.0062 * ul, 0.0056 * ul + 0.001)) + taper
    jx, ju, jw, jz = arch_frame(_jaw_frame(q, L))
    low = S.ellipsoid(np.stack([jx, jw, jz + 0.0060 * ll], 1), (0, -0.0010 * ll, 0),
                      (mw * 0.93, 0.0070 * ll, 0.0063 * ll + 0.0005)) + 0.0045 * np.clip(pm.power(np.abs(ju), 3), 0, 2)
    lips = S.smin(up, low, 0.0015)
    # slit between the lips; with the jaw open it becomes the mouth cavity
    gap = 0.095 * L.jaw_angle            # metres of opening at the lips
    half_h = 0.00045 + 0.5 * gap
    depth = 0.009 + 0.02 * p.jaw_open
    a, b = mw * (0.97 - 0.1 * p.jaw_open), depth
    ell = (np.sqrt((x / a) ** 2 + ((w - 0.5 * b + 0.002) / b) ** 2) - 1.0) * min(a, b)
    slit = S.smax(ell, np.abs(z + 0.5 * gap) - half_h * (1.0 - 0.5 * (x / a) ** 2), 0.0006)
    return lips, slit


def _ear(q: np.ndarray, L: Layout, c: np.ndarray) -> np.ndarray:
    p = L.p
    size = p.ear_size
    sx = np.sign(c[0])
    # local frame: u outward, v backward, w up; tilted back 15 deg, swung out by protrusion
    rot = pm.matmul(S.rot_z(sx * (8 + 22 * p.ear_protrusion)), S.rot_x(-15))
    lq = S.to_local(q, c, rot)
    u, v, w = lq[:, 0] * sx, lq[:, 1], lq[:, 2]
    h = 0.031 * size
    # outline: an egg, wider at the top than at the lobe
    wv = 0.0165 * size * (1.0 + 0.18 * np.clip(w / h, -1, 1))
    ov = v - 0.010 * size
    r2 = np.sqrt((ov / wv) ** 2 + (w / h) ** 2)
    d2 = (r2 - 1.0) * np.minimum(wv, h)
    plate = S.smax(d2, np.abs(u - 0.004) - 0.0022, 0.0015)
    rim = np.sqrt((d2 + 0.0032) ** 2 + (u - 0.0058) ** 2) - 0.0029
    rim = S.smax(rim, -(v - 0.002 + 0.4 * w), 0.004)  # helix rim fades out at the front-bottom
    ear = S.smin(plate, rim, 0.002)
    # antihelix: a weaker inner ridge on the upper half
    r_in = np.sqrt((ov / (wv * 0.62)) ** 2 + ((w - 0.004) / (h * 0.62)) ** 2)
    anti = np.sqrt(((r_in - 1.0) * 0.011) ** 2 + (u - 0.0052) ** 2) - 0.0019
    anti = S.smax(anti, -w - 0.004, 0.003)
    ear = S.smin(ear, anti, 0.002)
    # lobe: a soft pad at the bottom
    lobe = S.ellipsoid(np.stack([u, v, w], 1), (0.004, 0.009 * size, -0.023 * size), (0.0035, 0.0085, 0.0075))
    ear = S.smin(ear, lobe, 0.003)
    # concha bowl in the front-lower middle, and the root joining the head
    lu = np.stack([u, v, w], 1)
    root = S.ellipsoid(lu, (-0.004, 0.004, -0.004), (0.008, 0.008, 0.014))
    ear = S.smin(ear, root, 0.004)
    tragus = S.ellipsoid(lu, (0.004, -0.002, -0.006 * size), (0.003, 0.003, 0.0045))
    concha = S.ellipsoid(lu, (0.008, 0.0065 * size, -0.004 * size), (0.0062, 0.0078, 0.0098))
    ear = S.smax(ear, -concha, 0.002)
    return S.smin(ear, tragus, 0.002)


def skin_sdf(q: np.ndarray, L: Layout) -> np.ndarray:
    """Signed distance to the skin surface at head_scale = 1.

    Features are evaluated inside boxes (`sdf.local`) that enclose them at
    the extreme parameter values; that keeps one evaluation near 1 us/point.
    """
    ex = L.eye_c[0, 0]
    m = L.mouth
    big = 0.055  # margin for the large masses, blended with k up to 0.04
    d = S.local(lambda r: _cranium(r, L), q, (0, 0.014, 0.03), (0.095, 0.118, 0.095), big)
    d = S.smin(d, S.local(lambda r: _face(r, L), q, (0, -0.045, -0.05), (0.085, 0.078, 0.1), big), 0.04)
    d = S.smin(d, S.local(lambda r: _neck_shoulders(r, L), q, (0, 0.01, -0.155), (0.196, 0.11, 0.131), 0.04), 0.03)
    d = S.smax(d, -S.local(lambda r: _eye_socket_cut(r, L), q, (0, -0.078, 0.002), (ex + 0.024, 0.016, 0.016)), 0.008)
    d = S.smin(d, S.local(lambda r: _brow(r, L), q, (0, -0.07, 0.016), (ex + 0.038, 0.03, 0.012)), 0.012)
    nose, nostrils = S.local(lambda r: _nose(r, L), q, (0, -0.1, -0.03), (0.028, 0.035, 0.04), n_out=2)
    d = S.smin(d, nose, 0.008)
    lips, slit = S.local(lambda r: _lips(r, L), q, (0, -0.086, m[2] - 0.006), (0.037, 0.03, 0.026), n_out=2)
    d = S.smin(d, lips, 0.005)
    d = S.smax(d, -slit, 0.0012)
    d = S.smax(d, -S.local(lambda r: _oral_cavity(r, L), q, *_cavity_box(L)), 0.003)
    d = S.smax(d, -nostrils, 0.001)
    for c in L.eye_c:
        lid, clear = S.local(lambda r: _eyelid(r, L, c), q, c, (0.018, 0.019, 0.018), n_out=2)
        d = S.smin(d, lid, 0.0035)
        d = S.smax(d, -clear, 0.0006)
    for c in L.ear_c:
        d = S.smin(d, S.local(lambda r: _ear(r, L, c), q, c, (0.03, 0.036, 0.042)), 0.0065)
    return S.smax(d, BUST_BOTTOM - q[:, 2], 0.004)


# ------------------------------------------------------------ mouth, scalp --

def _cavity_box(L: Layout):
    m = L.mouth
    return (0.0, m[1] + 0.024, m[2] - 0.004), (0.026, 0.019, 0.03)


def _oral_cavity(q: np.ndarray, L: Layout) -> np.ndarray:
    """The air behind the teeth: an oval in plan between the palate and the (jaw-frame) floor.

    Hidden behind the lips while the jaw is closed; the lip slit opens onto it.
    """
    m = L.mouth
    front, depth, half_w = m[1] + 0.007, 0.017, 0.021 * L.p.mouth_width
    plan = S.ellipsoid(np.stack([q[:, 0], q[:, 1], np.zeros_like(q[:, 0])], 1), (0.0, front + depth, 0.0),
                       (half_w, depth, 1.0))
    xr = np.clip(q[:, 0] / half_w, -1.0, 1.0)
    roof = q[:, 2] - (m[2] + 0.0075 + 0.004 * (1.0 - xr * xr))      # the palate vaults
    floor = (m[2] - 0.0075) - _jaw_frame(q, L)[:, 2]
    return S.smax(plan, S.smax(roof, floor, 0.004), 0.004)


# Teeth of one quadrant, midline outward: (mesiodistal width, crown height, labio-lingual
# thickness, incisal/occlusal offset from the occlusal plane), metres.
UPPER_TEETH = ((0.0085, 0.0105, 0.0068, -0.0012), (0.0066, 0.009, 0.006, -0.0008), (0.0076, 0.0100, 0.0078, -0.001),
               (0.0070, 0.0085, 0.0088, 0.0), (0.0066, 0.008, 0.0088, 0.0), (0.0100, 0.0075, 0.0105, 0.0003),
               (0.0090, 0.007, 0.0100, 0.0006))
LOWER_TEETH = ((0.0053, 0.009, 0.0058, 0.0010), (0.0058, 0.0095, 0.006, 0.0008), (0.0068, 0.0105, 0.0072, 0.0006),
               (0.0070, 0.0085, 0.0075, 0.0), (0.0071, 0.008, 0.0080, 0.0), (0.0110, 0.0075, 0.0105, -0.0003),
               (0.0105, 0.007, 0.0100, -0.0006))


@dataclass
class Arch:
    """Tooth crowns of one dental arch (both sides), in the upper-jaw frame (lower: closed-jaw frame)."""
    centre: np.ndarray      # (n, 3) crown centres
    tangent: np.ndarray     # (n, 2) unit xy direction along the arch (away from the midline)
    half: np.ndarray        # (n, 3) half width (along), half thickness, half height
    sign: float             # +1 upper (crowns grow up from the occlusal plane), -1 lower


def dental_arch(L: Layout, lower: bool) -> Arch:
    """Teeth placed by arc length along a parabolic arch behind the lips."""
    m = L.mouth
    teeth = LOWER_TEETH if lower else UPPER_TEETH
    # labial surface of the central incisors just behind the lips; the lower arch sits
    # inside the upper (overjet) and its incisal edges overlap it (overbite)
    front = m[1] + (0.0115 if lower else 0.0065)
    half_w, depth = (0.0245, 0.037) if lower else (0.0265, 0.040)
    half_w *= 0.95 + 0.05 * L.p.mouth_width
    x = np.linspace(0.0, 1.4 * half_w, 600)
    y = front + depth * (x / half_w) ** 2
    s = np.concatenate([[0.0], np.cumsum(pm.hypot(np.diff(x), np.diff(y)))])
    cen, tan, half = [], [], []
    for sx in (1.0, -1.0):
        along = 0.0
        for w, h, t, dz in teeth:
            sk = along + 0.5 * w
            along += w
            xk = float(np.interp(sk, s, x))
            slope = 2.0 * depth * xk / (half_w * half_w)
            inv = 1.0 / float(pm.hypot(1.0, slope))
            tx, ty = inv, slope * inv                       # along the arch, away from the midline
            nx, ny = ty, -tx                                # labial (outward) normal
            yk = front + depth * (xk / half_w) ** 2
            sign = -1.0 if lower else 1.0
            cen.append((sx * (xk - nx * 0.5 * t), yk - ny * 0.5 * t, m[2] + dz + sign * 0.5 * h))
            tan.append((sx * tx, ty))
            # crowns overlap their neighbours (blended): one closed surface per row
            half.append((0.5 * w + 0.0008, 0.5 * t, 0.5 * h))
    return Arch(np.array(cen), np.array(tan), np.array(half), -1.0 if lower else 1.0)


def _rounded_box(lu, lv, lz, hx, hy, hz, r):
    qx, qy, qz = np.abs(lu) - (hx - r), np.abs(lv) - (hy - r), np.abs(lz) - (hz - r)
    out = pm.length(np.stack([np.maximum(qx, 0), np.maximum(qy, 0), np.maximum(qz, 0)], 1))
    return out + np.minimum(np.maximum(qx, np.maximum(qy, qz)), 0.0) - r


def teeth_sdf(q: np.ndarray, L: Layout, arch: Arch, gums_only: bool = False) -> np.ndarray:
    """Crowns of one row, or the gum ridge holding them; the lower row follows the jaw."""
    j = _jaw_frame(q, L) if arch.sign < 0 else q
    teeth = gums = None
    for c, (tx, ty), (hx, hy, hz) in zip(arch.centre, arch.tangent, arch.half):
        dx, dy, dz = j[:, 0] - c[0], j[:, 1] - c[1], j[:, 2] - c[2]
        lu = dx * tx + dy * ty
        lv = dx * ty - dy * tx
        if gums_only:
            gc = (c[0], c[1], c[2] + arch.sign * (hz + 0.0026))
            gum = S.ellipsoid(j, gc, (hx * 1.15, hy + 0.0014, 0.0045))
            gums = gum if gums is None else S.smin(gums, gum, 0.0025)
            continue
        # from the cutting edge (0) to the neck (1): crowns thin toward the edge
        e = np.clip(0.5 + arch.sign * dz / (2 * hz), 0.0, 1.0)
        hy_e = hy * (0.6 + 0.4 * e)
        r = np.minimum(min(0.0011, 0.45 * hx), 0.8 * hy_e)   # rounding never exceeds the thickness
        tooth = _rounded_box(lu, lv, dz, hx, hy_e, hz, r)
        # extend the crown into the gum (the root) so the gum line is where they meet
        tooth = np.minimum(tooth, _rounded_box(lu, lv, dz - arch.sign * (hz + 0.002), hx * 0.8, hy * 0.85,
                                               0.0025, 0.001))
        teeth = tooth if teeth is None else S.smin(teeth, tooth, 0.0012)
    return gums if gums_only else teeth


def _arch_box(arch: Arch, L: Layout):
    lo = arch.centre.min(axis=0) - 0.02
    hi = arch.centre.max(axis=0) + 0.02
    if arch.sign < 0:   # the lower row turns down and back with the jaw (<= 0.1 m from the hinge)
        lo[2] -= 0.1 * L.jaw_angle
        hi[1] += 0.1 * L.jaw_angle
    return lo, hi


def _hairline(q: np.ndarray, L: Layout) -> np.ndarray:
    """Signed vertical distance to the hairline: negative where hair grows.

    Bald heads keep a minimal (HAIR_MIN_COVERAGE) fringe so their scalp region is never empty.
    """
    c = max(L.p.hair_coverage, HAIR_MIN_COVERAGE)
    phi = np.abs(pm.arctan2(q[:, 0], -q[:, 1]))        # 0 at the face, pi at the back
    recede = 1.0 - c
    knots = np.array([0.0, 0.55, 1.05, 1.45, 1.75, 2.2, np.pi])
    z_line = np.array([0.066 + 0.05 * recede, 0.056 + 0.07 * recede, 0.040 + 0.03 * recede,
                       0.020 + 0.02 * recede, 0.004, -0.030, -0.062 + 0.02 * recede])
    d = np.interp(phi, knots, z_line).astype(q.dtype) - q[:, 2]
    if c < 0.55:
        # thinning crown
        crown = S.sphere(q, (0.0, 0.02, 0.125), 0.16 * (0.55 - c))
        d = S.smax(d, -crown, 0.01)
    return d


SCALP_LIFT = (0.0001, 0.0004)   # scalp shell over the skin: at the hairline, 6 mm inside it
# The shell's hidden side floats just above the skin, not inside it: a sheet inside the skin
# stops Cycles' random-walk subsurface paths and draws a dark line along the shell's edge.
SHELL_BASE = 0.00002


def _shell(verts, faces, normals, face_mask, lift, base=SHELL_BASE):
    """A thin closed shell over the faces in face_mask: a lifted copy, a copy `base` over the skin, side strips.

    lift: (V,) or scalar offset along the normal of the visible side. Returns (verts, faces,
    normals) wound outward; empty arrays when no face is selected.
    """
    f = faces[_without_pinches(faces, face_mask)]
    if len(f) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), np.zeros((0, 3))
    used = np.unique(f)
    remap = np.full(len(verts), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    f = remap[f]
    v, n = verts[used], normals[used]
    lift = np.broadcast_to(np.asarray(lift, dtype=np.float64), (len(verts),))[used]
    k = len(used)
    top = v + lift[:, None] * n
    bottom = v + base * n
    # boundary edges: directed edges whose reverse is not in the patch
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    key = e[:, 0] * k + e[:, 1]
    rev = e[:, 1] * k + e[:, 0]
    b = e[~np.isin(rev, key)]
    # the side strips get their own copies of the rim vertices, with the surface's normal:
    # sharing the sheets' vertices would blend n into -n across the strip (a dark seam)
    rim = np.unique(b)
    at = np.full(k, -1, dtype=np.int64)
    at[rim] = np.arange(len(rim))
    a_t, b_t = 2 * k + at[b[:, 0]], 2 * k + at[b[:, 1]]
    a_b, b_b = a_t + len(rim), b_t + len(rim)
    side = np.concatenate([np.stack([b_t, a_t, a_b], 1), np.stack([a_b, b_b, b_t], 1)])
    out_f = np.concatenate([f, f[:, ::-1] + k, side])
    verts_out = np.concatenate([top, bottom, top[rim], bottom[rim]])
    return verts_out, out_f, np.concatenate([n, -n, n[rim], n[rim]])


def _without_pinches(faces: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Drop patch faces at vertices where two boundary loops touch (the shell would not be manifold)."""
    mask = mask.copy()
    n = int(faces.max()) + 1 if len(faces) else 0
    for _ in range(8):
        f = faces[mask]
        e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        key, rev = e[:, 0] * n + e[:, 1], e[:, 1] * n + e[:, 0]
        start = e[~np.isin(rev, key), 0]
        bad = np.bincount(start, minlength=n) > 1
        if not bad.any():
            break
        mask &= ~bad[faces].any(axis=1)
    return mask


def scalp_mask(verts: np.ndarray, faces: np.ndarray, L: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(faces inside the hairline and off the ears, per-vertex hairline distance)."""
    line = _hairline(verts, L)
    ok = line < 0.0
    for c in L.ear_c:
        ok &= S.local(lambda r: _ear(r, L, c), verts, c, (0.03, 0.036, 0.042)) > 0.004
    return ok[faces].all(axis=1), line


def mouth_mask(verts: np.ndarray, faces: np.ndarray, L: Layout) -> np.ndarray:
    """Skin faces on the walls of the mouth cavity and the slit behind the lips."""
    cav = _oral_cavity(verts, L)
    _, slit = _lips(verts, L)
    on = (np.abs(np.minimum(cav, slit)) < 0.0006) & (verts[:, 1] > L.mouth[1] + 0.0045)
    return on[faces].all(axis=1)


# ----------------------------------------------------------------- meshing --

def _finish(verts: np.ndarray, faces: np.ndarray, target_faces: int, merge: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Decimate, drop degenerate faces and stray islands; returns (verts, faces).

    merge=False keeps the decimated connectivity as it is (see _separate_coincident).
    """
    import fast_simplification

    if len(faces) > target_faces:
        verts, faces = fast_simplification.simplify(
            np.ascontiguousarray(verts, dtype=np.float32), np.ascontiguousarray(faces, dtype=np.int32),
            target_count=target_faces, agg=DECIMATE_AGG)
    mesh = trimesh.Trimesh(np.asarray(verts, dtype=np.float64), np.asarray(faces, dtype=np.int64), process=merge)
    if merge:
        mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    _keep_largest_component(mesh)
    trimesh.repair.fix_normals(mesh)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def _separate_coincident(verts: np.ndarray) -> np.ndarray:
    """Move apart (by 2 um steps in x) distinct vertices that share a position.

    Decimating small shapes with thin edges (teeth) sometimes collapses two
    sheets onto one point: manifold by connectivity, but merging by position
    (what a welder or importer may do) would make it non-manifold.
    """
    out = np.array(verts, dtype=np.float64)
    for _ in range(4):
        _, first, inverse = np.unique(np.round(out, 7), axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        dup = first[inverse] != np.arange(len(out))
        if not dup.any():
            break
        # rank of each duplicate within its group, in vertex order (deterministic)
        rank = np.zeros(len(out))
        seen: dict[int, int] = {}
        for i in np.nonzero(dup)[0]:
            g = int(inverse[i])
            seen[g] = seen.get(g, 0) + 1
            rank[i] = seen[g]
        out[:, 0] += 2e-6 * rank
    return out


def _keep_largest_component(mesh: trimesh.Trimesh) -> None:
    """Drop all but the largest edge-connected component, keeping face and vertex order.

    Not `mesh.split`: it lists each component's faces in the order of an
    unstable np.argsort, and numpy's sort is SIMD-dispatched (AVX512 / AVX2 /
    scalar give different orders of equal keys), so the output face order and
    with it the GLB bytes would depend on the CPU.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(mesh.faces)
    adj = np.asarray(mesh.face_adjacency, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(adj), dtype=np.int8), (adj[:, 0], adj[:, 1])), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    if count <= 1:
        return
    # component membership does not depend on edge order; ties go to the lowest label
    sizes = np.bincount(labels, minlength=count)
    mesh.update_faces(labels == int(np.argmax(sizes)))
    mesh.remove_unreferenced_vertices()


def _snap(verts: np.ndarray, fn, max_step: float = 0.0004) -> tuple[np.ndarray, np.ndarray]:
    """Pull decimated vertices back onto the zero set; return (verts, unit normals).

    Quadric decimation keeps vertices near, not on, the surface and leaves
    long thin triangles; one Newton step plus normals from the field's
    gradient make the shading as smooth as the undecimated mesh.
    """
    eps = 2e-4

    def grad(v32, f0):
        g = np.stack([fn(v32 + np.asarray(e, np.float32)) - f0 for e in np.eye(3) * eps], axis=1) / eps
        return g.astype(np.float64)

    v32 = verts.astype(np.float32)
    f0 = fn(v32)
    g = grad(v32, f0)
    step = np.clip(f0 / np.maximum(pm.dot3(g, g), 1e-6), -max_step, max_step)
    verts = verts - step[:, None] * g
    v32 = verts.astype(np.float32)
    n = grad(v32, fn(v32))
    return verts, pm.normalize(n, 1e-9)


TEETH_CELL = 0.0005
TEETH_FACES = 3000
GUMS_CELL = 0.0006
GUMS_FACES = 1500


def _row(L: Layout, lower: bool, s: float, z_range) -> dict[str, trimesh.Trimesh]:
    arch = dental_arch(L, lower)
    lo, hi = _arch_box(arch, L)
    name = "lower" if lower else "upper"
    out = {}
    for i, (part, cell, target) in enumerate((("teeth", TEETH_CELL, TEETH_FACES), ("gums", GUMS_CELL, GUMS_FACES))):
        def fn(q, i=i):
            return teeth_sdf(q, L, arch, gums_only=i == 1)
        v, f = S.mesh_sdf(fn, lo, hi, cell)
        v, f = _finish(v, f, target, merge=False)
        v, n = _snap(v, fn, max_step=0.0001)
        # the rows sit at the front, away from the cylindrical UV seam: no seam duplicates
        out[f"{part}_{name}"] = U.textured(_separate_coincident(v * s), f, U.cylindrical_uv(v, f, z_range), n)
    return out


def build_head(params: HeadParams) -> dict[str, trimesh.Trimesh]:
    """All parts of one head, in metres (+Z up, face toward -Y), each with UVs."""
    params.validate()
    L = make_layout(params)
    s = params.head_scale
    v, f = S.mesh_sdf(lambda q: skin_sdf(q, L), *SKIN_BOX, SKIN_CELL, detail=SKIN_DETAIL)
    v, f = _finish(v, f, SKIN_FACES)
    v, n = _snap(v, lambda q: skin_sdf(q, L))
    z_range = (BUST_BOTTOM, 0.125)
    parts = {"skin": U.textured(v * s, f, U.cylindrical_uv(v, f, z_range), n)}
    for name, m in E.eye_parts(L.eye_c * s, L.gaze, scale=s).items():
        parts[name] = m
    mask, line = scalp_mask(v, f, L)
    lift = SCALP_LIFT[0] + (SCALP_LIFT[1] - SCALP_LIFT[0]) * S.smoothstep(0.0, 0.006, -line)
    sv, sf, sn = _shell(v, f, n, mask, lift)
    parts["scalp"] = U.textured(sv * s, sf, U.cylindrical_uv(sv, sf, z_range), sn)
    for lower in (False, True):
        parts.update(_row(L, lower, s, z_range))
    mv, mf, mn = _shell(v, f, n, mouth_mask(v, f, L), 0.00015)
    if len(mf):
        parts["mouth"] = U.textured(mv * s, mf, U.cylindrical_uv(mv, mf, z_range), mn)
    return parts
