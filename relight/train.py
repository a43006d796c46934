"""Train the conditional relighting model on synthgen shards (one process; Ray Train calls the same loop).

Objective (SynthLight §3.2): epsilon (or v) prediction on the target's latent,
with the input portrait and the target env map concatenated as conditions;
portrait, env and text each dropped independently with their own probability
so every branch the guidance queries is trained.

Output folder::

    config.json                resolved configuration
    train_log.csv              step, loss, lr, pairs/s, validation PSNR
    loss.png                   loss curve and validation PSNR against the copy-input baseline
    validation/step-NNNNNN.png input | env | target | prediction grids
    checkpoints/checkpoint-NNNNNN/   RelightPipeline (raw weights) + unet_ema/ + training_state.pt
    model/                     RelightPipeline with the EMA weights and a DDIM scheduler: what `relight infer` loads
    tb/                        TensorBoard events, when tensorboard is installed

Resume (``resume=True``) continues from the newest checkpoint: weights, EMA,
optimizer, LR schedule and step. The data stream is reseeded with the step,
so a resumed run sees fresh pairs rather than replaying the first ones
(resampled streams resume by step, not by position).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from assets_manifest.cli_errors import usage
from relight import config as config_mod
from relight import data as data_mod
from relight import baselines, metrics, plots
from relight.errors import TrainError
from relight.model import (RelightModel, build, condition_latents, encode_images, encode_text, env_vector,
                           ratio_to_latent, unet_input)
from relight.pipeline import RelightPipeline, scheduler_by_name
from synthgen.format import atomic

CHECKPOINTS = "checkpoints"


@dataclass
class DistInfo:
    """Where this process sits in a (possibly 1-process) data-parallel job."""

    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None
    wrap: Callable[[torch.nn.Module], torch.nn.Module] = lambda m: m  # e.g. ray.train.torch.prepare_model
    report: Callable[[dict], None] | None = None  # e.g. ray.train.report

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def autocast_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if mode == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}[mode]


def drop_masks(b: int, tcfg: config_mod.TrainSection, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Independent per-sample keep masks (True = keep) for portrait, env and text."""
    r = torch.rand((3, b), generator=generator)
    return {"portrait": r[0] >= tcfg.dropout_portrait, "env": r[1] >= tcfg.dropout_env,
            "text": r[2] >= tcfg.dropout_text}


def diffusion_loss(model: RelightModel, unet: torch.nn.Module, batch: dict[str, Any],
                   tcfg: config_mod.TrainSection, generator: torch.Generator, device: torch.device,
                   amp: torch.dtype | None) -> torch.Tensor:
    target = batch["target"].to(device)
    b = target.shape[0]
    env_hdr = batch["env_hdr"].to(device) if "env_hdr" in batch else None
    with torch.no_grad():
        z = encode_images(model.vae, target, sample=True)
        conds = condition_latents(model.vae, batch["input"].to(device), batch["env"].to(device), env_hdr,
                                  use_env_hdr=model.config.env_hdr)
    portrait = conds[0]  # the ratio's base: the portrait being relit, also where the UNet does not see it
    keep = {k: v.to(device) for k, v in drop_masks(b, tcfg, generator).items()}
    conds[0] = conds[0] * keep["portrait"][:, None, None, None]
    for i in range(1, len(conds)):  # env LDR and its log-HDR companion drop together
        conds[i] = conds[i] * keep["env"][:, None, None, None]
    captions = [c if k else "" for c, k in zip(batch["caption"], keep["text"].tolist())]
    hidden = encode_text(model.text_encoder, model.tokenizer, captions, device)
    extra = {}
    if model.config.env_vector:
        vec = env_vector(batch["env"].to(device), env_hdr if model.config.env_hdr else None)
        extra["class_labels"] = vec * keep["env"][:, None]

    noise = torch.randn(z.shape, generator=generator).to(device)
    sched = model.scheduler
    n_t = sched.config.num_train_timesteps
    if model.config.timesteps == "terminal":
        t = torch.full((b,), n_t - 1, dtype=torch.long, device=device)
    else:
        t = torch.randint(0, n_t, (b,), generator=generator).to(device)
    noisy = sched.add_noise(z, noise, t)
    kind = sched.config.prediction_type
    goal = noise if kind == "epsilon" else z if kind == "sample" else sched.get_velocity(z, noise, t)
    ctx = torch.autocast(device.type, dtype=amp) if amp else contextlib.nullcontext()
    with ctx:
        pred = unet(unet_input(noisy, conds), t, encoder_hidden_states=hidden, **extra).sample
    if model.config.output == "ratio":
        pred = ratio_to_latent(pred, portrait)
    err = (pred.float() - goal.float()) ** 2
    if tcfg.background_weight >= 1.0:
        return err.mean()
    mask = F.interpolate(batch["mask"].to(device), size=err.shape[-2:], mode="area")
    w = mask + tcfg.background_weight * (1.0 - mask)
    return (err * w).sum() / (w.sum() * err.shape[1]).clamp_min(1e-8)


def latest_checkpoint(out_dir: str) -> str | None:
    root = os.path.join(out_dir, CHECKPOINTS)
    if not os.path.isdir(root):
        return None
    done = sorted(d for d in os.listdir(root) if d.startswith("checkpoint-") and not d.endswith(".tmp")
                  and os.path.isfile(os.path.join(root, d, "training_state.pt")))
    return os.path.join(root, done[-1]) if done else None


def _pipeline(model: RelightModel, unet: UNet2DConditionModel, sampler: str = "ddim",
              tcfg: config_mod.TrainSection | None = None) -> RelightPipeline:
    tcfg = tcfg or config_mod.TrainSection()
    pipe = RelightPipeline(unet=unet, vae=model.vae, text_encoder=model.text_encoder,
                           tokenizer=model.tokenizer, output=model.config.output, default_steps=tcfg.val_steps,
                           default_image_guidance=tcfg.image_guidance,
                           scheduler=scheduler_by_name(sampler, model.scheduler.config) if sampler else model.scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _save_checkpoint(out_dir: str, step: int, model: RelightModel, unet, ema, optimizer, lr_sched,
                     keep: int, tcfg: config_mod.TrainSection | None = None) -> str:
    """Write to a temporary name, then rename: a crash never leaves a half checkpoint that resume would pick."""
    root = os.path.join(out_dir, CHECKPOINTS)
    final = os.path.join(root, f"checkpoint-{step:06d}")
    with atomic.atomic_dir(final) as tmp:
        _pipeline(model, unet, sampler="", tcfg=tcfg).save_pretrained(tmp)
        if ema is not None:
            ema.save_pretrained(os.path.join(tmp, "unet_ema"))
        torch.save({"step": step, "optimizer": optimizer.state_dict(), "lr_scheduler": lr_sched.state_dict()},
                   os.path.join(tmp, "training_state.pt"))
    done = sorted(d for d in os.listdir(root) if d.startswith("checkpoint-") and not d.endswith(".tmp"))
    for old in done[:-keep]:
        shutil.rmtree(os.path.join(root, old), ignore_errors=True)
    return final


def _load_checkpoint(ckpt: str, model: RelightModel) -> tuple[RelightModel, dict]:
    pipe = RelightPipeline.from_pretrained(ckpt)
    model = dataclasses.replace(model, unet=pipe.unet, text_encoder=pipe.text_encoder, vae=pipe.vae,
                                tokenizer=pipe.tokenizer)
    state = torch.load(os.path.join(ckpt, "training_state.pt"), map_location="cpu", weights_only=True)
    return model, state


@torch.no_grad()
def validate(model: RelightModel, unet: UNet2DConditionModel, batch: dict[str, Any], tcfg, device,
             seed: int, grid_path: str | None = None) -> dict[str, float]:
    """Relight the fixed validation pairs; masked PSNR of the prediction and of the copy-input baseline."""
    pipe = _pipeline(model, unet, tcfg=tcfg)
    use_text = model.config.text != "null"
    pred = pipe(batch["input"].to(device), batch["env"].to(device),
                batch["env_hdr"].to(device) if "env_hdr" in batch else None,
                prompt=list(batch["caption"]) if use_text else None,
                num_inference_steps=tcfg.val_steps, image_guidance_scale=tcfg.image_guidance,
                guidance_scale=tcfg.text_guidance, generator=torch.Generator().manual_seed(seed)).cpu()
    m = metrics.all_metrics(pred, batch["target"], batch["mask"])
    base = metrics.all_metrics(batch["input"], batch["target"], batch["mask"])
    columns = {"input": batch["input"], "env (target)": batch["env"], "target": batch["target"]}
    out = {"val_psnr_masked": float(m["psnr_masked"].mean()), "val_ssim_masked": float(m["ssim_masked"].mean()),
           "val_baseline_psnr_masked": float(base["psnr_masked"].mean())}
    if "colour_ratio" in batch:  # the non-learned bar the model must clear (relight eval's second baseline)
        transfer = baselines.colour_transfer(batch["input"], batch["colour_ratio"])
        out["val_colour_psnr_masked"] = float(metrics.all_metrics(transfer, batch["target"],
                                                                  batch["mask"])["psnr_masked"].mean())
        columns["colour transfer"] = transfer
    if grid_path:
        plots.image_grid({**columns, "prediction": pred}, grid_path,
                         labels=[f"{p:.1f} dB" for p in m["psnr_masked"].tolist()])
    return out


def _val_batch(shards, cfg: config_mod.TrainConfig) -> dict[str, Any] | None:
    """A fixed set of held-out pairs: the val split when the dataset has one, else the first train pairs."""
    for split in ("val", "train"):
        try:
            # two pairs per group: several groups and, in a small val split, enough rows
            items = list(itertools.islice(data_mod.iter_pairs(shards, split, cfg.data, pairs=2),
                                          cfg.train.val_pairs))
        except data_mod.DataError:
            continue
        if items:
            batch = data_mod.collate(items)
            try:  # each pair's colour-transfer gain, from its group's env_XX.exr
                irr = baselines.group_irradiance(data_mod.resolve_shards(shards, split))
                batch["colour_ratio"] = np.stack([baselines.irradiance_ratio(irr[m["group_key"]][m["i"]],
                                                                             irr[m["group_key"]][m["j"]])
                                                  for m in batch["meta"]])
            except (data_mod.DataError, KeyError, IndexError):
                pass  # shards without env maps for every lighting: validation without that baseline
            return batch
    return None


class _CsvLog:
    FIELDS = ["step", "loss", "lr", "pairs_per_s", "elapsed_s", "val_psnr_masked", "val_ssim_masked",
              "val_baseline_psnr_masked", "val_colour_psnr_masked"]

    def __init__(self, path: str, resume_step: int):
        rows = []
        if resume_step and os.path.exists(path):
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self.f = open(path, "w", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=self.FIELDS)
        self.w.writeheader()
        self.w.writerows(rows)
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(os.path.join(os.path.dirname(path), "tb"))
        except Exception:  # tensorboard is optional
            self.tb = None

    def write(self, row: dict[str, Any]) -> None:
        self.w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self.f.flush()
        if self.tb:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, row["step"])

    def close(self) -> None:
        self.f.close()
        if self.tb:
            self.tb.close()


def run(cfg: config_mod.TrainConfig, shards, out_dir: str, resume: bool = False,
        dist: DistInfo | None = None, progress: bool = True) -> dict[str, Any]:
    """Train; returns a summary (steps, wall time, pairs/s, last loss, validation PSNR)."""
    dist = dist or DistInfo()
    device = dist.device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tcfg = cfg.train
    ckpt = latest_checkpoint(out_dir)
    if ckpt and not resume:
        raise usage(TrainError(f"{out_dir} already has {os.path.basename(ckpt)}; pass --resume to continue it "
                               "or choose another --out"))
    if resume and ckpt:
        with open(os.path.join(out_dir, "config.json")) as f:
            saved = json.load(f)
        if saved["model"] != cfg.to_dict()["model"]:
            raise usage(TrainError(f"{out_dir}: --resume with a different [model] section than config.json; "
                                   "use the same config or another --out"))
    os.makedirs(out_dir, exist_ok=True)
    if dist.is_main:
        with open(os.path.join(out_dir, "config.json"), "w") as f:
            json.dump(cfg.to_dict(), f, indent=2)

    torch.manual_seed(tcfg.seed + dist.rank)
    model = build(cfg.model)
    start = 0
    state = None
    if resume and ckpt:
        model, state = _load_checkpoint(ckpt, model)
        start = state["step"]
    model.unet.set_attn_processor(AttnProcessor2_0())
    if tcfg.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
    model.vae.to(device).requires_grad_(False).eval()
    text_trainable = isinstance(model.text_encoder, torch.nn.Module) and model.tokenizer is None
    model.text_encoder.to(device).requires_grad_(text_trainable)
    model.unet.to(device).train()

    ema = None
    if tcfg.ema_decay > 0:
        ema_path = os.path.join(ckpt, "unet_ema") if state else None
        if ema_path and os.path.isdir(ema_path):
            ema = EMAModel.from_pretrained(ema_path, model_cls=UNet2DConditionModel, foreach=False)
        else:
            ema = EMAModel(model.unet.parameters(), decay=tcfg.ema_decay, model_cls=UNet2DConditionModel,
                           model_config=model.unet.config, foreach=False)
        ema.to(device)

    params = list(model.unet.parameters()) + (list(model.text_encoder.parameters()) if text_trainable else [])
    optimizer = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    lr_sched = get_scheduler(tcfg.lr_schedule, optimizer, num_warmup_steps=tcfg.warmup_steps,
                             num_training_steps=tcfg.max_steps)
    if state:
        optimizer.load_state_dict(state["optimizer"])
        lr_sched.load_state_dict(state["lr_scheduler"])
    unet = dist.wrap(model.unet)
    amp = autocast_dtype(tcfg.mixed_precision, device)
    scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None

    data_cfg = dataclasses.replace(cfg.data, seed=cfg.data.seed + 1_000_003 * start)
    loader = data_mod.make_loader(shards, "train", data_cfg, batch_size=tcfg.batch_size,
                                  num_workers=tcfg.num_workers, rank=dist.rank, world_size=dist.world_size)
    val_batch = _val_batch(shards, cfg) if dist.is_main else None
    gen = torch.Generator().manual_seed(tcfg.seed * 7919 + dist.rank * 104729 + start)
    log = _CsvLog(os.path.join(out_dir, "train_log.csv"), start) if dist.is_main else None
    bar = tqdm(total=tcfg.max_steps, initial=start, desc="train", unit="step",
               disable=not (progress and dist.is_main), dynamic_ncols=True, mininterval=1.0)

    def batches():
        while True:
            n = 0
            for batch in loader:
                n += 1
                yield batch
            if n == 0:
                raise TrainError(f"no training pairs in {shards!r} (split 'train'); check the dataset with "
                                 "`synthgen inspect`")

    stream = batches()
    t0 = time.time()
    pairs_seen, window_loss, window_n = 0, 0.0, 0
    last: dict[str, Any] = {}
    step = start
    while step < tcfg.max_steps:
        optimizer.zero_grad(set_to_none=True)
        for micro in range(tcfg.grad_accum):
            batch = next(stream)
            sync = micro == tcfg.grad_accum - 1
            ctx = unet.no_sync() if (not sync and hasattr(unet, "no_sync")) else contextlib.nullcontext()
            with ctx:
                loss = diffusion_loss(model, unet, batch, tcfg, gen, device, amp)
                if not torch.isfinite(loss):
                    raise TrainError(f"loss became {loss.item()} at step {step}; lower train.lr or use "
                                     "train.mixed_precision = 'bf16'")
                (scaler.scale(loss / tcfg.grad_accum) if scaler else loss / tcfg.grad_accum).backward()
            window_loss += loss.item()
            window_n += 1
            pairs_seen += batch["target"].shape[0]
        if scaler:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, tcfg.max_grad_norm)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        lr_sched.step()
        if ema is not None:
            ema.step(model.unet.parameters())
        step += 1
        bar.update(1)
        log_now = step % tcfg.log_every == 0 or step == tcfg.max_steps
        if not dist.is_main:
            if log_now and dist.report:
                dist.report({"step": step})  # Ray Train's report is a barrier: every rank calls it
            continue
        elapsed = time.time() - t0
        row: dict[str, Any] = {}
        if log_now:
            row.update(step=step, loss=window_loss / window_n, lr=lr_sched.get_last_lr()[0],
                       pairs_per_s=pairs_seen * dist.world_size / elapsed, elapsed_s=elapsed)
            bar.set_postfix(loss=f"{row['loss']:.4f}", pairs_s=f"{row['pairs_per_s']:.1f}")
            window_loss, window_n = 0.0, 0
        validate_now = val_batch is not None and (
            step == tcfg.max_steps or (tcfg.validate_every and step % tcfg.validate_every == 0))
        if validate_now:
            row.setdefault("step", step)
            with _ema_weights(ema, model.unet):
                model.unet.eval()
                row.update(validate(model, model.unet, val_batch, tcfg, device, tcfg.seed,
                                    os.path.join(out_dir, "validation", f"step-{step:06d}.png")))
                model.unet.train()
        if row:
            log.write(row)
            last.update(row)
        if log_now and dist.report:
            dist.report({k: v for k, v in row.items() if isinstance(v, (int, float))})
        if step % tcfg.checkpoint_every == 0 or step == tcfg.max_steps:
            _save_checkpoint(out_dir, step, model, model.unet, ema, optimizer, lr_sched, tcfg.keep_checkpoints,
                             tcfg)
    bar.close()
    if not dist.is_main:
        return {"steps": step}
    log.close()
    export_dir = export(out_dir, model, ema, tcfg)
    plots.loss_curve(os.path.join(out_dir, "train_log.csv"), os.path.join(out_dir, "loss.png"))
    wall = time.time() - t0
    summary = {"steps": step, "start_step": start, "wall_s": wall,
               "steps_per_s": (step - start) / wall if wall else math.nan,
               "pairs_per_s": last.get("pairs_per_s"), "loss": last.get("loss"),
               "val_psnr_masked": last.get("val_psnr_masked"),
               "val_baseline_psnr_masked": last.get("val_baseline_psnr_masked"),
               "val_colour_psnr_masked": last.get("val_colour_psnr_masked"),
               "model": export_dir, "device": str(device), "world_size": dist.world_size}
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


@contextlib.contextmanager
def _ema_weights(ema: EMAModel | None, unet: torch.nn.Module):
    if ema is None:
        yield
        return
    ema.store(unet.parameters())
    ema.copy_to(unet.parameters())
    try:
        yield
    finally:
        ema.restore(unet.parameters())


def export(out_dir: str, model: RelightModel, ema: EMAModel | None,
           tcfg: config_mod.TrainSection | None = None) -> str:
    """``out_dir/model``: the pipeline with EMA weights and a DDIM scheduler, written atomically."""
    final = os.path.join(out_dir, "model")
    with atomic.atomic_dir(final) as tmp, _ema_weights(ema, model.unet):
        _pipeline(model, model.unet, tcfg=tcfg).save_pretrained(tmp)
    return final
