"""``relight`` command line: ``envmap`` (the env input a model sees) and ``train``."""

from __future__ import annotations

import argparse
import json
import os
import sys

from assets_manifest.schema import AssetError
from relight.errors import TrainError


def cmd_envmap(args) -> int:
    from PIL import Image

    from relight import envmaps

    ldr = envmaps.camera_frame_ldr(envmaps.load_env(args.env), args.rotate, args.exposure, args.width)
    Image.fromarray(ldr).save(args.out)
    print(f"wrote {args.out} ({ldr.shape[1]}x{ldr.shape[0]}, rotated {args.rotate:g} deg, exposure {args.exposure:g})")
    return 0


def cmd_train(args) -> int:
    from relight import config as config_mod

    overrides = list(args.set or [])
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    if args.pretrained:
        overrides += ["model.source=pretrained", f"model.pretrained={json.dumps(args.pretrained)}"]
    if args.allow_remote:
        overrides.append("data.allow_remote=true")
    cfg = config_mod.load(args.config, overrides)
    shards = args.shards[0] if len(args.shards) == 1 else list(args.shards)
    if args.workers > 1 or args.address:
        from relight.distributed import run_distributed

        summary = run_distributed(cfg, shards, args.out, args.workers, use_gpu=args.gpu, address=args.address,
                                  resume=args.resume)
    else:
        from relight import train

        summary = train.run(cfg, shards, args.out, resume=args.resume)
    print(f"trained {summary['steps']} steps in {summary['wall_s']:.0f} s "
          f"({summary['steps_per_s']:.2f} steps/s); last loss {summary['loss']:.4f}")
    if summary.get("val_psnr_masked") is not None:
        print(f"validation masked PSNR {summary['val_psnr_masked']:.2f} dB "
              f"(copy-input baseline {summary['val_baseline_psnr_masked']:.2f} dB)")
    print(f"model:      {summary['model']}")
    print(f"loss curve: {os.path.join(args.out, 'loss.png')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="relight", description="Relighting diffusion: data, training, inference.")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("envmap", help="turn an HDR map into the LDR env input the model sees",
                       description="Load an HDR map (.exr/.hdr path or procedural:STYLE:SEED), rotate it about "
                                   "the vertical axis, encode it as DESIGN.md's LDR env map and save a PNG.")
    e.add_argument("--env", required=True, help="path/URL to .exr or .hdr, or procedural:STYLE:SEED")
    e.add_argument("--rotate", type=float, default=0.0, help="azimuth rotation in degrees (default 0)")
    e.add_argument("--exposure", type=float, default=1.0, help="exposure multiplier (default 1)")
    e.add_argument("--width", type=int, default=256, help="output width; height is half (default 256)")
    e.add_argument("--out", required=True, help="output PNG")
    e.set_defaults(func=cmd_envmap)

    t = sub.add_parser("train", help="train the conditional diffusion model on synthgen shards",
                       description="Train on a synthgen dataset folder (train split; val for validation grids) "
                                   "or shard paths/brace patterns. Writes checkpoints, train_log.csv, loss.png, "
                                   "validation grids and OUT/model (what `relight infer` loads).")
    t.add_argument("--shards", required=True, nargs="+", help="dataset folder (with dataset.json) or shard paths/patterns")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--config", help="TOML with [model], [data], [train] sections (default: the tiny CPU model)")
    t.add_argument("--max-steps", type=int, help="shortcut for --set train.max_steps=N")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. train.lr=3e-4")
    t.add_argument("--pretrained", help="local Stable Diffusion folder to fine-tune (never downloaded)")
    t.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    t.add_argument("--workers", type=int, default=1, help="data-parallel workers through Ray Train (default 1: no Ray)")
    t.add_argument("--gpu", action="store_true", help="one GPU per Ray worker (NCCL); default CPU workers (gloo)")
    t.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    t.add_argument("--allow-remote", action="store_true", help="allow pipe:/http/s3 shard URLs")
    t.set_defaults(func=cmd_train)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (AssetError, ValueError, TrainError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
