"""Skin subsurface across Blender versions: the same heads, seeds and light, side by side.

Blender 5.2 changed Cycles' random-walk subsurface (the mapping from radius
and anisotropy to albedo) and kept the old behaviour as RANDOM_WALK_LEGACY.
This renders the same procedural head GLBs with each configuration and tiles
them into one labelled sheet (rows: heads; columns: configurations), then
prints how far each configuration's skin is from the first column's, next
to the noise floor: the first configuration again with another Cycles seed.

Each configuration is a checkout (with its own venv) and a subsurface method:

    python benchmarks/subsurface_versions.py --heads H1.glb H2.glb ... \\
        --config "5.0.1 SKIN=/path/old-checkout:RANDOM_WALK_SKIN" \\
        --config "5.2.3 SKIN=.:RANDOM_WALK_SKIN" \\
        --config "5.2.3 LEGACY=.:RANDOM_WALK_LEGACY" --out docs/subsurface_5.0_vs_5.2.png

A checkout renders with `CHECKOUT/.venv/bin/python` and its own synthgen
(head_materials, head_preview); only the Principled BSDF's subsurface method
is overridden, so the materials are otherwise each version's own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Runs inside each checkout's venv: front and three-quarter view of every head.
CHILD = r"""
import json, os, sys
import bpy
from synthgen.render import head_materials, head_preview
method, res, samples, seed, out_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
heads = sys.argv[6:]
node = head_materials._Graph.node
def node_with_method(self, kind, **inputs):
    if "_subsurface_method" in inputs:
        inputs["_subsurface_method"] = method
    return node(self, kind, **inputs)
head_materials._Graph.node = node_with_method
scene = head_preview._reset_scene(head_preview.builtin_hdri("studio.exr"), res, samples, exposure=-0.7)
scene.cycles.use_adaptive_sampling = False
scene.cycles.seed = seed
for i, h in enumerate(heads):
    for yaw in (0.0, 35.0):
        head_preview.render_head(h, os.path.join(out_dir, f"{i}_{int(yaw)}.png"), yaw_deg=yaw)
print(json.dumps({"blender": bpy.app.version_string}))
"""


def render_config(checkout: str, method: str, heads: list[str], res: int, samples: int, out_dir: str,
                  seed: int = 7) -> str:
    py = os.path.join(checkout, ".venv", "bin", "python")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([py, "-c", CHILD, method, str(res), str(samples), str(seed), out_dir, *heads],
                       cwd=checkout, env=env, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"{checkout}: render failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["blender"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--heads", nargs="+", required=True, help="head GLBs (the same files for every config)")
    ap.add_argument("--config", action="append", required=True, help="'LABEL=CHECKOUT:METHOD'")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    heads = [os.path.abspath(h) for h in args.heads]
    configs = []
    for c in args.config:
        label, _, rest = c.partition("=")
        checkout, _, method = rest.rpartition(":")
        configs.append((label, os.path.abspath(checkout), method))

    res, pad, label_h = args.resolution, 4, 18
    tiles: dict[tuple[int, int, int], np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ci, (label, checkout, method) in enumerate(configs):
            d = os.path.join(tmp, str(ci))
            os.makedirs(d)
            version = render_config(checkout, method, heads, res, args.samples, d)
            print(f"rendered {label}: Blender {version}, {method}", flush=True)
            for hi in range(len(heads)):
                for vi, yaw in enumerate((0, 35)):
                    tiles[ci, hi, vi] = np.asarray(Image.open(os.path.join(d, f"{hi}_{yaw}.png")).convert("RGBA"))
        # noise floor: the first config with another Cycles seed (not drawn)
        label, checkout, method = configs[0]
        d = os.path.join(tmp, "noise")
        os.makedirs(d)
        render_config(checkout, method, heads, res, args.samples, d, seed=8)
        for hi in range(len(heads)):
            for vi, yaw in enumerate((0, 35)):
                tiles[len(configs), hi, vi] = np.asarray(Image.open(os.path.join(d, f"{hi}_{yaw}.png")).convert("RGBA"))
        print(f"rendered {label} again with another seed (noise floor)", flush=True)

    # sheet: one column pair (front, 3/4) per config, one row per head
    cols = len(configs) * 2
    sheet = Image.new("RGB", (cols * (res + pad) + pad, len(heads) * (res + pad) + label_h + pad), (58, 60, 64))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for ci, (label, _, method) in enumerate(configs):
        draw.text((pad + ci * 2 * (res + pad) + 4, 3), f"{label}", fill=(235, 235, 235), font=font)
        for hi in range(len(heads)):
            for vi in range(2):
                rgba = Image.fromarray(tiles[ci, hi, vi])
                x, y = pad + (ci * 2 + vi) * (res + pad), label_h + hi * (res + pad)
                sheet.paste(rgba, (x, y), rgba)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")

    # skin difference from the first config: mean over pixels both renders cover
    print(f"\n{'config':<22} {'mean sRGB (R, G, B) of the head':<34} {'mean |diff| vs ' + configs[0][0]:<26} max |diff|")
    rows = [label for label, _, _ in configs] + [f"{configs[0][0]}, seed 8"]
    for ci, label in enumerate(rows):
        means, diffs, peaks = [], [], []
        for (c, hi, vi), t in tiles.items():
            if c != ci:
                continue
            ref = tiles[0, hi, vi]
            both = (t[..., 3] > 250) & (ref[..., 3] > 250)
            means.append(t[both][:, :3].mean(0))
            d = np.abs(t[both][:, :3].astype(float) - ref[both][:, :3])
            diffs.append(d.mean())
            peaks.append(np.percentile(d.max(1), 99))
        m = np.mean(means, 0)
        print(f"{label:<22} ({m[0]:5.1f}, {m[1]:5.1f}, {m[2]:5.1f}){'':<17} {np.mean(diffs):6.2f} / 255{'':<13}"
              f"{np.max(peaks):5.1f} (p99)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
