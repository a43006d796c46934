"""Equirectangular geometry shared by the catalog, synthgen and relight.

The one convention (DESIGN.md, "Camera-frame env convention"): a pixel at
normalised (u, v), from the top-left corner, holds radiance arriving from

    phi = 2*pi*(u - 0.5),  theta = pi*(0.5 - v)
    d = (sin(phi) cos(theta), sin(theta), cos(phi) cos(theta))

+y is up and u = 0.5 looks along +z, which points from the subject toward
the camera. Azimuth is phi in degrees, elevation is theta.

This is a map as the *camera* sees the lighting (u = 0.75 lights the
subject from image right). A panorama file is stored as seen from *inside*
(turning right moves right in the image), which is the mirror image: for a
camera in front of the face at lighting rotation 0, the camera-frame map is
the file flipped left-right (:func:`front_frame`). Catalog statistics and
procedural generator parameters are given in that front frame, so
"azimuth 40" means 40 degrees toward image right at rotation 0.
"""

from __future__ import annotations

import numpy as np

LUMA_709 = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def pixel_angles(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(phi, theta) at pixel centres, shapes (W,) and (H,)."""
    u = (np.arange(width) + 0.5) / width
    v = (np.arange(height) + 0.5) / height
    return 2 * np.pi * (u - 0.5), np.pi * (0.5 - v)


def directions(height: int, width: int) -> np.ndarray:
    """Unit direction per pixel, shape (H, W, 3)."""
    phi, theta = pixel_angles(height, width)
    p, t = np.meshgrid(phi, theta)
    return np.stack([np.sin(p) * np.cos(t), np.sin(t), np.cos(p) * np.cos(t)], axis=-1)


def solid_angles(height: int, width: int) -> np.ndarray:
    """Solid angle of each pixel row, shape (H, 1); they sum to 4*pi over the map."""
    _, theta = pixel_angles(height, width)
    return (np.cos(theta) * (2 * np.pi / width) * (np.pi / height))[:, None]


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3] @ LUMA_709


def azimuth_elevation(d: np.ndarray) -> tuple[float, float]:
    d = np.asarray(d, dtype=np.float64)
    d = d / max(np.linalg.norm(d), 1e-12)
    return float(np.degrees(np.arctan2(d[0], d[2]))), float(np.degrees(np.arcsin(np.clip(d[1], -1, 1))))


def direction_from_angles(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    p, t = np.radians(azimuth_deg), np.radians(elevation_deg)
    return np.array([np.sin(p) * np.cos(t), np.sin(t), np.cos(p) * np.cos(t)])


def rotate_azimuth(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """Turn the environment about +y by ``degrees`` (light at azimuth a moves to a + degrees).

    Whole-pixel shifts are exact; the fractional remainder is linearly
    interpolated between columns, which is what a renderer's lookup does too.
    """
    w = rgb.shape[1]
    shift = (degrees / 360.0) * w
    k = int(np.floor(shift))
    frac = shift - k
    a = np.roll(rgb, k, axis=1)
    if frac == 0:
        return a
    return (1 - frac) * a + frac * np.roll(rgb, k + 1, axis=1)


def ldr_encode(rgb: np.ndarray, exposure: float = 1.0) -> np.ndarray:
    """DESIGN.md LDR encoding: clip(E * exposure, 0, 1) ** (1/2.2), as uint8."""
    x = np.clip(np.asarray(rgb, dtype=np.float32) * exposure, 0.0, 1.0) ** (1 / 2.2)
    return np.round(x * 255).astype(np.uint8)


def front_frame(panorama: np.ndarray) -> np.ndarray:
    """A stored (inside-view) panorama as a frontal camera sees it at rotation 0, and back (an involution)."""
    return panorama[:, ::-1]
