"""``relight`` command line: ``envmap`` (the env input a model sees), ``train``, ``infer``, ``eval``, ``extract``."""

from __future__ import annotations

import argparse
import json
import os
import sys

from assets_manifest import cli_errors


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
    for name, value in _read_fields(args).items():
        overrides.append(f"data.{name}={json.dumps(value)}")
    cfg = config_mod.load(args.config, overrides)
    shards = args.shards[0] if len(args.shards) == 1 else list(args.shards)
    if args.workers > 1 or args.address:
        try:
            import ray.train  # noqa: F401
        except ImportError:
            print("relight train --workers/--address needs Ray Train: pip install '.[farm]' "
                  "(ray[default,train])", file=sys.stderr)
            return 2
        from relight.distributed import run_distributed

        summary = run_distributed(cfg, shards, args.out, args.workers, use_gpu=args.gpu, address=args.address,
                                  resume=args.resume)
    else:
        from relight import train

        summary = train.run(cfg, shards, args.out, resume=args.resume)
    done = summary["steps"] - summary.get("start_step", 0)
    loss = f"; last loss {summary['loss']:.4f}" if summary.get("loss") is not None else ""
    print(f"trained {done} steps (to step {summary['steps']}) in {summary['wall_s']:.0f} s "
          f"({summary['steps_per_s']:.2f} steps/s){loss}")
    if summary.get("val_psnr_masked") is not None:
        print(f"validation masked PSNR {summary['val_psnr_masked']:.2f} dB "
              f"(copy-input baseline {summary['val_baseline_psnr_masked']:.2f} dB)")
    print(f"model:      {summary['model']}")
    print(f"loss curve: {os.path.join(args.out, 'loss.png')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="relight", description="Relighting diffusion: data, training, inference.",
                                epilog="Exit codes: 0 success, 1 runtime failure (bad or missing data, NaN loss), "
                                       "2 bad usage, 130 interrupted.")
    p.add_argument(cli_errors.DEBUG_FLAG, action="store_true", help=cli_errors.DEBUG_HELP)
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
    _read_args(t)
    t.set_defaults(func=cmd_train)
    add_inference_parsers(sub)
    return p


# ---------------------------------------------------------------- inference and evaluation


def _settings(args):
    from relight.infer import Settings

    return Settings(steps=args.steps, scheduler=args.scheduler, seed=args.seed, image_guidance=args.image_guidance,
                    text_guidance=args.text_guidance, prompt=getattr(args, "prompt", None),
                    batch=getattr(args, "batch", 16))


def cmd_infer(args) -> int:
    import time

    from relight import infer, inputs

    if args.rotations < 1:
        raise inputs.InputError(f"--rotations {args.rotations}: must be >= 1")
    settings = _settings(args)
    settings.check()
    infer.set_threads(args.threads)
    for flag, path in (("--image", args.image), ("--mask", args.mask)):
        if path and not os.path.isfile(path):
            raise cli_errors.runtime(inputs.InputError(f"{flag} {path}: file not found"))
    lights = [inputs.resolve_env(spec, args.catalog) for spec in args.env]
    pipe = infer.load_pipeline(args.model, args.scheduler, args.device)
    settings = settings.resolved(pipe)
    geo = inputs.model_geometry(args.model, pipe, args.size)
    source = inputs.read_portrait(args.image, geo.resolution, args.mask, use_alpha=not args.no_mask)
    portrait, mask = source.image, source.mask
    if args.prompt is not None and not infer.has_text(pipe):
        print("note: this model has no text condition; --prompt is ignored (two-branch guidance)", file=sys.stderr)
        settings.prompt = None
    angles = [args.rotate + 360.0 * k / args.rotations for k in range(args.rotations)]
    conds, labels = [], []
    for light in lights:
        for a in angles:
            conds.append(inputs.env_condition(light, a, args.exposure, geo.env_size, geo.env_hdr, geo.env_hdr_max))
            labels.append(f"{light.label} {a % 360:g} deg")
    t0 = time.perf_counter()
    relit = infer.relight(pipe, infer.model_input(portrait, mask, geo), conds, settings)
    wall = time.perf_counter() - t0
    relit = infer.subject_only(pipe, relit, mask, geo)
    how = (f"{settings.steps} {settings.scheduler} steps, image guidance {settings.image_guidance:g}"
           + (f", text guidance {settings.text_guidance:g}" if settings.prompt else "")
           + f", {wall:.1f} s on {pipe.device}; mask: {source.mask_from})")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    if len(conds) == 1:
        infer.to_pil(relit[0]).save(args.out)
        print(f"wrote {args.out} ({geo.resolution}x{geo.resolution}, {labels[0]}; {how}")
        return 0
    ldr = [c["env_ldr_png"] for c in conds]
    from relight import direction

    face = direction.side_balance(relit, None if mask is None else mask[None].expand(len(conds), -1, -1, -1))
    light = [c["light_side"] for c in conds]
    infer.save_strip(args.out, portrait, relit, ldr, rows=[lt.label for lt in lights],
                     cols=[f"{a % 360:g} deg" for a in angles], tile=args.tile,
                     notes=[f"R-L {f:+.2f}" for f in face.tolist()])
    gif = args.gif or os.path.splitext(args.out)[0] + ".gif"
    infer.save_gif(gif, infer.gif_frames(portrait, relit, ldr, labels, tile=max(args.tile, 160)), args.frame_ms)
    print(f"wrote {args.out} ({len(lights)} lighting(s) x {len(angles)} rotation(s), "
          f"{geo.resolution} px each; {how}")
    print(f"wrote {gif} ({len(conds)} frames)")
    corr = direction.correlation(light, face.tolist())
    print(f"left/right: the relit face's right-minus-left brightness follows the light's side with correlation "
          f"{corr:.2f} over {len(conds)} lightings (1: the light turns the right way; relight/direction.py)")
    return 0


def cmd_eval(args) -> int:
    from relight import evaluate

    from relight import infer

    infer.set_threads(args.threads)
    pairs = args.pairs if args.pairs == "all" else _positive_int("--pairs", args.pairs)
    if args.seeds < 1:
        raise ValueError(f"--seeds {args.seeds}: must be >= 1")
    opts = evaluate.EvalOptions(split=args.split, pairs=pairs, batch_size=args.batch, seeds=args.seeds,
                                grid_rows=args.grid_rows,
                                size=args.size, device=args.device, lpips_weights=args.lpips_weights,
                                identity_weights=args.identity_weights, identity_arch=args.identity_arch,
                                identity_size=args.identity_size, read=_read_policy(args))
    shards = args.shards[0] if len(args.shards) == 1 else list(args.shards)
    s = evaluate.evaluate(args.model, shards, args.out, _settings(args), opts, progress=not args.quiet)
    o = s["overall"]
    print(f"{s['pairs']} pairs of the {s['split']} split in {s['wall_s']:.1f} s:")
    print(f"  {'':28s} {'masked PSNR':>16s} {'masked SSIM':>16s}"
          + (f"   (model: mean ± sd over {len(s['seeds'])} seeds)" if len(s["seeds"]) > 1 else ""))
    for method in evaluate.METHODS:
        r = o[method]
        sd = method == evaluate.MODEL and len(s["seeds"]) > 1
        psnr = f"{r['psnr_masked']:.2f}" + (f" ± {r['psnr_masked_sd']:.2f}" if sd else "")
        ssim = f"{r['ssim_masked']:.3f}" + (f" ± {r['ssim_masked_sd']:.3f}" if sd else "")
        print(f"  {method:28s} {psnr:>13s} dB {ssim:>16s}")
    for name in ("metrics_md", "metrics_csv", "pairs_csv", "grid"):
        print(f"{name.replace('_', ' '):12s} {s['files'][name]}")
    return 0


def cmd_extract(args) -> int:
    from relight import infer

    rgba, info = infer.extract_render(args.shards, args.split, args.key, args.lighting, _read_policy(args))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    rgba.save(args.out)
    print(f"wrote {args.out} ({rgba.size[0]}x{rgba.size[1]} RGBA, alpha = mask): {info['split']} group "
          f"{info['key']}, lighting {info['lighting']} ({info['hdri']}, rotated {info['rotation_deg']:.0f} deg)")
    return 0


def _read_args(p: argparse.ArgumentParser) -> None:
    """The shard-reading opt-ins and limits (relight.shard_safety.ReadPolicy), on every command that reads shards."""
    # defaults spelled out: importing shard_safety (webdataset) here would slow down every command
    p.add_argument("--allow-remote", action="store_true", help="allow http(s), s3://, gs:// ... shard URLs")
    p.add_argument("--allow-pipe", action="store_true",
                   help="allow pipe:CMD shard URLs (webdataset runs CMD through a shell)")
    p.add_argument("--allow-compressed", action="store_true", help="allow gzip/bzip2/xz-compressed shards")
    p.add_argument("--max-member-mb", type=float, metavar="MB",
                   help="largest tar member read, in MiB (default 256)")
    p.add_argument("--max-image-side", type=int, metavar="PX",
                   help="largest EXR/PNG/JPEG width or height decoded (default 8192)")


def _read_fields(args) -> dict:
    """The ReadPolicy fields given on the command line (flags left out keep the config's or default value)."""
    out = {name: True for name in ("allow_remote", "allow_pipe", "allow_compressed") if getattr(args, name)}
    if args.max_member_mb is not None:
        if not args.max_member_mb > 0:
            raise ValueError(f"--max-member-mb {args.max_member_mb:g}: must be > 0")
        out["max_member_bytes"] = max(1, int(args.max_member_mb * (1 << 20)))
    if args.max_image_side is not None:
        if args.max_image_side < 1:
            raise ValueError(f"--max-image-side {args.max_image_side}: must be >= 1")
        out["max_image_side"] = args.max_image_side
    return out


def _read_policy(args):
    from relight.shard_safety import ReadPolicy

    return ReadPolicy(**_read_fields(args))


def _lighting(text: str) -> int | str:
    if text == "front":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: an index or 'front'") from None


def _positive_int(flag: str, text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{flag} {text}: 'all' or a positive integer")
    return n


def _sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's, train.val_steps; 20 for "
                                             "models saved before it was recorded)")
    p.add_argument("--scheduler", default="ddim", choices=["ddim", "euler", "dpm++"], help="sampler (default ddim)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--image-guidance", type=float,
                   help="portrait guidance l_I (default: the model's, train.image_guidance; 3, the paper's, for "
                        "models saved before it was recorded)")
    p.add_argument("--text-guidance", type=float, default=2.0, help="text guidance l_T (default 2, the paper's)")
    p.add_argument("--size", type=int, help="portrait side in px (default: the model's training resolution)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, help="torch CPU threads (default torch's; 1 is fastest for the tiny model "
                                               "on a busy machine)")


def add_inference_parsers(sub) -> None:
    i = sub.add_parser("infer", help="relight a portrait under a target lighting",
                       description="Relight --image under --env (an .exr/.hdr file, a built-in HDRI name such as "
                                   "studio or forest, or procedural:STYLE:SEED), turned by --rotate degrees. "
                                   "The portrait (any size) is centre-cropped and resized to the model's resolution; "
                                   "--mask, else its alpha channel, else a mask estimated from a plain backdrop "
                                   "masks it as in training (a busy background: the whole image). "
                                   "One lighting writes a PNG; "
                                   "--rotations N or several --env write a strip PNG and an animated GIF.")
    i.add_argument("--model", required=True, help="a RelightPipeline folder (relight train's OUT/model)")
    i.add_argument("--image", required=True, help="portrait image (PNG/JPEG, any size; RGBA alpha is used as the mask)")
    i.add_argument("--env", required=True, action="append",
                   help="target lighting: .exr/.hdr, built-in name or procedural:STYLE:SEED; repeat for several")
    i.add_argument("--rotate", type=float, default=0.0, help="azimuth rotation of the lighting in degrees (default 0)")
    i.add_argument("--exposure", type=float, default=1.0, help="exposure multiplier of the lighting (default 1)")
    i.add_argument("--rotations", type=int, default=1,
                   help="N > 1: the light turned in N steps around the face (from --rotate), as a strip and a GIF")
    i.add_argument("--mask", help="foreground mask image (white = subject); default: the portrait's alpha, "
                                  "else one estimated from a plain backdrop")
    i.add_argument("--no-mask", action="store_true",
                   help="no mask: ignore the alpha channel and estimate none (the whole image is the subject)")
    i.add_argument("--catalog", help="catalog manifest.parquet whose HDRIs --env may name (besides bpy's built-ins)")
    i.add_argument("--prompt", help="text for the three-term guidance (models with text; the paper uses "
                                    f"'A nice person.'); default none: two-branch guidance")
    _sampling_args(i)
    i.add_argument("--batch", type=int, default=16, help="lightings per pipeline call (default 16)")
    i.add_argument("--tile", type=int, default=128, help="cell size of the strip in px (default 128)")
    i.add_argument("--gif", help="GIF path (default: --out with .gif)")
    i.add_argument("--frame-ms", type=int, default=250, help="GIF frame duration in ms (default 250)")
    i.add_argument("--out", required=True, help="output PNG (the relit portrait, or the strip)")
    i.set_defaults(func=cmd_infer)

    e = sub.add_parser("eval", help="relight a dataset's held-out pairs and measure them",
                       description="Relight every ordered pair of --split (test by default) and compare with the "
                                   "renders: masked and full-frame PSNR and SSIM, LPIPS and identity distance "
                                   "with local weights. Writes metrics.md, metrics.csv (model, the "
                                   "copy-input and colour-transfer baselines, and a per-HDRI breakdown), "
                                   "pairs.csv, grid.png, summary.json.")
    e.add_argument("--model", required=True, help="a RelightPipeline folder (relight train's OUT/model)")
    e.add_argument("--shards", required=True, nargs="+", help="dataset folder (with dataset.json) or shard paths/patterns")
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--split", default="test", help="split of a dataset folder (default test)")
    e.add_argument("--pairs", default="all", help="'all' ordered pairs per group (default) or N per group")
    _sampling_args(e)
    e.add_argument("--seeds", type=int, default=1,
                   help="N sampling seeds from --seed (default 1): the model's metrics are their mean and spread")
    e.add_argument("--prompt", help="one prompt for every pair (models with text; default: each target's caption)")
    e.add_argument("--batch", type=int, default=8, help="pairs per pipeline call (default 8)")
    e.add_argument("--grid-rows", type=int, default=8, help="pairs shown in grid.png (default 8)")
    e.add_argument("--lpips-weights", help="local LPIPS weights: lpips state dict file, or folder with "
                                           "torchvision backbone + lpips head .pth")
    e.add_argument("--identity-weights", help="local face-embedding network: TorchScript file, or state dict "
                                              "with --identity-arch")
    e.add_argument("--identity-arch", help="module:callable building the network for an --identity-weights state dict")
    e.add_argument("--identity-size", type=int, default=160, help="input side of the identity network (default 160)")
    _read_args(e)
    e.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    e.set_defaults(func=cmd_eval)

    x = sub.add_parser("extract", help="write one render of a dataset as an RGBA PNG (alpha = mask)",
                       description="Pick a held-out render for `relight infer`: group --key (default the first) "
                                   "of --split (default test), lighting --lighting (default 0).")
    x.add_argument("--shards", required=True, help="dataset folder (with dataset.json) or shard paths/patterns")
    x.add_argument("--split", default="test", help="split of a dataset folder (default test)")
    x.add_argument("--key", help="group key (default: the first group of the split)")
    x.add_argument("--lighting", type=_lighting, default=0,
                   help="which of the group's renders: an index (default 0), or 'front' for the one lit most "
                        "from the camera's side (a fair input for a relit strip)")
    _read_args(x)
    x.add_argument("--out", required=True, help="output PNG")
    x.set_defaults(func=cmd_extract)


def main(argv: list[str] | None = None) -> int:
    """Exit codes (assets_manifest.cli_errors): 0 ok, 1 runtime failure, 2 bad usage, 130 interrupted."""
    return cli_errors.run(build_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
