"""Catalog metadata for an HDR map: size, luminance, dynamic range, key light direction."""

from __future__ import annotations

from typing import Any

import numpy as np

from assets_manifest import envmap


def hdri_metadata(rgb: np.ndarray) -> dict[str, Any]:
    """Statistics a user filters lightings by (``hdri.*`` columns of the manifest).

    Means are solid-angle weighted, so the poles of an equirectangular map do
    not count more than the horizon. The dominant direction is the
    luminance-weighted mean direction of the brightest 1% of the sphere:
    the sun or the key softbox, not the average sky. Directions are in the
    front frame of :mod:`assets_manifest.envmap` (azimuth 0 = in front of
    the face, +90 = image right, for a frontal camera at rotation 0).
    """
    rgb = envmap.front_frame(rgb)  # directions as a frontal camera sees them at rotation 0
    h, w = rgb.shape[:2]
    lum = envmap.luminance(np.maximum(rgb, 0.0)).astype(np.float64)
    omega = np.broadcast_to(envmap.solid_angles(h, w), lum.shape)
    mean = float((lum * omega).sum() / omega.sum())
    peak = float(lum.max())
    positive = lum[lum > 0]
    floor = float(np.percentile(positive, 1)) if positive.size else 0.0
    stops = float(np.log2(peak / max(floor, peak * 2.0**-40))) if peak > 0 else 0.0

    order = np.argsort(lum, axis=None)[::-1]
    cum = np.cumsum(omega.ravel()[order])
    top = order[: int(np.searchsorted(cum, 0.01 * 4 * np.pi)) + 1]
    dirs = envmap.directions(h, w).reshape(-1, 3)[top]
    weight = (lum.ravel()[top] * omega.ravel()[top])[:, None]
    d = (dirs * weight).sum(axis=0)
    norm = np.linalg.norm(d)
    d = d / norm if norm > 0 else np.array([0.0, 1.0, 0.0])
    az, el = envmap.azimuth_elevation(d)
    return {
        "width": int(w),
        "height": int(h),
        "mean_luminance": mean,
        "peak_luminance": peak,
        "dynamic_range_stops": stops,
        "dominant_direction": [float(x) for x in d],
        "dominant_azimuth_deg": az,
        "dominant_elevation_deg": el,
    }
