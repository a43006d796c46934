"""World importance-map resolution: noise against cost, to choose ``render.world_map_resolution``.

Every change of the world's HDR map makes Cycles rebuild the world's importance
map, at a resolution that ``world.cycles.sample_map_resolution`` sets. Cycles'
"Automatic" uses 4096 x 2048 for any map without a sky-texture sun. This script
renders one head of the catalog under a few maps at each resolution, with the
job's own settings (16 samples, adaptive sampling, denoising), several seeds, and
prints the RMSE against a 512-sample reference (lower is less noise) next to
the seconds the map change adds to a render.

    .venv/bin/python benchmarks/world_importance.py --catalog out/catalog/manifest.parquet
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", default=os.path.join(ROOT, "out", "catalog", "manifest.parquet"))
    ap.add_argument("--job", default=os.path.join(ROOT, "jobs", "quickstart.toml"))
    ap.add_argument("--maps", default="blender/sunrise.exr,procedural/clear_sky_0004.exr,blender/studio.exr",
                    help="HDR maps, relative to the catalog's hdri/ folder (comma-separated)")
    ap.add_argument("--resolutions", default="auto,1024,2048,4096")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--ref-samples", type=int, default=512)
    args = ap.parse_args()

    import bpy
    import numpy as np

    from synthgen import job as jobs
    from synthgen import plan
    from synthgen.locate import AssetPaths
    from synthgen.render import scene

    job = jobs.load(args.job, [f'job.catalogs=["{os.path.abspath(args.catalog)}"]'])
    row = AssetPaths.from_catalogs(job.job.catalogs).locate(plan.make_plan(job).to_pylist()[1])
    tmp = tempfile.mkdtemp(prefix="synthgen-world-")
    r = scene.GroupRenderer(job.to_dict()["render"], tmp_dir=tmp, log_path=os.path.join(tmp, "blender.log"))
    r.load_group(row)
    world, sc = r.world["world"], r.scene
    samples = sc.cycles.samples

    def set_resolution(res: str) -> None:
        if res == "auto":
            world.cycles.sampling_method = "AUTOMATIC"
        else:
            world.cycles.sampling_method = "MANUAL"
            world.cycles.sample_map_resolution = int(res)
        world.update_tag()  # a Python-side property change is not seen by Cycles otherwise

    def render(lighting: dict, seed: int) -> tuple[np.ndarray, float]:
        t = time.perf_counter()
        rgba = r.render_lighting(dict(lighting, cycles_seed=seed), False)[0]
        return rgba[..., :3], time.perf_counter() - t

    hdri_root = os.path.join(os.path.dirname(os.path.abspath(args.catalog)), "hdri")
    print(f"{job.render.resolution} px, {samples} samples, denoise={job.render.denoise}; "
          f"reference {args.ref_samples} samples at 4096; {args.seeds} seeds")
    print(f"{'map':28s} {'importance map':>14s} {'RMSE':>8s} {'+-':>7s} {'map change s':>13s}")
    for name in args.maps.split(","):
        lighting = dict(row["lightings"][0], hdri_asset_id=name, hdri_path=os.path.join(hdri_root, name))
        r.render_lighting(lighting, False)  # load the map
        # the loader sets the resolution per map; override it for the experiment
        set_resolution("4096")
        sc.cycles.samples = args.ref_samples
        sc.update_tag()
        ref, _ = render(lighting, 12345)
        sc.cycles.samples = samples
        sc.update_tag()
        for res in args.resolutions.split(","):
            set_resolution(res)
            _, first = render(lighting, 99)  # pays for the new importance map
            errs, times = [], []
            for s in range(args.seeds):
                img, dt = render(lighting, 1000 + s)
                errs.append(float(np.sqrt(np.mean((img - ref) ** 2))))
                times.append(dt)
            change = first - statistics.median(times)
            print(f"{name:28s} {res:>14s} {np.mean(errs):8.4f} {np.std(errs) / np.sqrt(len(errs)):7.4f} "
                  f"{change:13.2f}", flush=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
