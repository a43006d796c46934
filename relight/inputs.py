"""Inputs of ``relight infer``: a portrait (any size, optional mask) and a target lighting.

* :func:`model_geometry` reads the sizes a model was trained at: the training
  run's ``config.json`` beside ``MODEL/`` (``data.resolution``, ``env_size``,
  ``mask_input``), else the UNet's ``sample_size`` x the VAE's downsampling.
* :func:`read_portrait` centre-crops and resizes like the training loader
  (:mod:`relight.data`), any size (an 8x8 or 1x1 image is upscaled); the
  mask comes from ``--mask``, else the PNG's alpha (unless it is fully opaque
  or fully transparent), else it is estimated from a plain backdrop
  (:func:`estimate_mask`), else the whole image is the subject.
* :func:`resolve_env` turns ``--env`` into an HDR array: a ``.exr``/``.hdr``
  path or URL, ``procedural:STYLE:SEED``, or the name of a built-in map
  (``studio``, ``forest``, ... from the bpy wheel, or any HDRI of a catalog
  manifest given with ``--catalog``).
* :func:`env_condition` rotates and exposes it into the camera frame with
  :func:`relight.envmaps.camera_frame_ldr`, the code synthgen writes
  ``env_XX`` with, and resizes it to the model's env size as the loader does.
  A map need not be 2:1: it is read as an equirectangular map over its whole
  width and height (a square EXR is resampled, not refused as ``assets_manifest
  validate`` would for a catalog).

Every problem is an :class:`InputError` (a ``ValueError``: one line, exit 2).
"""

from __future__ import annotations

import difflib
import glob
import json
import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from assets_manifest import hdri_io, procedural_hdri
from assets_manifest.cli_errors import runtime
from relight import envmaps

HDR_SUFFIXES = (".exr", ".hdr")


class InputError(ValueError):
    """A bad inference input; the message names the file, flag or name."""

    exit_code = 2  # bad usage: a flag's value; missing or unreadable files are marked runtime() (exit 1)


@dataclass(frozen=True)
class Geometry:
    """Sizes and preprocessing a model expects."""

    resolution: int  # square portrait side
    env_size: tuple[int, int]  # (H, W) of the env condition
    mask_input: bool  # the portrait was multiplied by its mask in training
    env_hdr: bool  # the model also takes the log-HDR env
    env_hdr_max: float = 65504.0
    source: str = ""  # where the sizes came from


def _unet_geometry(pipe) -> tuple[int, int]:
    vae = pipe.vae
    down = 2 ** (len(vae.config.block_out_channels) - 1) if hasattr(vae.config, "block_out_channels") else 1
    return int(pipe.unet.config.sample_size) * down, down


def model_geometry(model_dir: str, pipe, size: int | None = None) -> Geometry:
    """The training run's data sizes (``MODEL/../config.json``) or the UNet's; ``size`` overrides the portrait side."""
    res, down = _unet_geometry(pipe)
    multiple = down * 2 ** (len(pipe.unet.config.block_out_channels) - 1)
    env_hdr = pipe.n_conditions == 3
    env_size, mask_input, hdr_max, source = (res, res), True, 65504.0, "unet sample_size"
    cfg_path = os.path.join(os.path.dirname(os.path.abspath(model_dir.rstrip("/"))), "config.json")
    if os.path.isfile(cfg_path):
        try:
            with open(cfg_path) as f:
                data = json.load(f).get("data") or {}
        except (OSError, ValueError) as e:
            raise InputError(f"{cfg_path}: unreadable training config ({e})") from None
        if "resolution" in data:
            res = int(data["resolution"])
            env_size = tuple(int(x) for x in data.get("env_size", (res, res)))
            mask_input = bool(data.get("mask_input", True))
            hdr_max = float(data.get("env_hdr_max", hdr_max))
            source = cfg_path
    if size is not None:
        if size < 8 or size % multiple:
            raise InputError(f"--size {size}: must be a multiple of {multiple} (and >= 8) for this model")
        if env_size == (res, res):
            env_size = (size, size)
        res, source = size, "--size"
    return Geometry(res, env_size, mask_input, env_hdr, hdr_max, source)


# ---------------------------------------------------------------- portrait


def square(img: Image.Image, size: int, resample=Image.Resampling.BILINEAR) -> Image.Image:
    """Centre crop to the largest square, then resize: what the training loader does to renders."""
    from relight.data import _square  # the loader's own code, so inference sees what training saw

    return _square(img, size, resample)


def _open_image(path: str, what: str) -> Image.Image:
    if not os.path.isfile(path):
        raise runtime(InputError(f"{what} {path}: file not found"))
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError) as e:
        raise runtime(InputError(f"{what} {path}: not a readable image ({str(e).splitlines()[0]})")) from None
    return img


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)


@dataclass(frozen=True)
class Portrait:
    """A portrait as the model takes it, and where its mask came from (said in ``relight infer``'s output line)."""

    image: torch.Tensor  # (3, size, size) in [0, 1]
    mask: torch.Tensor | None  # (1, size, size) in [0, 1]; None: the whole image is the subject
    mask_from: str


# background estimation (portraits without alpha or --mask): the largest colour step that still
# counts as the same backdrop (8-bit JPEG noise, soft vignetting), the share of the border that must be
# backdrop, and the foreground shares outside which an estimate is not believed
BACKGROUND_TOL = 0.1
BORDER_SHARE = 0.6
FOREGROUND_SHARE = (0.02, 0.98)


def estimate_mask(rgb: torch.Tensor) -> torch.Tensor | None:
    """(1, S, S) foreground mask of a (3, S, S) portrait shot against a plain backdrop, or None.

    The backdrop is the median border colour; background is every pixel within
    ``BACKGROUND_TOL`` (per channel) of it that is 4-connected to the image
    border, so a face of the backdrop's colour inside the outline stays
    foreground. None (use the whole image) when less than ``BORDER_SHARE`` of
    the border is backdrop (a busy photo) or the foreground is under 2% or
    over 98% of the image (a blank or all-subject picture).
    """
    img = rgb.detach().cpu().double().numpy()
    border = np.zeros(img.shape[1:], dtype=bool)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    bg = np.median(img[:, border], axis=1)
    near = (np.abs(img - bg[:, None, None]) <= BACKGROUND_TOL).all(axis=0)
    if near[border].mean() < BORDER_SHARE:
        return None
    reached = near & border
    while True:  # flood fill from the border through backdrop-coloured pixels
        grown = reached.copy()
        grown[1:] |= reached[:-1]
        grown[:-1] |= reached[1:]
        grown[:, 1:] |= reached[:, :-1]
        grown[:, :-1] |= reached[:, 1:]
        grown &= near
        if np.array_equal(grown, reached):
            break
        reached = grown
    fg = ~reached
    if not FOREGROUND_SHARE[0] <= fg.mean() <= FOREGROUND_SHARE[1]:
        return None
    return torch.from_numpy(fg[None].astype(np.float32))


def read_portrait(path: str, size: int, mask_path: str | None = None, use_alpha: bool = True) -> Portrait:
    """The portrait centre-cropped and resized to ``size``, and its mask.

    The mask is, in order: ``mask_path`` (any image; its alpha if it has one,
    else its luminance); the portrait's own alpha channel when ``use_alpha``
    and it is neither fully opaque nor fully transparent (both hold no
    outline: such an alpha is ignored); else, when ``use_alpha``, a mask
    estimated from a plain backdrop (:func:`estimate_mask`); else none (the
    whole image). Any size is accepted: an 8x8 or 1x1 image is upscaled.
    """
    img = _open_image(path, "--image")
    mask_img, mask_from = None, "whole image (--no-mask)" if not use_alpha else "whole image"
    if mask_path:
        m = _open_image(mask_path, "--mask")
        mask_img = m.getchannel("A") if _has_alpha(m) else m.convert("L")
        if mask_img.size != img.size:
            raise InputError(f"--mask {mask_path}: size {mask_img.size[0]}x{mask_img.size[1]} differs from "
                             f"--image {path} ({img.size[0]}x{img.size[1]})")
        mask_from = f"--mask {os.path.basename(mask_path)}"
    elif use_alpha and _has_alpha(img):
        mask_img = img.convert("RGBA").getchannel("A")
        lo, hi = mask_img.getextrema()
        if lo == 255:  # an opaque alpha channel is no mask
            mask_img = None
        elif hi == 0:  # nothing is opaque: an export that lost its alpha, not an empty portrait
            mask_img, mask_from = None, "whole image (the alpha is fully transparent)"
        else:
            mask_from = "alpha channel"
    portrait = _to_tensor(square(img.convert("RGB"), size))
    if mask_img is not None:
        return Portrait(portrait, _to_tensor(square(mask_img, size)), mask_from)
    if use_alpha:
        est = estimate_mask(portrait)
        if est is not None:
            return Portrait(portrait, est, "estimated from the plain background"
                            + (" (the alpha is fully transparent)" if "transparent" in mask_from else ""))
    return Portrait(portrait, None, mask_from)


def load_portrait(path: str, size: int, mask_path: str | None = None,
                  use_alpha: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(3, size, size) portrait in [0, 1] and its (1, size, size) mask or None: :func:`read_portrait` as a pair."""
    p = read_portrait(path, size, mask_path, use_alpha)
    return p.image, p.mask


def _to_tensor(img: Image.Image) -> torch.Tensor:
    a = np.array(img)
    a = a[:, :, None] if a.ndim == 2 else a
    return torch.from_numpy(a).permute(2, 0, 1).float().div_(255.0)


# ---------------------------------------------------------------- lighting


def builtin_hdris(catalog: str | None = None) -> dict[str, str]:
    """Name -> path of the built-in maps: the bpy wheel's world HDRIs, then a catalog's HDRIs (by file stem)."""
    names: dict[str, str] = {}
    try:
        from assets_manifest.builtin import bpy_hdri_dir

        for p in sorted(glob.glob(os.path.join(bpy_hdri_dir(), "*.exr"))):
            names[os.path.splitext(os.path.basename(p))[0]] = p
    except Exception:  # no bpy (a training-only environment): the catalog is the other source
        pass
    if catalog:
        names.update(_catalog_hdris(catalog))
    return names


def _catalog_hdris(catalog: str) -> dict[str, str]:
    if not os.path.isfile(catalog):
        raise runtime(InputError(f"--catalog {catalog}: file not found (give a catalog's manifest.parquet)"))
    try:
        import pyarrow.parquet as pq

        table = pq.read_table(catalog, columns=["kind", "name", "uri"]).to_pylist()
    except Exception as e:
        raise InputError(f"--catalog {catalog}: not a catalog manifest ({str(e).splitlines()[0]})") from None
    base = os.path.dirname(os.path.abspath(catalog))
    out = {}
    for row in table:
        if row["kind"] == "hdri":
            uri = row["uri"]
            out[row["name"]] = uri if ("://" in uri or os.path.isabs(uri)) else os.path.join(base, uri)
    return out


@dataclass(frozen=True)
class Lighting:
    """A target lighting: the HDR map (H, 2H, 3) and a short label."""

    rgb: np.ndarray
    label: str


def resolve_env(spec: str, catalog: str | None = None) -> Lighting:
    """``spec``: .exr/.hdr path or URL, ``procedural:STYLE:SEED``, or a built-in HDRI name."""
    from assets_manifest.schema import AssetError

    if not spec:
        raise InputError("--env: empty; give an .exr/.hdr file, procedural:STYLE:SEED or a built-in HDRI name")
    try:
        if spec.startswith("procedural:"):
            parts = spec.split(":")
            if len(parts) != 3 or parts[1] not in procedural_hdri.STYLES or not parts[2].isdigit():
                raise InputError(f"--env {spec}: expected procedural:STYLE:SEED with STYLE one of "
                                 f"{', '.join(procedural_hdri.STYLES)}")
            return Lighting(envmaps.load_env(spec), spec.split(":", 1)[1])
        looks_like_path = spec.lower().endswith(HDR_SUFFIXES) or "/" in spec or os.sep in spec or "://" in spec
        if looks_like_path:
            if "://" not in spec and not os.path.isfile(spec):
                raise runtime(InputError(f"--env {spec}: file not found"))
            if not spec.lower().endswith(HDR_SUFFIXES):
                raise InputError(f"--env {spec}: not an HDR map (expected .exr or .hdr)")
            return Lighting(_checked(envmaps.load_env(spec), spec), os.path.splitext(os.path.basename(spec))[0])
        names = builtin_hdris(catalog)
        if spec in names:
            return Lighting(_checked(envmaps.load_env(names[spec]), names[spec]), spec)
    except AssetError as e:
        raise InputError(f"--env {spec}: {e}") from None
    if not names:
        raise InputError(f"--env {spec}: not a file and no built-in HDRIs are available (install bpy, or pass "
                         "--catalog MANIFEST); procedural:STYLE:SEED needs neither")
    close = difflib.get_close_matches(spec, list(names), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    shown = sorted(names)
    listing = ", ".join(shown[:12]) + (f", ... ({len(shown)} in all)" if len(shown) > 12 else "")
    raise InputError(f"--env {spec}: unknown HDRI name; {hint}available: {listing}")


def _checked(rgb: np.ndarray, where: str) -> np.ndarray:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or not np.isfinite(rgb).all():
        raise InputError(f"--env {where}: not a finite RGB map")
    if rgb.max() <= 0:
        raise InputError(f"--env {where}: the map is black")
    return rgb


def env_condition(light: Lighting, rotate_deg: float, exposure: float, env_size: tuple[int, int],
                  env_hdr: bool = False, hdr_max: float = 65504.0) -> dict[str, torch.Tensor]:
    """``env`` (3, H, W) in [0, 1] (and ``env_hdr`` when asked) as the model saw them in training.

    ``env_ldr_png`` is the 2:1 camera-frame LDR map itself (uint8, for pictures); ``light_side`` which
    side of the image the light comes from (:func:`relight.direction.light_side`, + is image right).
    """
    if not np.isfinite(exposure) or exposure <= 0:
        raise InputError(f"--exposure {exposure}: must be > 0")
    he, we = env_size
    # synthgen writes env_XX at the job's env_width and the loader resizes it to env_size;
    # 2x the condition width keeps the downscale antialiased like that
    width = max(64, 2 * we)
    ldr = envmaps.camera_frame_ldr(light.rgb, rotate_deg, exposure, width)
    img = Image.fromarray(ldr)
    env = _to_tensor(img if img.size == (we, he) else img.resize((we, he), Image.Resampling.BILINEAR))
    from relight import direction
    from synthgen import camera_env

    hdr = camera_env.camera_frame_env(light.rgb, camera_env.FRONTAL_CAMERA, rotate_deg, width) * exposure
    out = {"env": env, "env_ldr_png": torch.from_numpy(np.ascontiguousarray(ldr)),
           "light_side": direction.light_side(hdr)}
    if env_hdr:
        from relight.data import _env_hdr

        out["env_hdr"] = _env_hdr(hdr.astype(np.float32), (he, we), hdr_max)
    return out
