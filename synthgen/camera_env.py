"""Env maps in the camera frame, and the background a camera sees: pure numpy.

Blender places an equirectangular world texture so that world direction
``D`` (Z up) reads the image at

    u = 0.5 - atan2(D.y, D.x) / (2 pi),   v = 0.5 + asin(D.z) / pi   (v from the bottom)

A lighting's ``rotation_deg`` is defined so that, for a camera in front of
the face (yaw 0; heads look toward -Y), rotation 0 puts the map's centre
column (azimuth 0 of the catalog's ``dominant_azimuth_deg``) in front of the
face, and rotation r moves every light by +r in azimuth, exactly like
:func:`assets_manifest.envmap.rotate_azimuth`. In Blender terms the scene
is turned by :func:`scene_turn_deg` about +Z relative to the world texture,
so a camera with world-from-camera rotation ``R`` (Blender camera axes: +x
right, +y up, +z from the subject toward the camera, exactly DESIGN.md's
camera frame) sees, in camera direction ``d``, the source pixel at
``Rz(scene_turn_deg(rotation)) R d``. Both the ``env_XX`` members and the ``env``
background are computed here, and relight uses the same functions for its
inputs, so renders, env maps and model inputs agree by construction.
"""

from __future__ import annotations

import numpy as np

from assets_manifest import envmap

# A camera in front of the subject (at -Y, looking at +Y, Z up): the frame a
# portrait is assumed to be shot in when no camera is known (relight inputs).
FRONTAL_CAMERA = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def scene_turn_deg(rotation_deg: float) -> float:
    """How far (about +Z) the head and camera turn against the world texture for a lighting rotation.

    Blender's world texture shows its centre column toward +X; the face looks
    toward -Y. Turning the scene by +90 degrees brings the centre column in
    front of the face; a lighting rotation of +r turns the lights by +r,
    i.e. the scene by -r.
    """
    return 90.0 - rotation_deg


def rot_z(degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def sample_blender_equirect(src: np.ndarray, d_world: np.ndarray) -> np.ndarray:
    """Bilinear lookup of a top-row-first equirect image in Blender's world placement."""
    h, w = src.shape[:2]
    d = d_world / np.linalg.norm(d_world, axis=-1, keepdims=True)
    u = 0.5 - np.arctan2(d[..., 1], d[..., 0]) / (2 * np.pi)
    v_top = 0.5 - np.arcsin(np.clip(d[..., 2], -1, 1)) / np.pi
    x = u * w - 0.5
    y = np.clip(v_top * h - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0w, x1w = x0 % w, (x0 + 1) % w
    y1 = np.minimum(y0 + 1, h - 1)
    top = src[y0, x0w] * (1 - fx) + src[y0, x1w] * fx
    bottom = src[y1, x0w] * (1 - fx) + src[y1, x1w] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def camera_frame_env(src: np.ndarray, world_from_camera: np.ndarray, rotation_deg: float,
                     width: int = 256, supersample: int = 4) -> np.ndarray:
    """The lighting as the camera frame sees it, in DESIGN.md's convention, (width/2, width, 3).

    ``supersample`` x ``supersample`` directions per output pixel are averaged
    (box filter), so a small output still integrates a large source.
    """
    h = width // 2
    fine = envmap.directions(h * supersample, width * supersample)
    d_world = fine @ (rot_z(scene_turn_deg(rotation_deg)) @ world_from_camera).T
    out = sample_blender_equirect(src, d_world)
    return out.reshape(h, supersample, width, supersample, 3).mean(axis=(1, 3))


def camera_ray_directions(resolution: int, focal_mm: float, sensor_mm: float, supersample: int = 1) -> np.ndarray:
    """Camera-frame ray directions through pixel centres (square image, top row first)."""
    n = resolution * supersample
    half = sensor_mm / 2 / focal_mm  # tan(fov/2), sensor fitted to the square image
    t = ((np.arange(n) + 0.5) / n * 2 - 1) * half
    x, y = np.meshgrid(t, -t)
    return np.stack([x, y, -np.ones_like(x)], axis=-1)


def background_plate(src: np.ndarray, world_from_camera: np.ndarray, rotation_deg: float, resolution: int,
                     focal_mm: float, sensor_mm: float, supersample: int = 2) -> np.ndarray:
    """What a pinhole camera sees of the environment behind the subject, (res, res, 3) linear."""
    d = camera_ray_directions(resolution, focal_mm, sensor_mm, supersample)
    out = sample_blender_equirect(src, d @ (rot_z(scene_turn_deg(rotation_deg)) @ world_from_camera).T)
    return out.reshape(resolution, supersample, resolution, supersample, 3).mean(axis=(1, 3))
