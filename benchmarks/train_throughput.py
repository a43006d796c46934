"""Training throughput of relight's conditional UNet: steps/s and pairs/s, with ratios against baselines.

Side by side in one process, on the same random batches (the loader has its
own benchmark, benchmarks/loader_throughput.py):

* tiny pixel-space config on CPU at 32 and 64 px: SDPA attention (what
  training uses) vs diffusers' classic ``AttnProcessor``, and gradient
  checkpointing on vs off (its memory saving costs recompute);
* ``--sd15``: an SD-1.5-shaped UNet (random init, 12-channel conv_in, no
  download) at 512 px (64x64 latents): images/s with bf16 autocast + SDPA vs
  fp32 + classic attention. Meant for a GPU; on a CPU it runs one tiny batch.
* ``--shards DIR``: the whole ``relight.train.run`` loop on a real dataset
  (loader, EMA, logging) for ``--steps`` steps, pairs/s end to end.

    python benchmarks/train_throughput.py [--sd15] [--shards out/quickstart] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from relight import config as config_mod  # noqa: E402
from relight import train  # noqa: E402
from relight.components import CaptionEncoder  # noqa: E402
from relight.model import ModelConfig, RelightModel, build, make_scheduler, widen_conv_in  # noqa: E402


def _batch(b: int, res: int, text: bool) -> dict:
    g = torch.Generator().manual_seed(0)
    return {"input": torch.rand(b, 3, res, res, generator=g), "env": torch.rand(b, 3, res, res, generator=g),
            "target": torch.rand(b, 3, res, res, generator=g), "mask": torch.ones(b, 1, res, res),
            "caption": ["a portrait of a person lit from the left"] * b if text else [""] * b}


def time_steps(model, batch, tcfg, device, amp, steps: int, warmup: int = 2) -> float:
    """Seconds per optimizer step (forward, backward, AdamW)."""
    unet = model.unet.to(device).train()
    model.text_encoder.to(device)
    opt = torch.optim.AdamW(list(unet.parameters()) + list(model.text_encoder.parameters()), lr=1e-5)
    gen = torch.Generator().manual_seed(0)
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss = train.diffusion_loss(model, unet, batch, tcfg, gen, device, amp)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def tiny(args) -> None:
    print(f"\n## Tiny config on {args.device} (batch {args.batch}, {args.steps} steps each; threads {torch.get_num_threads()})")
    print("| px | variant | s/step | pairs/s | ratio vs baseline |")
    print("|---|---|---|---|---|")
    dev = torch.device(args.device)
    for res in (32, 64):
        cfg = config_mod.load(None, [f"data.resolution={res}", f"data.env_size=[{res}, {res}]", "model.text='hashed'"])
        rows = []
        for name, proc, ckpt in (("classic attention (baseline)", AttnProcessor(), False),
                                 ("SDPA (training default)", AttnProcessor2_0(), False),
                                 ("SDPA + gradient checkpointing", AttnProcessor2_0(), True)):
            torch.manual_seed(0)
            m = build(cfg.model)
            m.unet.set_attn_processor(proc)
            if ckpt:
                m.unet.enable_gradient_checkpointing()
            rows.append((name, time_steps(m, _batch(args.batch, res, True), cfg.train, dev, None, args.steps)))
        base = rows[0][1]
        for name, s in rows:
            print(f"| {res} | {name} | {s:.3f} | {args.batch / s:.1f} | {base / s:.2f}x |")


def sd15(args) -> None:
    dev = torch.device(args.device)
    res = 512 if dev.type == "cuda" else 128
    b = args.batch if dev.type == "cuda" else 1
    print(f"\n## SD-1.5-shaped UNet (random init, 12-ch conv_in) at {res} px on {args.device}, batch {b}")
    print("| variant | s/step | images/s | ratio vs fp32 |")
    print("|---|---|---|---|")
    mcfg = ModelConfig()
    vae = AutoencoderKL(block_out_channels=(32, 64, 64, 64), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, norm_num_groups=32)
    rows = []
    for name, proc, amp in (("fp32 + classic attention (baseline)", AttnProcessor(), None),
                            ("bf16 autocast + SDPA", AttnProcessor2_0(), torch.bfloat16)):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(cross_attention_dim=768)  # SD 1.5's shape: 860 M parameters
        widen_conv_in(unet, 12)
        unet.set_attn_processor(proc)
        unet.enable_gradient_checkpointing()
        # a small stand-in VAE with SD's 8x downsampling: the UNet is what is timed
        model = RelightModel(unet, vae.to(dev), CaptionEncoder(dim=768), None, make_scheduler(mcfg), mcfg)
        steps = args.steps if dev.type == "cuda" else 1
        rows.append((name, time_steps(model, _batch(b, res, False), config_mod.TrainSection(), dev, amp, steps,
                                      warmup=3 if dev.type == "cuda" else 1)))
        del unet, model
    base = rows[0][1]
    for name, s in rows:
        print(f"| {name} | {s:.3f} | {b / s:.2f} | {base / s:.2f}x |")


def end_to_end(args) -> None:
    cfg = config_mod.load(None, [f"train.max_steps={args.steps}", f"train.batch_size={args.batch}",
                                 "train.validate_every=0", f"train.checkpoint_every={args.steps}",
                                 "model.text='hashed'"])
    with tempfile.TemporaryDirectory() as out:
        s = train.run(cfg, args.shards, out, progress=False)
    print(f"\n## relight.train.run on {args.shards}: {s['steps']} steps at {cfg.data.resolution} px, "
          f"batch {args.batch}: {s['steps_per_s']:.2f} steps/s, {s['pairs_per_s']:.1f} pairs/s "
          f"(wall {s['wall_s']:.1f} s incl. loader start, checkpoint and export)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--sd15", action="store_true", help="also time an SD-1.5-shaped UNet")
    p.add_argument("--shards", help="a dataset folder: time the full training loop on it")
    args = p.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    tiny(args)
    if args.sd15:
        sd15(args)
    if args.shards:
        end_to_end(args)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
