"""``relight`` command line: env-map preparation today; train/infer/eval as they land."""

from __future__ import annotations

import argparse
import sys

from assets_manifest.schema import AssetError


def cmd_envmap(args) -> int:
    from PIL import Image

    from relight import envmaps

    ldr = envmaps.camera_frame_ldr(envmaps.load_env(args.env), args.rotate, args.exposure, args.width)
    Image.fromarray(ldr).save(args.out)
    print(f"wrote {args.out} ({ldr.shape[1]}x{ldr.shape[0]}, rotated {args.rotate:g} deg, exposure {args.exposure:g})")
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (AssetError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
