"""Training configuration: TOML file + dotted ``--set`` overrides -> validated dataclasses.

Sections ``[model]`` (:class:`relight.model.ModelConfig`), ``[data]``
(:class:`relight.data.DataConfig`) and ``[train]`` (:class:`TrainSection`).
Unknown keys and bad values are one-line errors naming the key: the TOML and
``--set`` loading is the format layer's (:mod:`synthgen.format.config`), the
one synthgen's job files use.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from relight.model import ModelConfig
from synthgen.format.config import ConfigError, coerce_value, fill_sections, load_toml

__all__ = ["ConfigError", "TrainConfig", "TrainSection", "check", "from_dict", "load"]


@dataclass
class TrainSection:
    max_steps: int = 1000
    batch_size: int = 8  # per worker, per accumulation step
    grad_accum: int = 1
    lr: float = 1e-4  # the paper fine-tunes SD 1.5 at 1e-5; a tiny model from scratch wants more
    lr_schedule: str = "constant"  # any diffusers.optimization schedule name (constant, cosine, linear, ...)
    warmup_steps: int = 0
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    ema_decay: float = 0.999  # 0 turns EMA off
    mixed_precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | no | bf16 | fp16
    gradient_checkpointing: bool = False
    # loss weight of pixels outside the head mask (1: the paper's plain MSE over the frame; below 1 spends
    # a small model's capacity on the face, which is what the masked metrics and a user look at)
    background_weight: float = 1.0
    dropout_portrait: float = 0.1  # each condition dropped independently (paper §3.2)
    dropout_env: float = 0.1
    dropout_text: float = 0.1
    seed: int = 0
    num_workers: int = 0  # DataLoader processes per training worker
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    validate_every: int = 250  # 0: only at the end
    val_pairs: int = 4
    val_steps: int = 20  # DDIM steps for validation grids
    image_guidance: float = 3.0
    text_guidance: float = 2.0


_CHOICES = {
    "train.mixed_precision": ("auto", "no", "bf16", "fp16"),
    "model.source": ("tiny", "pretrained"),
    "model.text": ("null", "hashed", "clip"),
    "model.prediction_type": ("epsilon", "v_prediction", "sample"),
    "model.output": ("image", "ratio"),
    "model.timesteps": ("uniform", "terminal"),
}
_POSITIVE = ("train.max_steps", "train.batch_size", "train.grad_accum", "train.lr", "train.log_every",
             "train.checkpoint_every", "train.keep_checkpoints", "train.val_steps", "data.max_member_bytes",
             "data.max_image_side")
_PROBS = ("train.dropout_portrait", "train.dropout_env", "train.dropout_text", "data.real_ratio")


def _data_config_cls():
    from relight.data import DataConfig

    return DataConfig


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: Any = field(default_factory=lambda: _data_config_cls()())
    train: TrainSection = field(default_factory=TrainSection)
    source: str = "<defaults>"

    def to_dict(self) -> dict[str, Any]:
        d = {s: dataclasses.asdict(getattr(self, s)) for s in ("model", "data", "train")}
        d["data"]["env_size"] = list(d["data"]["env_size"])
        return d


def _coerce_value(where: str, key: str, value: Any, default: Any) -> Any:
    if isinstance(default, tuple):  # data.env_size: a TOML list of numbers
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise ConfigError(f"{where}: {key} must be a list of {len(default)} numbers, got {value!r}")
        return tuple(value)
    return coerce_value(where, key, value, default)


def from_dict(data: dict[str, Any], where: str = "<config>") -> TrainConfig:
    cfg = TrainConfig(source=where)
    fill_sections(cfg, data, ["model", "data", "train"], where, coerce=_coerce_value)
    check(cfg)
    return cfg


def check(cfg: TrainConfig) -> None:
    where = cfg.source
    for key, options in _CHOICES.items():
        sec, name = key.split(".")
        v = getattr(getattr(cfg, sec), name)
        if v not in options:
            raise ConfigError(f"{where}: {key} = {v!r} must be one of {', '.join(options)}")
    for key in _POSITIVE:
        sec, name = key.split(".")
        v = getattr(getattr(cfg, sec), name)
        if v <= 0:
            raise ConfigError(f"{where}: {key} = {v!r} must be > 0")
    for key in _PROBS:
        sec, name = key.split(".")
        v = getattr(getattr(cfg, sec), name)
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"{where}: {key} = {v!r} must be in [0, 1]")
    if not 0.0 <= cfg.train.ema_decay < 1.0:
        raise ConfigError(f"{where}: train.ema_decay = {cfg.train.ema_decay!r} must be in [0, 1)")
    if cfg.model.source == "pretrained" and not cfg.model.pretrained:
        raise ConfigError(f"{where}: model.source = 'pretrained' needs model.pretrained = a local folder (--pretrained PATH)")
    if cfg.model.env_hdr and not cfg.data.env_hdr:
        raise ConfigError(f"{where}: model.env_hdr needs data.env_hdr = true (the loader must read env_XX.exr)")
    if cfg.model.output == "ratio" and (cfg.model.source != "tiny" or cfg.model.prediction_type != "sample"):
        raise ConfigError(f"{where}: model.output = 'ratio' needs model.source = 'tiny' and model.prediction_type = "
                          "'sample' (a gain over the input is defined on pixels, not on VAE latents)")
    if cfg.model.timesteps == "terminal" and cfg.model.prediction_type != "sample":
        raise ConfigError(f"{where}: model.timesteps = 'terminal' needs model.prediction_type = 'sample' (at "
                          "t = T - 1 only an x0 prediction says anything about the image)")
    if cfg.model.env_vector and cfg.model.source != "tiny":
        raise ConfigError(f"{where}: model.env_vector needs model.source = 'tiny' (a pretrained UNet has no "
                          "projection class embedding to feed)")
    if not 0.0 <= cfg.train.background_weight <= 1.0:
        raise ConfigError(f"{where}: train.background_weight = {cfg.train.background_weight!r} must be in [0, 1]")
    if cfg.model.source == "tiny":
        ch = cfg.model.block_channels
        if not 0 <= cfg.model.attention_from <= len(ch):
            raise ConfigError(f"{where}: model.attention_from = {cfg.model.attention_from} must be in "
                              f"[0, {len(ch)}] for {len(ch)} UNet levels")
        down = 2 ** (len(ch) - 1)
        if cfg.data.resolution % down:
            raise ConfigError(f"{where}: data.resolution = {cfg.data.resolution} must be a multiple of {down} "
                              f"for {len(ch)} UNet blocks")
        if any(c % min(32, min(ch)) for c in ch) or any(c % 8 for c in ch):
            raise ConfigError(f"{where}: model.block_channels = {ch} must be multiples of 8 sharing a group size")


def load(path: str | None, overrides: list[str] = ()) -> TrainConfig:
    return from_dict(load_toml(path, overrides, "config file", "train.max_steps=16"), path or "<config>")
