"""Build, widen and load the conditional relighting model (SynthLight §3.2).

The UNet sees ``[noisy target | input portrait | env map (| log-HDR env)]``
latents stacked on channels. Two sources:

* ``tiny``: a small pixel-space ``UNet2DConditionModel`` that trains on a CPU
  (tests, the demo), with :class:`~relight.components.PixelCodec` as its
  "VAE" and a :class:`~relight.components.CaptionEncoder` as its text module.
* ``pretrained``: a local Stable Diffusion 1.x/2.x folder (``unet/``, ``vae/``,
  ``scheduler/``, optionally ``text_encoder/`` + ``tokenizer/``), loaded with
  ``local_files_only`` and widened after loading: ``conv_in`` gains zero
  weights for the condition channels, so the widened UNet computes exactly
  what the original did. No code path downloads weights.

Latent convention (one for training and inference): the target is encoded
with ``latent_dist.sample()``, conditions with ``latent_dist.mode()``, all
multiplied by the VAE's ``scaling_factor`` (as IC-Light does). A dropped
condition is an all-zero latent; the dropped text is the empty caption.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from torch import nn

from relight.components import CaptionEncoder, PixelCodec


@dataclass
class ModelConfig:
    source: str = "tiny"  # tiny | pretrained
    pretrained: str = ""  # local SD folder, for source = "pretrained"
    env_hdr: bool = False  # add a log-HDR env condition (Neural Gaffer); 4 inputs instead of 3
    text: str = "null"  # null (learned null token) | hashed (bag of words) | clip (from the checkpoint)
    prediction_type: str = "epsilon"  # epsilon | v_prediction | sample (x0: converges fastest for small models)
    zero_snr: bool = False  # rescale betas to zero terminal SNR (very dark/bright targets)
    # image: the UNet's output is the target (epsilon/v/x0 of its latent), the paper's recipe.
    # ratio (tiny, prediction_type = sample): the output is a per-pixel log gain over the input portrait,
    # x0 = (input + RATIO_EPS) * exp(output) - RATIO_EPS in [0, 1] units, so an untrained model copies
    # the input and identity is kept by construction; the network only learns the shading change.
    output: str = "image"
    # tiny only: a pooled env map (ENV_POOL cells per map) projected into the timestep embedding, so
    # every ResNet block sees the whole lighting (a spatially concatenated env map only reaches the
    # pixels it is stacked on, which a small UNet cannot turn into global light)
    env_vector: bool = False
    # uniform: trained at every noise level and sampled in several steps (the paper's diffusion).
    # terminal: trained only at t = T - 1, where the noisy target is pure noise, and sampled in one
    # "trailing" step: a one-step x0 model (Garcia et al. 2024, "Fine-Tuning Image-Conditional Diffusion
    # Models is Easier than You Think"). For a near-deterministic task like relighting it spends all of a
    # small CPU budget on the conditional mean, the thing the metrics and the eye score.
    timesteps: str = "uniform"
    # tiny configuration only
    block_channels: list[int] = field(default_factory=lambda: [32, 64, 64])
    layers_per_block: int = 1
    # first UNet level with self/cross-attention (0 = full resolution); attention at 24x24 tokens is half
    # the step time of the 48 px tiny model, so the demo keeps it at the lowest level only
    attention_from: int = 1
    text_dim: int = 32
    vocab_size: int = 4096


class ModelError(ValueError):
    """A model folder or configuration that cannot be used; names the path or key."""

    exit_code = 2  # bad usage: a config key's value (assets_manifest.cli_errors)


def n_conditions(cfg: ModelConfig) -> int:
    return 3 if cfg.env_hdr else 2


RATIO_EPS = 0.02  # [0, 1] units: a black input pixel can still be lit
RATIO_LOG_CLAMP = 5.0
ENV_POOL = (4, 8)  # rows (elevation) x columns (azimuth, 45 degrees each) of the pooled env


def env_vector_dim(cfg: ModelConfig) -> int:
    return 3 * ENV_POOL[0] * ENV_POOL[1] * (n_conditions(cfg) - 1)


def env_vector(env: torch.Tensor, env_hdr: torch.Tensor | None = None) -> torch.Tensor:
    """(B, D): area means of the LDR env (and the log-HDR env) over an ENV_POOL grid, flattened."""
    maps = [env] + ([env_hdr] if env_hdr is not None else [])
    return torch.cat([nn.functional.adaptive_avg_pool2d(m.float(), ENV_POOL).flatten(1) for m in maps], 1)


def ratio_to_latent(log_gain: torch.Tensor, portrait: torch.Tensor) -> torch.Tensor:
    """``output = "ratio"``: the UNet's log gain over the portrait latent (pixel space, [-1, 1]) -> x0."""
    base = (portrait.float() + 1.0) * 0.5 + RATIO_EPS
    x01 = base * torch.exp(log_gain.float().clamp(-RATIO_LOG_CLAMP, RATIO_LOG_CLAMP)) - RATIO_EPS
    return x01 * 2.0 - 1.0


def make_scheduler(cfg: ModelConfig, base: dict | None = None) -> DDPMScheduler:
    """Training noise schedule: SD 1.5's scaled-linear betas unless the checkpoint has its own."""
    conf = dict(base or dict(num_train_timesteps=1000, beta_schedule="scaled_linear",
                             beta_start=0.00085, beta_end=0.012, clip_sample=False))
    conf.update(prediction_type=cfg.prediction_type, rescale_betas_zero_snr=cfg.zero_snr)
    if cfg.zero_snr or cfg.timesteps == "terminal":  # "trailing": a 1-step sampler starts at t = T - 1
        conf["timestep_spacing"] = "trailing"
    return DDPMScheduler.from_config(conf)


def tiny_unet(cfg: ModelConfig, in_channels: int, out_channels: int) -> UNet2DConditionModel:
    ch = list(cfg.block_channels)
    n = len(ch)
    # attention from level attention_from down (default: below full resolution): global context, cheap on a CPU
    a = min(max(cfg.attention_from, 0), n)
    down = ["DownBlock2D"] * a + ["CrossAttnDownBlock2D"] * (n - a)
    up = ["CrossAttnUpBlock2D"] * (n - a) + ["UpBlock2D"] * a
    extra = {}
    if cfg.env_vector:
        extra = dict(class_embed_type="projection", projection_class_embeddings_input_dim=env_vector_dim(cfg))
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=in_channels, out_channels=out_channels,
        layers_per_block=cfg.layers_per_block, block_out_channels=tuple(ch),
        down_block_types=tuple(down), up_block_types=tuple(up),
        cross_attention_dim=cfg.text_dim, attention_head_dim=8, norm_num_groups=min(32, min(ch)), **extra,
    )
    if cfg.output == "ratio":  # start as the identity: log gain 0 everywhere, the model copies its input
        nn.init.zeros_(unet.conv_out.weight)
        nn.init.zeros_(unet.conv_out.bias)
    return unet


def widen_conv_in(unet: UNet2DConditionModel, in_channels: int) -> UNet2DConditionModel:
    """Give ``conv_in`` ``in_channels`` inputs; the new ones start at zero (InstructPix2Pix)."""
    old = unet.conv_in
    if old.in_channels == in_channels:
        return unet
    if old.in_channels > in_channels:
        raise ModelError(f"UNet conv_in already has {old.in_channels} inputs, cannot narrow to {in_channels}")
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                    device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)
    return unet


@dataclass
class RelightModel:
    """What training and inference share: the networks and the noise schedule."""

    unet: UNet2DConditionModel
    vae: nn.Module  # AutoencoderKL or PixelCodec
    text_encoder: nn.Module  # CaptionEncoder or transformers' CLIPTextModel
    tokenizer: object | None
    scheduler: DDPMScheduler
    config: ModelConfig

    @property
    def latent_channels(self) -> int:
        return self.vae.config.latent_channels if isinstance(self.vae, AutoencoderKL) else self.vae.latent_channels

    @property
    def downsample(self) -> int:
        if isinstance(self.vae, AutoencoderKL):
            return 2 ** (len(self.vae.config.block_out_channels) - 1)
        return 1


def build(cfg: ModelConfig) -> RelightModel:
    if cfg.source == "tiny":
        return _build_tiny(cfg)
    if cfg.source == "pretrained":
        return load_pretrained(cfg)
    raise ModelError(f"model.source = {cfg.source!r} must be tiny or pretrained")


def _build_tiny(cfg: ModelConfig) -> RelightModel:
    if cfg.text == "clip":
        raise ModelError("model.text = 'clip' needs model.source = 'pretrained' (a local checkpoint with text_encoder/)")
    codec = PixelCodec(3)
    c = codec.latent_channels
    unet = tiny_unet(cfg, c * (1 + n_conditions(cfg)), c)
    text = CaptionEncoder(dim=cfg.text_dim, vocab_size=cfg.vocab_size if cfg.text == "hashed" else 0)
    return RelightModel(unet, codec, text, None, make_scheduler(cfg), cfg)


def load_pretrained(cfg: ModelConfig) -> RelightModel:
    """A local Stable Diffusion folder, widened; never touches the network."""
    root = cfg.pretrained
    if not root or not os.path.isdir(root):
        raise ModelError(f"model.pretrained = {root!r}: not a local folder (weights are never downloaded)")
    for sub in ("unet", "vae"):
        if not os.path.isfile(os.path.join(root, sub, "config.json")):
            raise ModelError(f"{root}: no {sub}/config.json; expected a diffusers Stable Diffusion folder")
    kw = dict(local_files_only=True)
    unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", **kw)
    vae = AutoencoderKL.from_pretrained(root, subfolder="vae", **kw)
    c = vae.config.latent_channels
    if unet.config.in_channels not in (c, c * (1 + n_conditions(cfg))):
        raise ModelError(f"{root}/unet: in_channels = {unet.config.in_channels}, expected {c} "
                         f"(a base model) or {c * (1 + n_conditions(cfg))} (already widened)")
    widen_conv_in(unet, c * (1 + n_conditions(cfg)))
    sched_dir = os.path.join(root, "scheduler")
    base = DDPMScheduler.load_config(sched_dir) if os.path.isdir(sched_dir) else None
    tokenizer = None
    if cfg.text == "clip":
        text, tokenizer = _load_clip(root)
    else:
        dim = unet.config.cross_attention_dim
        text = CaptionEncoder(dim=dim, vocab_size=cfg.vocab_size if cfg.text == "hashed" else 0)
    return RelightModel(unet, vae, text, tokenizer, make_scheduler(cfg, base), cfg)


def _load_clip(root: str):
    if not os.path.isfile(os.path.join(root, "text_encoder", "config.json")):
        raise ModelError(f"{root}: model.text = 'clip' but there is no text_encoder/ folder")
    try:
        from transformers import CLIPTextModel, CLIPTokenizer
    except ImportError:
        raise ModelError("model.text = 'clip' needs transformers (pip install 'synthlight-toolkit[train]')") from None
    enc = CLIPTextModel.from_pretrained(root, subfolder="text_encoder", local_files_only=True)
    tok = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer", local_files_only=True)
    return enc, tok


def encode_text(text_encoder: nn.Module, tokenizer, captions: list[str], device) -> torch.Tensor:
    if isinstance(text_encoder, CaptionEncoder):
        return text_encoder(captions)
    ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids.to(device)
    return text_encoder(ids)[0]


def encode_images(vae: nn.Module, images01: torch.Tensor, sample: bool = False,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """[0, 1] images -> latents (see the module docstring for the convention)."""
    x = images01 * 2.0 - 1.0
    if isinstance(vae, PixelCodec):
        return x
    x = x.to(vae.dtype)
    dist = vae.encode(x).latent_dist
    z = dist.sample(generator) if sample else dist.mode()
    return z * vae.config.scaling_factor


def decode_latents(vae: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Latents -> [0, 1] images."""
    if isinstance(vae, PixelCodec):
        x = z
    else:
        x = vae.decode(z.to(vae.dtype) / vae.config.scaling_factor).sample
    return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)


def condition_latents(vae: nn.Module, portrait: torch.Tensor, env: torch.Tensor,
                      env_hdr: torch.Tensor | None = None, use_env_hdr: bool = False) -> list[torch.Tensor]:
    """Encode the condition images, resized to the portrait's size (the paper squashes the 2:1 env to a square)."""
    size = portrait.shape[-2:]
    imgs = [portrait, env] + ([env_hdr] if use_env_hdr else [])
    out = []
    for im in imgs:
        if im is None:
            raise ModelError("model.env_hdr is on but the batch has no env_hdr (set data.env_hdr = true)")
        if im.shape[-2:] != size:
            im = nn.functional.interpolate(im, size=size, mode="bilinear", align_corners=False, antialias=True)
        out.append(encode_images(vae, im))
    return out


def unet_input(noisy: torch.Tensor, conds: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([noisy, *conds], dim=1)
