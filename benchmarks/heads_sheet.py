"""Contact sheets of a head catalog as the dataset renders it: every head front-on and three-quarter,
and a few heads under a hard sun against a soft overcast.

Every tile goes through the dataset's renderer (:class:`synthgen.render.scene.GroupRenderer`) with a
plan-like row located as :meth:`synthgen.locate.AssetPaths.locate` does, hair resolved from the
head's catalog spec and the default job ``[hair]`` section as planning does. Lightings are bpy's
CC0 HDRIs normalised to the dataset's mean luminance, the key light turned 60 degrees to the side
of the face (:func:`benchmarks.ict_heads.make_lightings`); tiles are composited over a neutral grey.

    .venv/bin/synthgen assets builtin --out /tmp/builtin16 --heads 16 --hdris 0
    .venv/bin/python benchmarks/heads_sheet.py --catalog /tmp/builtin16/manifest.parquet \\
        --sheet docs/heads_contact_sheet.png --sun-overcast docs/heads_sun_overcast.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.hair_cost import hair_json  # noqa: E402
from benchmarks.ict_heads import _font, composite, head_rows, located_row, make_lightings, render_cfg  # noqa: E402

PAGE = (34, 35, 38)
TEXT = (226, 226, 226)
LABEL_H = 30


def label(head: dict, spec: dict | None, view: str) -> tuple[str, str]:
    params = json.loads((head.get("head") or {}).get("generator_params") or "{}")
    ft = params.get("fitzpatrick_type")
    if ft is None and "melanin" in params:
        from assets_manifest.heads import appearance

        ft = appearance.fitzpatrick_type(params["melanin"])
    first = f"{head['name']}  {view}" + (f"  type {'I II III IV V VI'.split()[int(ft) - 1]}" if ft else "")
    if not spec:
        return first, "no hair"
    beard = (spec.get("beard") or {}).get("style", "none")
    second = f"{spec['style']} {spec['length_mm']:.0f} mm" + ("" if beard == "none" else f", {beard}")
    return first, second


def _tile(renderer, assets, head, lightings, maps, yaw, args, hair):
    ns = argparse.Namespace(focal=args.focal, framing=args.framing, background="transparent")
    row = located_row(assets, head, lightings, yaw, ns, hair=hair)
    renders, _ = renderer.render_group(row)
    return [composite(rgba, lt, renders.camera, "neutral", maps) for rgba, lt in zip(renders.rgba, lightings)]


def sheet(args) -> None:
    from PIL import Image, ImageDraw
    from tqdm import tqdm

    from synthgen import job as jobs
    from synthgen.locate import AssetPaths
    from synthgen.render.scene import GroupRenderer

    heads = head_rows(args.catalog)[: args.heads]
    assets = AssetPaths.from_catalogs([args.catalog])
    lightings, maps = make_lightings((args.hdri,), key_azimuth=60.0)
    renderer = GroupRenderer(render_cfg(args.resolution, args.samples, args, passes=[]), tmp_dir=args.tmp)
    job_hair = jobs.Job().hair
    r, cols = args.resolution, args.columns
    n = 2 * len(heads)
    rows = -(-n // cols)
    page = Image.new("RGB", (cols * r, rows * (r + LABEL_H)), PAGE)
    draw = ImageDraw.Draw(page)
    font = _font(11)
    for i, head in enumerate(tqdm(heads, desc="heads", unit="head")):
        hair = None if args.no_hair else hair_json(head, job_hair)
        spec = json.loads(hair) if hair else None
        for j, (yaw, view) in enumerate(((0.0, "front"), (35.0 if i % 2 == 0 else -35.0, "3/4"))):
            img = _tile(renderer, assets, head, lightings, maps, yaw, args, hair)[0]
            k = 2 * i + j
            x, y = (k % cols) * r, (k // cols) * (r + LABEL_H)
            page.paste(Image.fromarray(img), (x, y))
            for line, text in enumerate(label(head, spec, view)):
                draw.text((x + 4, y + r + 2 + 13 * line), text, fill=TEXT, font=font)
    os.makedirs(os.path.dirname(os.path.abspath(args.sheet)), exist_ok=True)
    page.save(args.sheet)
    print("wrote", args.sheet)


def sun_overcast(args) -> None:
    from PIL import Image, ImageDraw

    from synthgen import job as jobs
    from synthgen.locate import AssetPaths
    from synthgen.render.scene import GroupRenderer

    heads = head_rows(args.catalog)[: args.so_heads]
    assets = AssetPaths.from_catalogs([args.catalog])
    names = (args.sun_hdri, args.overcast_hdri)
    lightings, maps = make_lightings(names, key_azimuth=60.0)
    renderer = GroupRenderer(render_cfg(args.resolution, args.samples, args, passes=[]), tmp_dir=args.tmp)
    job_hair = jobs.Job().hair
    r = args.resolution
    page = Image.new("RGB", (2 * len(heads) * r, r + LABEL_H), PAGE)
    draw = ImageDraw.Draw(page)
    font = _font(11)
    for i, head in enumerate(heads):
        hair = hair_json(head, job_hair)
        spec = json.loads(hair) if hair else None
        tiles = _tile(renderer, assets, head, lightings, maps, 20.0 if i % 2 else -20.0, args, hair)
        for j, (img, name) in enumerate(zip(tiles, ("hard sun: " + names[0], "soft: " + names[1]))):
            x = (2 * i + j) * r
            page.paste(Image.fromarray(img), (x, 0))
            draw.text((x + 4, r + 2), f"{head['name']}  {name}", fill=TEXT, font=font)
            draw.text((x + 4, r + 15), label(head, spec, "")[1], fill=TEXT, font=font)
    page.save(args.sun_overcast)
    print("wrote", args.sun_overcast)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--sheet", default=None, metavar="OUT.png", help="every head, front and 3/4")
    ap.add_argument("--sun-overcast", default=None, metavar="OUT.png", help="--so-heads heads, sun vs overcast")
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--so-heads", type=int, default=4)
    ap.add_argument("--columns", type=int, default=8)
    ap.add_argument("--hdri", default="courtyard")
    ap.add_argument("--sun-hdri", default="sunrise")
    ap.add_argument("--overcast-hdri", default="forest")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--focal", type=float, default=70.0)
    ap.add_argument("--framing", type=float, default=0.7)
    ap.add_argument("--no-hair", action="store_true", help="render without strands (the before picture)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tmp", default="/tmp")
    args = ap.parse_args()
    if not (args.sheet or args.sun_overcast):
        ap.error("nothing to do: give --sheet and/or --sun-overcast")
    if args.sheet:
        sheet(args)
    if args.sun_overcast:
        sun_overcast(args)


if __name__ == "__main__":
    main()
