"""Eyeball and cornea meshes (closed UV spheres around the gaze axis).

The eyeball carries sclera, iris and pupil as regions of its UV v
coordinate (v = polar angle from the gaze axis / pi); the iris region is
flattened into a plane slightly behind the limbus, as in a real eye, so a
refracting cornea in front of it reads correctly. The cornea is a separate
closed shell: the eyeball sphere grown by 0.4 mm everywhere, bulging into a
7.8 mm-radius cap in front of the iris.
"""

from __future__ import annotations

import numpy as np
import trimesh

from .. import portable_math as pm
from .uv import seamless_normals

EYE_RADIUS = 0.0122
CORNEA_RADIUS = 0.0078
CORNEA_APEX = EYE_RADIUS + 0.0026   # distance of the corneal apex from the eye centre
CORNEA_GAP = 0.0004
IRIS_RADIUS = 0.0061
# Eyeball UV: v = polar angle from the gaze axis / pi (0 at the pupil centre).
IRIS_V = float(pm.arcsin(IRIS_RADIUS / EYE_RADIUS) / np.pi)
EYE_UV = {"iris_v": round(IRIS_V, 5), "pupil_v": round(IRIS_V * 0.38, 5), "limbus_width_v": 0.012}


def gaze_direction(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Unit gaze vector; yaw + toward the head's left (+X), pitch + up, 0/0 = -Y."""
    # portable_math throughout this module: numpy's sin/cos/arcsin and BLAS
    # products round differently per CPU, and the GLB bytes must not
    sy, cy = pm.sincos(pm.radians(yaw_deg))
    sp, cp = pm.sincos(pm.radians(pitch_deg))
    return np.array([sy * cp, -cy * cp, sp])


def _frame(g: np.ndarray) -> np.ndarray:
    """Columns: x (horizontal), y (vertical), z = gaze."""
    up = np.array([0.0, 0.0, 1.0])
    x = pm.normalize(pm.cross(up, g))
    y = pm.cross(g, x)
    return np.stack([x, y, g], axis=1)


def cornea_center(c: np.ndarray, g: np.ndarray) -> np.ndarray:
    return np.asarray(c) + (CORNEA_APEX - CORNEA_RADIUS) * g


def _uv_sphere(radius_of_theta, n_theta: int, n_phi: int):
    """Closed sphere around +z with UV seam duplicates; returns (v, f, uv) in the local frame."""
    theta = np.linspace(0.0, np.pi, n_theta + 1)[1:-1]
    phi = np.linspace(0.0, 2 * np.pi, n_phi + 1)          # last column duplicates the first
    T, P = np.meshgrid(theta, phi, indexing="ij")
    r = radius_of_theta(T)
    sT, cT = pm.sincos(T)
    sP, cP = pm.sincos(P)
    ring = np.stack([r * sT * cP, r * sT * sP, r * cT], -1).reshape(-1, 3)
    uv_ring = np.stack([P / (2 * np.pi), T / np.pi], -1).reshape(-1, 2)
    r0 = float(radius_of_theta(np.array([0.0]))[0])
    r1 = float(radius_of_theta(np.array([np.pi]))[0])
    verts = np.vstack([[[0, 0, r0]], ring, [[0, 0, -r1]]])
    uv = np.vstack([[[0.5, 0.0]], uv_ring, [[0.5, 1.0]]])
    nr, nc = len(theta), n_phi + 1

    def vid(i, j):
        return 1 + i * nc + j

    faces = []
    for j in range(n_phi):
        faces.append([0, vid(0, j), vid(0, j + 1)])
    for i in range(nr - 1):
        for j in range(n_phi):
            a, b, c, d = vid(i, j), vid(i, j + 1), vid(i + 1, j), vid(i + 1, j + 1)
            faces.append([a, c, b])
            faces.append([b, c, d])
    last = len(verts) - 1
    for j in range(n_phi):
        faces.append([last, vid(nr - 1, j + 1), vid(nr - 1, j)])
    return verts, np.asarray(faces, dtype=np.int64), uv


def _eyeball_radius(theta: np.ndarray) -> np.ndarray:
    ti = pm.arcsin(IRIS_RADIUS / EYE_RADIUS)
    plane = (EYE_RADIUS * pm.cos(ti) - 0.0003) / pm.cos(np.minimum(theta, ti))
    # blend from the recessed iris plane to the sphere across the limbus
    w = np.clip((theta - ti * 0.9) / (ti * 0.2), 0.0, 1.0)
    w = w * w * (3 - 2 * w)
    return np.where(theta < ti * 0.9, plane, (1 - w) * np.minimum(plane, EYE_RADIUS) + w * EYE_RADIUS)


def _cornea_radius(theta: np.ndarray) -> np.ndarray:
    dc = CORNEA_APEX - CORNEA_RADIUS
    st, ct = pm.sincos(theta)
    disc = CORNEA_RADIUS * CORNEA_RADIUS - (dc * st) ** 2
    bulge = np.where(disc > 0, dc * ct + np.sqrt(np.maximum(disc, 0.0)), 0.0)
    base = EYE_RADIUS + CORNEA_GAP
    k = 0.0008   # smooth max: the cornea-sclera junction is a soft groove
    h = np.clip(0.5 + 0.5 * (bulge - base) / k, 0.0, 1.0)
    return base * (1 - h) + bulge * h + k * h * (1 - h)


def _place(verts: np.ndarray, center: np.ndarray, g: np.ndarray) -> np.ndarray:
    return pm.matmul(verts, _frame(g).T) + center


def _mesh(v: np.ndarray, f: np.ndarray, uv: np.ndarray) -> trimesh.Trimesh:
    m = trimesh.Trimesh(v, f, process=False, visual=trimesh.visual.TextureVisuals(uv=uv))
    m.vertex_normals = seamless_normals(v, f)
    return m


def eye_parts(centers: np.ndarray, gaze: np.ndarray, scale: float = 1.0,
              suffixes=("L", "R")) -> dict[str, trimesh.Trimesh]:
    """Eyeball and cornea (radii times `scale`) for each eye centre; all look along `gaze`."""
    parts = {}
    ev, ef, euv = _uv_sphere(_eyeball_radius, 28, 36)
    cv, cf, cuv = _uv_sphere(_cornea_radius, 28, 36)
    for c, s in zip(centers, suffixes):
        parts[f"eye_{s}"] = _mesh(_place(ev * scale, c, gaze), ef, euv)
        parts[f"cornea_{s}"] = _mesh(_place(cv * scale, c, gaze), cf, cuv)
    return parts
