"""Procedural HDR environment maps: skies, overcast, studio rigs and rim lights.

Each map is a pure function of ``(style, seed)``: the parameters are drawn
with ``numpy.random.default_rng(seed)`` and recorded (``generator_params`` in
the manifest), so a map can be regenerated bit for bit. Radiance is linear
Rec.709, scaled so a frontal-ish key gives a well exposed render at exposure
1.0 (mean luminance roughly 0.3-1.5), like the maps bpy ships.

Light positions in the parameters are azimuth/elevation in the front frame
of :mod:`assets_manifest.envmap` (azimuth 0 = in front of the face at
rotation 0, +90 = image right); the stored file is the usual inside-view
panorama.

Styles:
  clear_sky  sun of random elevation/azimuth/turbidity over a blue gradient
  hazy_sky   the same with high turbidity: a softer, larger sun glow
  overcast   CIE overcast luminance (brighter zenith), slow cloud modulation
  studio     dark room with 1-4 rectangular softboxes of random size,
             colour temperature, intensity and placement
  rim        coloured rim lights from behind plus a weak fill from the front
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from assets_manifest import envmap

STYLES = ("clear_sky", "hazy_sky", "overcast", "studio", "rim")
GENERATOR = "synthlight.procedural_hdri/1"


@dataclass(frozen=True)
class ProceduralHDRI:
    style: str
    seed: int
    params: dict[str, Any]
    rgb: np.ndarray  # float32 (H, W, 3), linear


def cct_to_rgb(kelvin: float) -> np.ndarray:
    """Linear Rec.709 colour of a Planckian light of ``kelvin``, unit luminance.

    Kim et al. cubic fit of the Planckian locus in CIE xy (1667-25000 K).
    """
    t = float(np.clip(kelvin, 1667.0, 25000.0))
    if t <= 4000:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    xyz = np.array([x / y, 1.0, (1 - x - y) / y])
    m = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])
    rgb = np.maximum(m @ xyz, 0.0)
    return rgb / float(rgb @ envmap.LUMA_709)


def _hue_rgb(hue: float, saturation: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
    rgb = 1.0 - saturation * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return rgb / float(rgb @ envmap.LUMA_709)


def _lobe(dirs: np.ndarray, centre: np.ndarray, width_deg: float) -> np.ndarray:
    cosang = np.clip(dirs @ centre, -1.0, 1.0)
    ang = np.degrees(np.arccos(cosang))
    return np.exp(-0.5 * (ang / width_deg) ** 2)


def _normalised_disc(dirs, omega, centre, radius_deg, total):
    """A small bright disc whose integrated radiance is ``total`` whatever the resolution."""
    w = _lobe(dirs, centre, radius_deg)
    w[w < 1e-4] = 0.0
    integral = float((w * omega).sum())
    return w * (total / max(integral, 1e-12))


def _cloud_field(rng: np.random.Generator, dirs: np.ndarray, clouds: int = 14) -> np.ndarray:
    """Smooth random field on the sky: soft blobs of random size, brighter or darker, about [-1, 1]."""
    field = np.zeros(dirs.shape[:2])
    for _ in range(clouds):
        centre = envmap.direction_from_angles(rng.uniform(-180, 180), rng.uniform(5, 80))
        field += rng.uniform(-1, 1) * _lobe(dirs, centre, rng.uniform(8, 30))
    return np.clip(field, -1, 1)


def _ground(dirs, albedo_rgb, level):
    below = dirs[..., 1] < 0
    return below[..., None] * (albedo_rgb * level)


def _sky(rng, dirs, omega, hazy: bool) -> tuple[np.ndarray, dict[str, Any]]:
    turbidity = rng.uniform(5.0, 10.0) if hazy else rng.uniform(1.8, 4.0)
    elevation = rng.uniform(3.0, 75.0)
    azimuth = rng.uniform(-180.0, 180.0)
    sun_dir = envmap.direction_from_angles(azimuth, elevation)
    # Low sun: warmer and dimmer (longer air path). Haze: more sun energy goes to the glow.
    air_mass = 1.0 / (np.sin(np.radians(elevation)) + 0.15 * (elevation + 3.885) ** -1.253)
    sun_kelvin = float(np.clip(5800.0 - 380.0 * air_mass - 60.0 * turbidity, 1900.0, 5800.0))
    transmittance = float(np.exp(-0.06 * turbidity * air_mass ** 0.8))
    sun_total = 18.0 * transmittance
    glow_share = float(np.clip(0.06 * turbidity, 0.08, 0.6))

    up = np.clip(dirs[..., 1], 0.0, 1.0)
    zenith = np.array([0.25, 0.45, 1.0]) * (1.0 - 0.05 * turbidity) + 0.05 * turbidity
    horizon = np.array([0.85, 0.9, 1.0])
    t = (1.0 - up) ** (3.0 + turbidity * 0.3)
    base = zenith[None, None] * (1 - t[..., None]) + horizon[None, None] * t[..., None]
    sky_level = 0.5 + 0.25 * np.sin(np.radians(elevation)) + 0.04 * turbidity
    sky = base * sky_level * (dirs[..., 1:2] >= 0)
    glow = _lobe(dirs, sun_dir, 1.5 + 0.6 * turbidity)[..., None] * (dirs[..., 1:2] >= -0.02)
    glow_total = float((glow[..., 0] * omega).sum())
    sun_rgb = cct_to_rgb(sun_kelvin)
    sky = sky + glow * (sun_total * glow_share / max(glow_total, 1e-9)) * sun_rgb
    disc = _normalised_disc(dirs, omega, sun_dir, 0.6, sun_total * (1 - glow_share))
    ground_albedo = rng.uniform(0.15, 0.35) * np.array([1.0, 0.92, 0.8])
    irradiance = sky_level * 0.6 + sun_total * np.sin(np.radians(elevation)) / np.pi
    rgb = sky + disc[..., None] * sun_rgb + _ground(dirs, ground_albedo, irradiance * 0.5)
    params = {
        "turbidity": turbidity,
        "sun_elevation_deg": elevation,
        "sun_azimuth_deg": azimuth,
        "sun_kelvin": sun_kelvin,
        "sun_intensity": sun_total,
        "ground_albedo": float(ground_albedo[0]),
    }
    return rgb, params


def _overcast(rng, dirs, omega):
    level = rng.uniform(0.6, 1.4)
    kelvin = rng.uniform(5800.0, 7500.0)
    cloud_contrast = rng.uniform(0.05, 0.3)
    up = np.clip(dirs[..., 1], 0.0, 1.0)
    lum = level * (1.0 + 2.0 * up) / 3.0  # CIE standard overcast sky
    lum = lum * (1.0 + cloud_contrast * _cloud_field(rng, dirs))
    sky = (lum * (dirs[..., 1] >= 0))[..., None] * cct_to_rgb(kelvin)
    ground = _ground(dirs, rng.uniform(0.1, 0.3) * np.array([0.9, 0.95, 1.0]), level * 0.5)
    return sky + ground, {"level": level, "kelvin": kelvin, "cloud_contrast": cloud_contrast}


def _rect_light(dirs, azimuth, elevation, width_deg, height_deg, softness):
    """An area light seen as a soft-edged rectangle on the sphere."""
    fwd = envmap.direction_from_angles(azimuth, elevation)
    right = np.cross([0.0, 1.0, 0.0], fwd)
    right = right / max(np.linalg.norm(right), 1e-9)
    upv = np.cross(fwd, right)
    z = dirs @ fwd
    safe = np.where(z > 1e-3, z, 1.0)
    x, y = (dirs @ right) / safe, (dirs @ upv) / safe
    hx, hy = np.tan(np.radians(width_deg / 2)), np.tan(np.radians(height_deg / 2))
    edge = softness * min(hx, hy) + 1e-3

    def smooth(a, half):
        return np.clip((half - np.abs(a)) / edge + 0.5, 0.0, 1.0)

    return np.where(z > 1e-3, smooth(x, hx) * smooth(y, hy), 0.0)


def _studio(rng, dirs, omega):
    n = int(rng.integers(1, 5))
    ambient = rng.uniform(0.01, 0.06)
    rgb = np.full(dirs.shape, ambient) * (0.6 + 0.4 * np.clip(dirs[..., 1:2] + 0.5, 0, 1))
    lights = []
    for i in range(n):
        key = i == 0
        light = {
            "azimuth_deg": rng.uniform(-70, 70) if key else rng.uniform(-180, 180),
            "elevation_deg": rng.uniform(0, 50) if key else rng.uniform(-10, 60),
            "width_deg": rng.uniform(10, 50),
            "height_deg": rng.uniform(10, 60),
            "kelvin": rng.uniform(3000, 7500),
            "irradiance": rng.uniform(2.0, 4.0) if key else rng.uniform(0.3, 2.0),
            "softness": rng.uniform(0.05, 0.4),
        }
        shape = _rect_light(dirs, light["azimuth_deg"], light["elevation_deg"], light["width_deg"],
                            light["height_deg"], light["softness"])
        area = float((shape * omega).sum())
        rgb = rgb + shape[..., None] * (light["irradiance"] / max(area, 1e-9)) * cct_to_rgb(light["kelvin"])
        lights.append(light)
    return rgb, {"ambient": ambient, "softboxes": lights}


def _rim(rng, dirs, omega):
    n = int(rng.integers(1, 3))
    fill_level = rng.uniform(0.03, 0.2)
    fill_kelvin = rng.uniform(4000, 7000)
    rgb = np.full(dirs.shape, 0.01) + _lobe(dirs, envmap.direction_from_angles(0, 10), 50.0)[..., None] * (
        fill_level * cct_to_rgb(fill_kelvin)
    )
    lights = []
    side = rng.choice([-1.0, 1.0])
    for i in range(n):
        light = {
            "azimuth_deg": float(side * (-1) ** i * rng.uniform(110, 165)),
            "elevation_deg": rng.uniform(-5, 45),
            "width_deg": rng.uniform(4, 15),
            "height_deg": rng.uniform(30, 80),
            "hue": rng.uniform(0, 1),
            "saturation": rng.uniform(0.5, 0.95),
            "irradiance": rng.uniform(1.5, 4.0),
        }
        shape = _rect_light(dirs, light["azimuth_deg"], light["elevation_deg"], light["width_deg"],
                            light["height_deg"], 0.2)
        area = float((shape * omega).sum())
        colour = _hue_rgb(light["hue"], light["saturation"])
        rgb = rgb + shape[..., None] * (light["irradiance"] / max(area, 1e-9)) * colour
        lights.append(light)
    return rgb, {"fill_level": fill_level, "fill_kelvin": fill_kelvin, "rim_lights": lights}


def generate(style: str, seed: int, width: int = 1024) -> ProceduralHDRI:
    """One map of ``style`` from ``seed``; identical arrays for identical arguments."""
    if style not in STYLES:
        raise ValueError(f"procedural HDRI style {style!r} is not one of {', '.join(STYLES)}")
    if width < 64 or width % 2:
        raise ValueError(f"procedural HDRI width {width} must be even and >= 64")
    rng = np.random.default_rng(np.random.SeedSequence([seed, STYLES.index(style)]))
    h = width // 2
    dirs = envmap.directions(h, width)
    omega = np.broadcast_to(envmap.solid_angles(h, width), (h, width))
    if style in ("clear_sky", "hazy_sky"):
        rgb, params = _sky(rng, dirs, omega, hazy=style == "hazy_sky")
    elif style == "overcast":
        rgb, params = _overcast(rng, dirs, omega)
    elif style == "studio":
        rgb, params = _studio(rng, dirs, omega)
    else:
        rgb, params = _rim(rng, dirs, omega)
    # laid out in the front frame (parameters read as seen from the camera); stored as a panorama
    rgb = np.ascontiguousarray(envmap.front_frame(np.maximum(rgb, 0.0))).astype(np.float32)
    params = {"style": style, "seed": int(seed), "width": width, **_plain(params)}
    return ProceduralHDRI(style=style, seed=int(seed), params=params, rgb=rgb)


def _plain(x):
    """numpy scalars -> Python, so params serialise to JSON identically everywhere."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def plan_styles(count: int) -> list[tuple[str, int]]:
    """``count`` (style, seed) pairs cycling through the styles, seeds 0, 1, 2, ..."""
    return [(STYLES[i % len(STYLES)], i // len(STYLES)) for i in range(count)]
