"""Relight a portrait with a trained model: loading, batched sampling, strips and GIFs.

:func:`load_pipeline` opens a ``RelightPipeline`` folder (``relight train``'s
``OUT/model``) with the sampler asked for; :func:`relight` runs one portrait
under many lightings in as few pipeline calls as ``batch`` allows, every
lighting starting from the same initial noise (so a turning light changes
only the light, not the sample); :func:`save_strip` and :func:`save_gif` draw
the results. ``relight infer`` (:mod:`relight.cli`) strings them together.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from assets_manifest.cli_errors import runtime
from relight.inputs import Geometry, InputError

PAPER_PROMPT = "A nice person."  # SynthLight's inference prompt (Supp. C), for models with a text encoder


@dataclass
class Settings:
    """Sampling settings; ``steps`` and ``image_guidance`` None: the model's own defaults (``resolved``)."""

    steps: int | None = None
    scheduler: str = "ddim"
    seed: int = 0
    image_guidance: float | None = None
    text_guidance: float = 2.0
    prompt: str | None = None  # None: two-branch guidance (text dropped)
    batch: int = 16  # lightings per pipeline call
    batched_branches: bool = True

    def resolved(self, pipe) -> "Settings":
        """None replaced by what the model was trained to sample with (``RelightPipeline``'s config)."""
        return dataclasses.replace(
            self, steps=self.steps if self.steps is not None else pipe.config.default_steps,
            image_guidance=(self.image_guidance if self.image_guidance is not None
                            else pipe.config.default_image_guidance))

    def check(self) -> None:
        if self.steps is not None and self.steps < 1:
            raise InputError(f"--steps {self.steps}: must be >= 1")
        if self.batch < 1:
            raise InputError(f"--batch {self.batch}: must be >= 1")
        for flag, v in (("--image-guidance", self.image_guidance), ("--text-guidance", self.text_guidance)):
            if v is not None and (not np.isfinite(v) or v < 0):
                raise InputError(f"{flag} {v}: must be a finite number >= 0")


def set_threads(n: int | None) -> None:
    """CPU threads for torch; a tiny model on a busy machine runs far faster on one (no OpenMP spinning)."""
    if n is None:
        return
    if n < 1:
        raise InputError(f"--threads {n}: must be >= 1")
    torch.set_num_threads(n)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available here")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name}: not a torch device (auto, cpu, cuda, cuda:1, ...)") from None


def load_pipeline(model_dir: str, scheduler: str = "ddim", device: str | torch.device = "auto"):
    """A ``RelightPipeline`` from a local folder, sampler swapped to ``scheduler``, on ``device``."""
    from relight.pipeline import SCHEDULERS, RelightPipeline, scheduler_by_name

    if scheduler not in SCHEDULERS:
        raise InputError(f"--scheduler {scheduler}: choose one of {', '.join(SCHEDULERS)}")
    index = os.path.join(model_dir, "model_index.json")
    if not os.path.isdir(model_dir):
        raise runtime(InputError(f"--model {model_dir}: no such folder (give `relight train`'s OUT/model)"))
    if not os.path.isfile(index):
        hint = " (it holds a model/ folder: pass that)" if os.path.isfile(
            os.path.join(model_dir, "model", "model_index.json")) else ""
        raise runtime(InputError(f"--model {model_dir}: no model_index.json, not a saved RelightPipeline{hint}"))
    try:
        with open(index) as f:
            cls = json.load(f).get("_class_name")
    except ValueError as e:
        raise runtime(InputError(f"{index}: not valid JSON ({e})")) from None
    if cls != "RelightPipeline":
        raise InputError(f"--model {model_dir}: a {cls} folder, not a RelightPipeline")
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()  # no "Loading pipeline components" bar on every command
    try:
        pipe = RelightPipeline.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise InputError(f"--model {model_dir}: cannot load ({str(e).strip().splitlines()[0]})") from None
    finally:
        diffusers_logging.enable_progress_bar()
    pipe.scheduler = scheduler_by_name(scheduler, pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(pick_device(device) if isinstance(device, str) else device)
    return pipe


def has_text(pipe) -> bool:
    """Whether the text condition means anything: a learned-null CaptionEncoder ignores its input."""
    from relight.components import CaptionEncoder

    enc = pipe.text_encoder
    return not (isinstance(enc, CaptionEncoder) and enc.config.vocab_size == 0)


def model_input(portrait: torch.Tensor, mask: torch.Tensor | None, geo: Geometry) -> torch.Tensor:
    """The portrait as the model saw inputs in training (multiplied by the mask when it was)."""
    return portrait * mask if (mask is not None and geo.mask_input) else portrait


def subject_only(pipe, relit: torch.Tensor, mask: torch.Tensor | None, geo: Geometry) -> torch.Tensor:
    """A gain model (``output = "ratio"``) relights the subject only: ``relight infer`` writes its output times
    the mask, on black as its input was. (``relight eval`` scores the raw output with masked metrics: the
    soft mask edge would otherwise count twice, 0.7 dB on the demo's test split.)"""
    if getattr(pipe.config, "output", "image") == "ratio" and mask is not None and geo.mask_input:
        return relit * mask
    return relit


def relight(pipe, portrait: torch.Tensor, envs: list[dict[str, torch.Tensor]], settings: Settings) -> torch.Tensor:
    """(N, 3, S, S) relit images of one (3, S, S) portrait, one per env condition (from ``env_condition``).

    Every lighting starts from the same noise (drawn from ``settings.seed``);
    the N lightings go through the pipeline ``settings.batch`` at a time.
    """
    settings = settings.resolved(pipe)
    settings.check()
    s = portrait.shape[-1]
    down = 1 if not hasattr(pipe.vae.config, "block_out_channels") else 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    gen = torch.Generator().manual_seed(settings.seed)
    noise = torch.randn((1, pipe.latent_channels, s // down, s // down), generator=gen)
    out = []
    for start in range(0, len(envs), settings.batch):
        chunk = envs[start:start + settings.batch]
        b = len(chunk)
        env = torch.stack([c["env"] for c in chunk])
        env_hdr = torch.stack([c["env_hdr"] for c in chunk]) if "env_hdr" in chunk[0] else None
        out.append(pipe(portrait[None].expand(b, -1, -1, -1), env, env_hdr, prompt=settings.prompt,
                        num_inference_steps=settings.steps, image_guidance_scale=settings.image_guidance,
                        guidance_scale=settings.text_guidance, batched_branches=settings.batched_branches,
                        latents=noise.expand(b, -1, -1, -1).clone(), generator=gen).cpu())
    return torch.cat(out)


# ---------------------------------------------------------------- pictures


def to_pil(x: torch.Tensor, size: int | None = None) -> Image.Image:
    """(3, h, w) in [0, 1] -> PIL RGB, optionally resized (bicubic) to ``size`` x ``size``."""
    img = Image.fromarray((x.detach().float().clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
    if size and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    return img


def _env_pil(ldr: torch.Tensor, width: int) -> Image.Image:
    img = Image.fromarray(ldr.numpy())
    return img.resize((width, width // 2), Image.Resampling.BILINEAR)


BG, FG, PAD, HEAD = (24, 24, 24), (235, 235, 235), 4, 18


def save_strip(path: str, portrait: torch.Tensor, relit: torch.Tensor, env_ldr: list[torch.Tensor],
               rows: list[str], cols: list[str], tile: int = 128, notes: list[str] | None = None) -> str:
    """A grid: one row per lighting (env) name, one column per rotation; each cell the relit image over its env map.

    ``relit`` and ``env_ldr`` are in row-major order (len(rows) * len(cols)).
    The input portrait leads every row; ``notes`` (one per cell) are written at each image's foot.
    """
    nr, nc = len(rows), len(cols)
    cell_h = tile + tile // 2
    w = PAD + (nc + 1) * (tile + PAD)
    h = HEAD + nr * (cell_h + HEAD + PAD) + PAD
    sheet = Image.new("RGB", (w, h), BG)
    draw = ImageDraw.Draw(sheet)
    inp = to_pil(portrait, tile)
    for r, row_name in enumerate(rows):
        y = HEAD + r * (cell_h + HEAD + PAD)
        draw.text((PAD, y - HEAD + 3), f"{row_name}", fill=FG)
        sheet.paste(inp, (PAD, y))
        draw.text((PAD + 3, y + tile + 3), "input", fill=FG)
        for c, col_name in enumerate(cols):
            k = r * nc + c
            x = PAD + (c + 1) * (tile + PAD)
            sheet.paste(to_pil(relit[k], tile), (x, y))
            sheet.paste(_env_pil(env_ldr[k], tile), (x, y + tile))
            draw.text((x + 3, y + tile + 3), col_name, fill=(255, 230, 90))
            if notes:  # e.g. the face's right-minus-left balance (relight.direction)
                draw.text((x + 3, y + tile - 13), notes[k], fill=(255, 230, 90))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sheet.save(path)
    return path


def gif_frames(portrait: torch.Tensor, relit: torch.Tensor, env_ldr: list[torch.Tensor], labels: list[str],
               tile: int = 192) -> list[Image.Image]:
    """Frames of [input | relit] over the env map that lights each one, labelled."""
    inp = to_pil(portrait, tile)
    frames = []
    for k in range(relit.shape[0]):
        frame = Image.new("RGB", (2 * tile + 3 * PAD, tile + tile // 2 + HEAD + 3 * PAD), BG)
        frame.paste(inp, (PAD, PAD))
        frame.paste(to_pil(relit[k], tile), (2 * PAD + tile, PAD))
        env = _env_pil(env_ldr[k], 2 * tile + PAD)
        frame.paste(env, (PAD, 2 * PAD + tile))
        draw = ImageDraw.Draw(frame)
        draw.text((PAD + 3, PAD + 3), "input", fill=FG)
        draw.text((2 * PAD + tile + 3, PAD + 3), "relit", fill=FG)
        draw.text((PAD + 3, 3 * PAD + tile + tile // 2 + 1), labels[k], fill=(255, 230, 90))
        frames.append(frame)
    return frames


def save_gif(path: str, frames: list[Image.Image], frame_ms: int = 250) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0, optimize=False)
    return path


# ---------------------------------------------------------------- held-out renders


def _decode(where: str, field: str, sample: dict, max_image_side: int):
    from relight.shard_safety import DataError, decode_member

    try:
        return decode_member(f".{field}", sample[field], max_image_side)
    except DataError as e:  # name the shard and sample too (UnsafeShardError stays unsafe)
        msg = str(e).splitlines()[0]
        err = type(e)(f"{where}: member {msg if msg.startswith(field + ': ') else f'{field}: {msg}'}")
        err.exit_code = e.exit_code  # the same kind of failure (assets_manifest.cli_errors)
        raise err from None


def frontal_lighting(sample: dict, where: str, max_image_side: int) -> int:
    """The group's lighting with the largest share of its light on the face: camera-facing mean irradiance
    (relight.baselines) over the map's mean radiance, in luminance. A portrait lit from the front, the
    fair start for a relit strip (a back-lit input shows little of the face)."""
    from relight import baselines, direction
    from synthgen.format import shard as shard_format

    k = sum(1 for f in sample if f.startswith("rgb_") and f.endswith(".png"))
    luma = np.asarray(direction.LUMA)
    best, best_share = 0, -1.0
    for i in range(k):
        env = np.asarray(_decode(where, shard_format.env_field(i, hdr=True), sample, max_image_side), np.float64)
        env = env[..., None].repeat(3, -1) if env.ndim == 2 else env[..., :3]
        total = float(np.clip(np.nan_to_num(env), 0, None).mean(axis=(0, 1)) @ luma)
        share = float(baselines.mean_irradiance(env) @ luma) / total if total > 0 else 0.0
        if share > best_share + 1e-12:
            best, best_share = i, share
    return best


def extract_render(shards, split: str = "test", key: str | None = None, lighting: int | str = 0,
                   read=None) -> tuple[Image.Image, dict]:
    """One render of a dataset as an RGBA image (alpha = the group's mask) and its lighting's metadata.

    ``key``: a group key (``KEY`` of ``KEY.json``); default the first group of ``split``.
    ``lighting``: an index, or ``"front"`` for the most frontally lit render (:func:`frontal_lighting`).
    ``read``: a :class:`relight.shard_safety.ReadPolicy` (default: local, uncompressed shards, default limits).
    """
    from relight.data import resolve_shards
    from relight.shard_safety import ReadPolicy, decode_member, tar_samples
    from synthgen.format import shard as shard_format

    read = read or ReadPolicy()
    urls = resolve_shards(shards, split, read.allow_remote, read.allow_pipe)
    seen = []
    for sample in tar_samples(({"url": u} for u in urls), policy=read):
        seen.append(sample["__key__"])
        if key is not None and sample["__key__"] != key:
            continue
        where = f"{sample['__url__']}: sample {sample['__key__']}"
        if lighting == "front":
            lighting = frontal_lighting(sample, where, read.max_image_side)
        field = shard_format.rgb_field(lighting)
        if field not in sample:
            k = sum(1 for f in sample if f.startswith("rgb_") and f.endswith(".png"))
            raise InputError(f"--lighting {lighting}: group {sample['__key__']} has lightings 0..{k - 1}")
        rgb = _decode(where, field, sample, read.max_image_side).convert("RGB")
        mask = _decode(where, "mask.png", sample, read.max_image_side).convert("L")
        meta = _decode(where, "json", sample, read.max_image_side)
        if mask.size != rgb.size:
            raise InputError(f"{where}: mask size {mask.size} differs from {field} {rgb.size}")
        rgba = rgb.copy()
        rgba.putalpha(mask)
        lt = (meta.get("lightings") or [{}] * (lighting + 1))[lighting]
        info = {"key": sample["__key__"], "shard": sample["__url__"], "lighting": lighting, "split": meta.get("split"),
                "hdri": shard_format.hdri_name(lt) or lt.get("hdri_asset_id"),
                "rotation_deg": lt.get("rotation_deg"), "exposure": lt.get("exposure")}
        return rgba, info
    if key is not None:
        near = ", ".join(seen[:6]) + (", ..." if len(seen) > 6 else "")
        raise InputError(f"--key {key}: no such group in the {split!r} split (has: {near or 'none'})")
    raise InputError(f"--shards {shards}: the {split!r} split has no groups")
