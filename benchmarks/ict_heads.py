"""ICT-FaceKit heads as the dataset renders them: contact sheet, before/after of the roles, time per group.

The sheet shows a catalog's heads under four HDRIs, the before/after one head
without and with its material roles, and the timing compares the seconds per
group of an ICT head against a procedural head.

Every picture and timing goes through the dataset's own renderer
(:class:`synthgen.render.scene.GroupRenderer`, what ``synthgen render`` runs)
with plan-like rows built by hand and located as
:meth:`synthgen.locate.AssetPaths.locate` does: the catalog's units, axes,
material roles and appearance; the camera framed as the dataset frames a
bust (``frame_head``: the top 0.25 m of the head, ``--framing`` of the image
height) at a fixed yaw alternating 0, +20, 0, -20 degrees from head to head.

Lightings are the HDRIs that ship inside bpy (``datafiles/studiolights/world``,
the built-in catalog's), each normalised to the dataset's target mean
luminance (``lighting.target_mean_luminance`` 0.8, as ``normalize_exposure``
does) and turned so that its key light (the catalog's ``dominant_azimuth_deg``)
is ``--key-azimuth`` degrees to the side of the face, neutral white balance.
The film is transparent: tiles are composited over a neutral grey
(``--background neutral``) or over what the camera sees of the HDRI
(``--background env``, as the dataset's env backgrounds), then sRGB-encoded
as the shards are.

Jobs (any combination, one Blender session):

``--sheet OUT.png``
    every head of ``--catalog`` (16 by default) under 4 HDRIs, 2 heads x 4
    lightings per row, each HDRI's map in the column header, each head
    labelled with its file name, Fitzpatrick type, yaw and strongest
    expressions. Defaults: 256 px, 32 samples, denoised.
``--before-after OUT.png``
    one head (``--ba-head``, default the catalog's first) with the materials
    of its OBJ/MTL as Blender imports them (no roles: ``material_roles=[]``)
    next to the same head with its roles; full head and an eye/mouth
    close-up, 256 px.
``--timing``
    seconds per group of an ICT head against a procedural head of
    ``--procedural`` (the built-in catalog), at 128 px / 16 samples and
    512 px / 64 samples, 2 lightings per group (two HDRIs, as the
    quickstart's maps), same camera and render settings (the quickstart's:
    denoised, 6 bounces, albedo/normal/depth passes). Groups alternate ICT,
    procedural, ICT, ... in one renderer per size, after one discarded
    warm-up group per kind (at 32 px, once per process), and the medians of
    setup (import + materials + framing), Cycles' render call and the whole
    group are printed with the ratio ICT / procedural.

    .venv/bin/synthgen assets ict-facekit /path/to/ICT-FaceKit --heads 16 --out /tmp/ict
    .venv/bin/synthgen assets builtin --out /tmp/builtin --heads 3 --hdris 0
    .venv/bin/python benchmarks/ict_heads.py --catalog /tmp/ict/manifest.parquet \\
        --sheet docs/ict_heads_contact_sheet.png --before-after docs/ict_materials_before_after.png
    .venv/bin/python benchmarks/ict_heads.py --catalog /tmp/ict/manifest.parquet \\
        --procedural /tmp/builtin/manifest.parquet --timing --timing-heads 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SHEET_HDRIS = ("studio", "courtyard", "forest", "sunset")
TIMING_HDRIS = ("courtyard", "forest")
NEUTRAL = 0.18  # linear grey of the neutral background (sRGB ~118)
PAGE = (34, 35, 38)
TEXT = (226, 226, 226)
DIM = (160, 160, 165)
YAWS = (0.0, 20.0, 0.0, -20.0)


# ---------------------------------------------------------------- lightings and rows

def bpy_hdri(name: str) -> str:
    from assets_manifest.builtin import bpy_hdri_dir

    path = os.path.join(bpy_hdri_dir(), name if name.endswith(".exr") else name + ".exr")
    if not os.path.isfile(path):
        raise SystemExit(f"{path}: no such bpy HDRI (bpy ships {', '.join(sorted(os.listdir(bpy_hdri_dir())))})")
    return path


def make_lightings(names, key_azimuth: float, target_luminance: float = 0.8) -> tuple[list[dict], dict]:
    """Lighting dicts of a located plan row for bpy HDRIs ``names``, and the maps (name -> linear array)."""
    from assets_manifest.hdri_io import read_hdri
    from assets_manifest.hdri_stats import hdri_metadata

    out, maps = [], {}
    for i, name in enumerate(names):
        path = bpy_hdri(name)
        rgb = read_hdri(path)
        meta = hdri_metadata(rgb)
        maps[name] = rgb
        out.append({
            "hdri_asset_id": name, "hdri_name": name, "hdri_path": path,
            # lighting rotation r moves every light by +r in azimuth (synthgen.camera_env)
            "rotation_deg": float((key_azimuth - meta["dominant_azimuth_deg"]) % 360.0),
            "exposure": float(target_luminance / max(meta["mean_luminance"], 1e-6)),
            "white_balance_kelvin": 6504.0, "white_balance_rgb": [1.0, 1.0, 1.0],
            "cycles_seed": 1000 + i,
        })
    return out, maps


def head_rows(manifest: str) -> list[dict]:
    from assets_manifest.schema import read_rows

    return sorted((r for r in read_rows(manifest) if r["kind"] == "head"), key=lambda r: r["name"])


def located_row(assets, head: dict, lightings: list[dict], yaw: float, args, **override) -> dict:
    """A plan row for one group, located as the renderer gets it (AssetPaths.locate)."""
    row = {"key": head["name"], "head_asset_id": head["asset_id"], "head_name": head["name"],
           "focal_mm": args.focal, "sensor_mm": 36.0, "framing": args.framing, "yaw_deg": yaw,
           "pitch_deg": 0.0, "roll_deg": 0.0, "background": args.background,
           "background_rgb": [0.0, 0.0, 0.0], "lightings": []}
    row = assets.locate(row)
    row["lightings"] = [dict(lt) for lt in lightings]
    row.update(override)
    return row


def render_cfg(resolution: int, samples: int, args, passes=None) -> dict:
    from synthgen import job as jobs

    cfg = jobs.load(os.path.join(ROOT, "jobs", "quickstart.toml")).to_dict()["render"]
    cfg.update(resolution=resolution, samples=samples, device=args.device, denoise=True, adaptive_threshold=0.0)
    if passes is not None:
        cfg["passes"] = passes
    return cfg


def composite(rgba: np.ndarray, lighting: dict, camera, background: str, maps: dict) -> np.ndarray:
    """8-bit sRGB tile: the linear render over the background, as synthgen.samples encodes a sample."""
    from synthgen import camera_env
    from synthgen.format import codecs

    if background == "env":
        gain = np.asarray(lighting["white_balance_rgb"], dtype=np.float32) * lighting["exposure"]
        plate = camera_env.background_plate(maps[lighting["hdri_name"]], np.asarray(camera.world_from_camera)[:3, :3],
                                            lighting["rotation_deg"], camera.resolution, camera.focal_mm,
                                            camera.sensor_mm) * gain
    else:
        plate = np.full(rgba.shape[:2] + (3,), NEUTRAL, dtype=np.float32)
    return codecs.srgb_encode(rgba[..., :3] + (1.0 - rgba[..., 3:4]) * plate)


def map_thumbnail(rgb: np.ndarray, lighting: dict, width: int):
    """The HDRI as the face sees it (centre column in front of the face), tone-mapped, width x width/2."""
    from PIL import Image

    from assets_manifest import envmap
    from synthgen.format import codecs

    pano = envmap.rotate_azimuth(envmap.front_frame(rgb), lighting["rotation_deg"]) * lighting["exposure"]
    img = Image.fromarray(codecs.srgb_encode(pano / (1.0 + pano)))  # Reinhard: keeps the sun's shape
    return img.resize((width, width // 2), Image.LANCZOS)


def head_label(head: dict, yaw: float) -> str:
    params = json.loads((head.get("head") or {}).get("generator_params") or "{}")
    bits = [head["name"]]
    ft = params.get("fitzpatrick_type")
    if ft:
        bits.append("type " + "I II III IV V VI".split()[int(ft) - 1])
    bits.append(f"yaw {yaw:+.0f}")
    expr = sorted((params.get("expression_weights") or {}).items(), key=lambda kv: -kv[1])[:2]
    if expr:
        bits.append(", ".join(f"{k} {v:.1f}" for k, v in expr))
    return "  ".join(bits)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


# ---------------------------------------------------------------- jobs

def sheet(args, renderer_factory) -> None:
    from PIL import Image, ImageDraw
    from tqdm import tqdm

    from synthgen.locate import AssetPaths

    heads = head_rows(args.catalog)[: args.heads]
    if not heads:
        raise SystemExit(f"{args.catalog}: no heads")
    names = args.sheet_hdris.split(",")
    lightings, maps = make_lightings(names, args.key_azimuth)
    assets = AssetPaths.from_catalogs([args.catalog])
    res, per_row, gap = args.resolution, 2, max(8, args.resolution // 20)
    label_h = max(14, res // 14)
    thumb_w = res - 8
    header_h = label_h + thumb_w // 2 + 8
    n_cols = len(lightings)
    block_w = n_cols * res
    n_rows = -(-len(heads) // per_row)
    width = per_row * block_w + (per_row - 1) * gap
    height = header_h + n_rows * (label_h + res) + (n_rows - 1) * (gap // 2) + label_h + 4
    page = Image.new("RGB", (width, height), PAGE)
    draw = ImageDraw.Draw(page)
    font = _font(label_h - 4)
    for b in range(per_row):
        for j, lt in enumerate(lightings):
            x = b * (block_w + gap) + j * res
            draw.text((x + 4, 2), lt["hdri_name"], fill=TEXT, font=font)
            page.paste(map_thumbnail(maps[lt["hdri_name"]], lt, thumb_w), (x + 4, label_h + 2))
    renderer = renderer_factory(render_cfg(res, args.samples, args, passes=[]))
    t0 = time.perf_counter()
    for i, head in enumerate(tqdm(heads, desc="sheet", unit="head")):
        yaw = YAWS[i % len(YAWS)]
        renders, _ = renderer.render_group(located_row(assets, head, lightings, yaw, args))
        r, b = divmod(i, per_row)
        x0 = b * (block_w + gap)
        y0 = header_h + r * (label_h + res + gap // 2)
        draw.text((x0 + 4, y0 + 1), head_label(head, yaw), fill=TEXT, font=font)
        for j, (lt, rgba) in enumerate(zip(lightings, renders.rgba)):
            tile = composite(rgba, lt, renders.camera, args.background, maps)
            page.paste(Image.fromarray(tile), (x0 + j * res, y0 + label_h))
    draw.text((4, height - label_h - 1),
              f"ICT-FaceKit identities ({os.path.basename(os.path.dirname(os.path.abspath(args.catalog)))}), "
              f"dataset renderer, {res} px, {args.samples} spp, denoised; bpy HDRIs at mean luminance 0.8, "
              f"key light {args.key_azimuth:+.0f} deg from the face's front; focal {args.focal:g} mm, framing "
              f"{args.framing:g}", fill=DIM, font=font)
    os.makedirs(os.path.dirname(os.path.abspath(args.sheet)), exist_ok=True)
    page.save(args.sheet, optimize=True)
    print(f"sheet: {args.sheet}  {len(heads)} heads x {len(lightings)} HDRIs ({', '.join(names)}), {res} px, "
          f"{args.samples} samples, denoised, background {args.background}; "
          f"{time.perf_counter() - t0:.0f} s")


def before_after(args, renderer_factory) -> None:
    from PIL import Image, ImageDraw

    from synthgen.locate import AssetPaths

    heads = head_rows(args.catalog)
    head = next((h for h in heads if h["name"] == args.ba_head), None) if args.ba_head else heads[0]
    if head is None:
        raise SystemExit(f"{args.catalog}: no head named {args.ba_head!r}")
    lightings, maps = make_lightings([args.ba_hdri], args.key_azimuth)
    assets = AssetPaths.from_catalogs([args.catalog])
    res = args.resolution
    renderer = renderer_factory(render_cfg(res, args.samples, args, passes=[]))
    views = (("full head", args.framing, 0.0), ("close-up", args.framing * 2.6, 0.0))
    columns = (("before: the OBJ/MTL's own materials (no roles)", []),
               ("after: material roles", None))
    label_h, side = max(14, res // 14), max(14, res // 14)
    page = Image.new("RGB", (len(columns) * res + 4, label_h + len(views) * res + label_h), PAGE)
    draw = ImageDraw.Draw(page)
    font = _font(label_h - 4)
    for c, (title, roles) in enumerate(columns):
        draw.text((c * res + 4, 1), title.split(":")[0], fill=TEXT, font=font)
        for v, (_, framing, yaw) in enumerate(views):
            row = located_row(assets, head, lightings, yaw, args, framing=framing)
            if roles is not None:
                row["material_roles"] = roles  # apply_roles with an empty list: every slot keeps the file's material
            renders, _ = renderer.render_group(row)
            tile = composite(renders.rgba[0], lightings[0], renders.camera, args.background, maps)
            page.paste(Image.fromarray(tile), (c * res + (4 if c else 0), label_h + v * res))
    draw.text((4, label_h + len(views) * res + 1),
              f"{head['name']}  {args.ba_hdri}  {res} px  {args.samples} spp", fill=DIM, font=font)
    os.makedirs(os.path.dirname(os.path.abspath(args.before_after)), exist_ok=True)
    page.save(args.before_after, optimize=True)
    print(f"before/after: {args.before_after}  {head['name']} under {args.ba_hdri}, {res} px, {args.samples} samples "
          f"(left: the file's materials, no roles; right: roles)")


def timing(args, renderer_factory) -> None:
    from synthgen.locate import AssetPaths

    if not args.procedural or not os.path.isfile(args.procedural):
        raise SystemExit(f"--timing needs --procedural MANIFEST (the built-in catalog: synthgen assets builtin "
                         f"--out DIR --heads 3 --hdris 0); got {args.procedural!r}")
    n = args.timing_heads
    ict = head_rows(args.catalog)
    proc = [h for h in head_rows(args.procedural) if h.get("format") == "glb" or h["uri"].endswith(".glb")]
    if len(ict) < n + 1 or len(proc) < n + 1:
        n = min(len(ict), len(proc)) - 1
        if n < 1:
            raise SystemExit("--timing needs at least 2 heads in each catalog (one is the warm-up)")
    assets = AssetPaths.from_catalogs([args.catalog, args.procedural])
    lightings, _ = make_lightings(args.timing_hdris.split(","), args.key_azimuth)
    print(f"timing: {n} groups per kind per size (after one warm-up group per kind at 32 px), 2 lightings per group "
          f"({args.timing_hdris}), yaw alternating {', '.join(f'{y:+.0f}' for y in YAWS)}, device {args.device}")
    print(f"  ICT: {', '.join(h['name'] for h in ict[1:n + 1])} ({ict[1]['head']['vertices']} vertices); "
          f"procedural: {', '.join(h['name'] for h in proc[1:n + 1])} ({proc[1]['head']['vertices']} vertices)")
    # warm-up, once per process at a tiny size: first imports (glTF add-on, OBJ reader), OIDN, map loads
    warm = renderer_factory(render_cfg(32, 1, args))
    for heads in (ict, proc):
        warm.render_group(located_row(assets, heads[0], lightings, 0.0, args))
    results = []
    for res, samples in args.timing_sizes:
        renderer = renderer_factory(render_cfg(res, samples, args))
        got: dict[str, dict[str, list[float]]] = {k: {"setup": [], "cycles": [], "group": []} for k in ("ict", "proc")}
        for i in range(1, n + 1):
            for kind, heads in (("ict", ict), ("proc", proc)):
                row = located_row(assets, heads[i], lightings, YAWS[i % len(YAWS)], args)
                t = time.perf_counter()
                _, tm = renderer.render_group(row)
                wall = time.perf_counter() - t
                got[kind]["setup"].append(tm.setup_s)
                got[kind]["cycles"].append(sum(tm.render_s))
                got[kind]["group"].append(wall)
                print(f"  {res:4d} px {kind:4s} {heads[i]['name']:12s} setup {tm.setup_s:6.2f} s  "
                      f"Cycles {sum(tm.render_s):7.2f} s  group {wall:7.2f} s", flush=True)
        med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in got.items()}
        results.append((res, samples, med))
    print()
    print("| size | head | setup s (median) | Cycles s, 2 lightings (median) | s per group (median) | ICT / procedural |")
    print("|---|---|---|---|---|---|")
    for res, samples, med in results:
        for kind, label in (("proc", "procedural (GLB)"), ("ict", "ICT-FaceKit (OBJ)")):
            m = med[kind]
            ratio = ""
            if kind == "ict":
                p = med["proc"]
                ratio = (f"setup {m['setup'] / p['setup']:.2f}x, Cycles {m['cycles'] / p['cycles']:.2f}x, "
                         f"**group {m['group'] / p['group']:.2f}x**")
            print(f"| {res} px, {samples} spp | {label} | {m['setup']:.2f} | {m['cycles']:.2f} | {m['group']:.2f} | {ratio} |")


def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        res, _, spp = part.partition(":")
        out.append((int(res), int(spp)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", required=True, help="ICT-FaceKit catalog manifest (synthgen assets ict-facekit)")
    ap.add_argument("--sheet", metavar="OUT.png", help="contact sheet of the catalog's heads under 4 HDRIs")
    ap.add_argument("--before-after", metavar="OUT.png", help="one head without and with material roles")
    ap.add_argument("--timing", action="store_true", help="seconds per group, ICT against procedural")
    ap.add_argument("--procedural", help="built-in catalog manifest for --timing (procedural GLB heads)")
    ap.add_argument("--heads", type=int, default=16, help="heads on the sheet (default 16)")
    ap.add_argument("--resolution", type=int, default=256, help="tile size of the sheet and before/after (256)")
    ap.add_argument("--samples", type=int, default=32, help="samples of the sheet and before/after (32)")
    ap.add_argument("--sheet-hdris", default=",".join(SHEET_HDRIS), help="4 bpy HDRIs (default %(default)s)")
    ap.add_argument("--ba-head", help="head name for --before-after (default the catalog's first)")
    ap.add_argument("--ba-hdri", default="studio", help="bpy HDRI for --before-after (default studio)")
    ap.add_argument("--background", choices=("neutral", "env"), default="neutral",
                    help="behind the head: neutral grey, or the HDRI as the camera sees it (default neutral)")
    ap.add_argument("--key-azimuth", type=float, default=35.0,
                    help="each HDRI is turned so its key light is this far to the face's side (default 35)")
    ap.add_argument("--focal", type=float, default=70.0, help="focal length, mm (default 70; the quickstart: 50-85)")
    ap.add_argument("--framing", type=float, default=0.65,
                    help="head height over image height (default 0.65; the quickstart: 0.55-0.75)")
    ap.add_argument("--timing-heads", type=int, default=3, help="groups per kind and size (default 3, median)")
    ap.add_argument("--timing-sizes", type=_sizes, default=_sizes("128:16,512:64"),
                    help="px:samples,... (default 128:16,512:64)")
    ap.add_argument("--timing-hdris", default=",".join(TIMING_HDRIS), help="2 bpy HDRIs (default %(default)s)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "gpu", "auto"), help="Cycles device (default cpu)")
    args = ap.parse_args()
    if not (args.sheet or args.before_after or args.timing):
        ap.error("nothing to do: give --sheet, --before-after and/or --timing")
    if not os.path.isfile(args.catalog):
        ap.error(f"--catalog {args.catalog}: no such file")

    from synthgen.render import scene as S

    tmp = tempfile.mkdtemp(prefix="ict-heads-")
    log = os.path.join(tmp, "blender.log")

    def renderer_factory(cfg: dict[str, Any]):
        return S.GroupRenderer(cfg, tmp_dir=tmp, log_path=log)

    if args.timing:
        timing(args, renderer_factory)
    if args.before_after:
        before_after(args, renderer_factory)
    if args.sheet:
        sheet(args, renderer_factory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
