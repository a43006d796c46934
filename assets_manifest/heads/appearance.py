"""Colours of skin, iris and hair from pigment concentrations.

Skin: a two-layer spectral model. The epidermis holds melanin (volume
fraction), the dermis holds blood (haemoglobin volume fraction, fixed
oxygen saturation). The dermis' diffuse reflectance comes from the
diffusion approximation (Jensen et al. 2001), the epidermis attenuates it
on the way in and out, and the spectrum is integrated against the CIE 1931
observer (the Wyman-Sloan-Shirley analytic fit) under a D65-like illuminant
into linear sRGB. Absorption spectra follow Jacques' "Optical properties of
biological tissues" (2013) and Prahl's haemoglobin tables, sampled coarsely:
we need plausible albedos, not spectroscopy.

Iris and hair use cheap absorption models in RGB (the same eumelanin /
pheomelanin coefficients that Blender's Principled Hair BSDF uses).
"""

from __future__ import annotations

import numpy as np

from .. import portable_math as pm

# All exp/log/power/matrix products below go through portable_math (and fixed-
# order sums): numpy's SIMD transcendentals and BLAS round differently per CPU,
# and these colours are stored in the GLB.

_LAMBDA = np.arange(400.0, 701.0, 10.0)

# Molar extinction (cm^-1/M), Prahl, 400..700 nm every 10 nm.
_HBO2 = np.array([
    266232, 466816, 480360, 214120, 62816, 62816, 44480, 33209, 26629, 23684,
    20932, 20035, 24202, 39956, 53236, 43016, 32613, 44496, 50104, 14400,
    3200, 1506, 942, 610, 442, 368, 320, 294, 278, 276, 290], dtype=float)
_HB = np.array([
    223296, 303956, 407560, 353236, 413280, 103292, 23388, 16156, 14550, 16684,
    20862, 25773, 31590, 39036, 46592, 53412, 53788, 45072, 37020, 28324,
    14677, 9443, 6509, 5149, 4345, 3750, 3226, 2795, 2141, 1956, 1794], dtype=float)


def _cie_xyz_bar(lam: np.ndarray) -> np.ndarray:
    """CIE 1931 2-degree colour matching functions (Wyman et al. 2013 fit)."""
    def g(x, mu, s1, s2):
        s = np.where(x < mu, s1, s2)
        return pm.exp(-0.5 * ((x - mu) / s) ** 2)
    x = 1.056 * g(lam, 599.8, 37.9, 31.0) + 0.362 * g(lam, 442.0, 16.0, 26.7) \
        - 0.065 * g(lam, 501.1, 20.4, 26.2)
    y = 0.821 * g(lam, 568.8, 46.9, 40.5) + 0.286 * g(lam, 530.9, 16.3, 31.1)
    z = 1.217 * g(lam, 437.0, 11.8, 36.0) + 0.681 * g(lam, 459.0, 26.0, 13.8)
    return np.stack([x, y, z], axis=1)


def _illuminant(lam: np.ndarray, temp: float = 6504.0) -> np.ndarray:
    """Blackbody spectrum standing in for D65 (white-balanced below anyway)."""
    lm = lam * 1e-9
    return 1.0 / (pm.power(lm, 5) * (pm.exp(1.4388e-2 / (lm * temp)) - 1.0))


_XYZ_TO_SRGB = np.array([[3.2406, -1.5372, -0.4986],
                         [-0.9689, 1.8758, 0.0415],
                         [0.0557, -0.2040, 1.0570]])


def _integrate(w: np.ndarray, cmf: np.ndarray) -> np.ndarray:
    """w @ cmf as a sequential sum over wavelengths (a BLAS gemv would pick its own order)."""
    acc = np.zeros(cmf.shape[1])
    for i in range(len(w)):
        acc = acc + w[i] * cmf[i]
    return acc


def _spectrum_to_linear_srgb(refl: np.ndarray) -> np.ndarray:
    cmf = _cie_xyz_bar(_LAMBDA)
    ill = _illuminant(_LAMBDA)
    xyz = _integrate(refl * ill, cmf)
    white = _integrate(ill, cmf)
    # von Kries in XYZ: a perfect reflector maps to sRGB (1, 1, 1)
    rgb = pm.matmul(xyz / white * np.array([0.9505, 1.0, 1.089]), _XYZ_TO_SRGB.T)
    return np.clip(rgb, 0.0, 1.0)


def _diffuse_reflectance(mua: np.ndarray, musp: np.ndarray, eta: float = 1.4) -> np.ndarray:
    """Total diffuse reflectance of a semi-infinite medium (dipole model)."""
    fdr = -1.440 / (eta * eta) + 0.710 / eta + 0.668 + 0.0636 * eta
    a_coef = (1 + fdr) / (1 - fdr)
    alpha = musp / (mua + musp)
    s = np.sqrt(3.0 * (1.0 - alpha))
    return 0.5 * alpha * (1 + pm.exp(-4.0 / 3.0 * a_coef * s)) * pm.exp(-s)


def skin_albedo(melanin: float, haemoglobin: float, oxygenation: float = 0.75) -> list[float]:
    """Linear sRGB diffuse albedo of skin.

    melanin: melanosome volume fraction in the epidermis (0.01 fair .. 0.45 very dark).
    haemoglobin: blood volume fraction in the dermis (0.001 .. 0.1).
    """
    lam = _LAMBDA
    mua_mel = 6.6e10 * pm.power(lam, -3.33)                  # mm^-1, eumelanin
    mua_base = 0.0244 + 8.53 * pm.exp(-(lam - 154.0) / 66.2)  # mm^-1, bloodless tissue
    eps = oxygenation * _HBO2 + (1 - oxygenation) * _HB
    mua_blood = 2.303 * eps * (150.0 / 64500.0) / 10.0       # mm^-1, whole blood
    mua_epi = melanin * mua_mel + (1 - melanin) * mua_base
    mua_derm = haemoglobin * mua_blood + (1 - haemoglobin) * mua_base
    musp_derm = 8.0 * pm.power(lam / 500.0, -1.4)           # reduced scattering, mm^-1
    epi_thickness = 0.08                                     # mm
    t_epi = pm.exp(-mua_epi * epi_thickness * 2.0)           # in and out
    # 0.03: grey diffuse scattering of the stratum corneum above the melanin
    refl = 0.03 + t_epi * _diffuse_reflectance(mua_derm, musp_derm)
    return [float(c) for c in np.round(_spectrum_to_linear_srgb(refl), 5)]


def fitzpatrick_type(melanin: float) -> int:
    """Fitzpatrick phototype (1..6) implied by the epidermal melanin fraction."""
    edges = FITZPATRICK_MELANIN_EDGES
    for t in range(6):
        if melanin < edges[t + 1]:
            return t + 1
    return 6


# Melanin fraction bands per Fitzpatrick type (I..VI); sampling draws a type,
# then a fraction inside its band, so all six types are equally represented.
FITZPATRICK_MELANIN_EDGES = (0.0, 0.035, 0.07, 0.12, 0.19, 0.30, 0.50)

_EU = np.array([0.506, 0.841, 1.653])    # Blender Principled Hair eumelanin sigma
_PHEO = np.array([0.343, 0.733, 1.924])


def hair_albedo(melanin: float, redness: float) -> list[float]:
    """Linear RGB albedo of a hair mass from melanin amount (0..1) and pheomelanin ratio."""
    qty = -pm.log(max(1.0 - 0.98 * melanin, 1e-4))
    sigma = qty * ((1 - redness) * _EU + redness * _PHEO)
    rgb = 0.75 * pm.exp(-sigma * 3.0) + 0.008
    return [float(c) for c in np.round(rgb, 5)]


def iris_albedo(melanin: float) -> list[float]:
    """Linear RGB iris colour: blue-grey stroma (0) through hazel/green to dark brown (1)."""
    stroma = np.array([0.30, 0.42, 0.55])
    absorb = np.array([1.2, 2.2, 4.2]) * 2.2 * melanin
    rgb = stroma * pm.exp(-absorb) + np.array([0.010, 0.006, 0.003])
    return [float(c) for c in np.round(rgb, 5)]


def lip_albedo(skin_rgb: list[float], haemoglobin: float) -> list[float]:
    """Lips: thin stratum corneum over dense capillaries, i.e. skin shifted toward red."""
    s = np.asarray(skin_rgb)
    tint = np.array([1.0, 0.55, 0.6]) * (0.8 + 2.0 * min(haemoglobin, 0.1))
    return [float(c) for c in np.round(np.clip(s * tint, 0.0, 1.0), 5)]
