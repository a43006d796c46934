"""What strand hair costs: seconds per image with and without hair, and noise against samples.

Every render goes through the dataset's renderer (:class:`synthgen.render.scene.GroupRenderer`,
what ``synthgen render`` runs) with plan-like rows located as
:meth:`synthgen.locate.AssetPaths.locate` does, the hair resolved from each head's catalog spec
and a job's ``[hair]`` section exactly as planning does (:func:`assets_manifest.hair.resolve`).

``--timing`` (the issue's cost target)
    for each size (the demo's: ``jobs/quickstart.toml``'s resolution and samples; 256 px / 32 spp;
    512 px / 64 spp), every head of ``--catalog`` (``--heads``, default 8; the catalog's styles, i.e.
    the default style mix) is rendered as one group of ``--lightings`` (2: bpy's ``courtyard`` and
    ``forest`` HDRIs; 1: courtyard) with hair and without, the order alternating head by head, after one discarded
    warm-up group per size. Total seconds per image = (setup + Cycles) / lightings, where setup is
    import, materials, hair growth and framing. Prints the medians and the ratio with / without.
``--spp-curve OUT.png``
    quality per cost with hair: ``--curve-heads`` heads (default 3) at 256 px, each rendered at
    ``--curve-spp`` samples (denoised, as datasets are) and at ``--ref-spp`` (default 1024) as the
    reference; RMSE of the sRGB-encoded image against the reference (on the head: alpha of the
    reference > 0.5) and the seconds, as a table and a plot.

    .venv/bin/synthgen assets builtin --out /tmp/builtin8 --heads 8 --hdris 0
    .venv/bin/python benchmarks/hair_cost.py --catalog /tmp/builtin8/manifest.parquet --timing
    .venv/bin/python benchmarks/hair_cost.py --catalog /tmp/builtin8/manifest.parquet --spp-curve /tmp/spp.png
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.ict_heads import head_rows, located_row, make_lightings, render_cfg  # noqa: E402

HDRIS = ("courtyard", "forest")
YAWS = (0.0, 25.0, 0.0, -25.0)


def hair_json(head: dict, job_hair) -> str | None:
    from assets_manifest import hair

    gp = json.loads((head.get("head") or {}).get("generator_params") or "{}")
    spec = hair.resolve(gp.get("hair"), job_hair)
    return None if spec is None else json.dumps(spec, sort_keys=True)


def _args_ns(args):
    return argparse.Namespace(focal=70.0, framing=0.65, background="transparent")


def sizes(args) -> list[tuple[str, int, int]]:
    from synthgen import job as jobs

    quick = jobs.load(os.path.join(ROOT, "jobs", "quickstart.toml"))
    out = [("demo", quick.render.resolution, quick.render.samples), ("256", 256, 32), ("512", 512, 64)]
    return [s for s in out if s[0] in args.sizes.split(",")]


def timing(args) -> None:
    from synthgen import job as jobs
    from synthgen.locate import AssetPaths
    from synthgen.render.scene import GroupRenderer

    job_hair = jobs.Job().hair
    heads = head_rows(args.catalog)[: args.heads]
    assets = AssetPaths.from_catalogs([args.catalog])
    lightings, _ = make_lightings(HDRIS[: args.lightings], key_azimuth=60.0)
    ns = _args_ns(args)
    styles = [json.loads(hair_json(h, job_hair) or "null") for h in heads]
    print("heads:", ", ".join(f"{h['name']} ({(s or {}).get('style', 'none')}, beard {((s or {}).get('beard') or {}).get('style', '-')})"
                              for h, s in zip(heads, styles)))
    for label, res, spp in sizes(args):
        renderer = GroupRenderer(render_cfg(res, spp, args), tmp_dir=args.tmp)
        warm = located_row(assets, heads[0], lightings, 0.0, ns, hair=hair_json(heads[0], job_hair))
        renderer.render_group(warm)
        per = {"with": [], "without": []}
        for i, head in enumerate(heads):
            yaw = YAWS[i % len(YAWS)]
            order = ("with", "without") if i % 2 == 0 else ("without", "with")
            for kind in order:
                row = located_row(assets, head, lightings, yaw, ns,
                                  hair=hair_json(head, job_hair) if kind == "with" else None)
                t = time.perf_counter()
                _, tm = renderer.render_group(row)
                total = time.perf_counter() - t
                per[kind].append({"setup": tm.setup_s, "cycles": sum(tm.render_s), "total": total})
            w, wo = per["with"][-1], per["without"][-1]
            print(f"  {label} {head['name']}: with {w['total'] / len(lightings):.2f} s/image "
                  f"(setup {w['setup']:.2f} s), without {wo['total'] / len(lightings):.2f} s/image, "
                  f"{w['total'] / wo['total']:.2f}x", flush=True)
        med = {k: {m: statistics.median(r[m] for r in v) / len(lightings) for m in ("setup", "cycles", "total")}
               for k, v in per.items()}
        ratios = [a["total"] / b["total"] for a, b in zip(per["with"], per["without"])]
        print(f"| {label} ({res} px, {spp} spp) | {med['without']['total']:.2f} | {med['with']['total']:.2f} "
              f"| {med['with']['setup']:.2f} | **{med['with']['total'] / med['without']['total']:.2f}x** "
              f"| {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |", flush=True)
        del renderer


def spp_curve(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from synthgen import job as jobs
    from synthgen.format import codecs
    from synthgen.locate import AssetPaths
    from synthgen.render.scene import GroupRenderer

    job_hair = jobs.Job().hair
    heads = [h for h in head_rows(args.catalog) if hair_json(h, job_hair)][: args.curve_heads]
    assets = AssetPaths.from_catalogs([args.catalog])
    lightings, _ = make_lightings(HDRIS[:1], key_azimuth=60.0)
    ns = _args_ns(args)
    levels = [int(s) for s in args.curve_spp.split(",")]
    rows = {}
    for i, head in enumerate(heads):
        row = located_row(assets, head, lightings, YAWS[i % len(YAWS)], ns, hair=hair_json(head, job_hair))
        images = {}
        for spp in levels + [args.ref_spp]:
            renderer = GroupRenderer(render_cfg(256, spp, args), tmp_dir=args.tmp)
            t = time.perf_counter()
            renders, tm = renderer.render_group(row)
            images[spp] = (renders.rgba[0], sum(tm.render_s))
            del renderer
        ref = images[args.ref_spp][0]
        mask = ref[..., 3] > 0.5
        ref8 = codecs.srgb_encode(ref[..., :3]).astype(np.float64)
        for spp in levels:
            img8 = codecs.srgb_encode(images[spp][0][..., :3]).astype(np.float64)
            rmse = float(np.sqrt(np.mean((img8 - ref8)[mask] ** 2)))
            rows.setdefault(spp, []).append((rmse, images[spp][1]))
            print(f"  {head['name']} {spp} spp: RMSE {rmse:.2f}/255, {images[spp][1]:.2f} s", flush=True)
    print("| spp | RMSE vs reference (/255, mean of heads) | seconds per image (256 px) |")
    print("|---|---|---|")
    xs, ys, ts = [], [], []
    for spp in levels:
        r = float(np.mean([a for a, _ in rows[spp]]))
        t = float(np.mean([b for _, b in rows[spp]]))
        xs.append(spp)
        ys.append(r)
        ts.append(t)
        print(f"| {spp} | {r:.2f} | {t:.2f} |")
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    ax.plot(ts, ys, "o-")
    for x, t, y in zip(xs, ts, ys):
        ax.annotate(f"{x} spp", (t, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("seconds per image, 256 px, with hair")
    ax.set_ylabel(f"RMSE vs {args.ref_spp} spp (sRGB /255)")
    ax.set_title("Hair: noise against cost (denoised)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.spp_curve)
    print("wrote", args.spp_curve)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalog", required=True, help="a head catalog (manifest.parquet), e.g. the built-in one")
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--lightings", type=int, default=2, choices=(1, 2), help="lightings per group in --timing")
    ap.add_argument("--sizes", default="demo,256,512", help="which of demo,256,512 --timing runs")
    ap.add_argument("--spp-curve", default=None, metavar="OUT.png")
    ap.add_argument("--curve-heads", type=int, default=3)
    ap.add_argument("--curve-spp", default="8,16,32,64,128")
    ap.add_argument("--ref-spp", type=int, default=1024)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tmp", default="/tmp")
    args = ap.parse_args()
    if not (args.timing or args.spp_curve):
        ap.error("nothing to do: give --timing and/or --spp-curve")
    if args.timing:
        timing(args)
    if args.spp_curve:
        spp_curve(args)


if __name__ == "__main__":
    main()
