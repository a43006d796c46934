"""Farm scaling: throughput with 1 and N Ray workers, and the Ray path's cost against one process.

Runs the same job through the real CLI, each run from scratch in its own
output folder:

* ``local``: ``synthgen render --local`` with ``render.threads=1`` (one
  process, one Blender, one Cycles thread; no Ray);
* ``farm xN``: ``synthgen render --workers N --cpus-per-worker 1`` for each N
  (a fresh local Ray instance each time; one Blender per worker).

Prints images/s end to end (process start to exit: Ray start-up, Blender
start-up, planning and finalizing included) and inside the tasks (images
over the workers' busy time), efficiency T(N) / (N * T(1)) on both, and the
Ray path's overhead: wall(farm x1) / wall(local). Wall-clock efficiency needs
N free cores; on a shared, loaded machine it measures the load, so the
script also prints Blender's CPU-seconds per image (render_stats.parquet)
and the CPU efficiency cpu/img(x1) / cpu/img(xN), which waiting does not
inflate.

    .venv/bin/python benchmarks/farm_scaling.py                       # sphere catalog, 12 groups, 1 and 2 workers
    .venv/bin/python benchmarks/farm_scaling.py --catalog out/catalog/manifest.parquet --groups 16 --workers 1,2,4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(argv: list[str]) -> float:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", *argv], cwd=ROOT, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"synthgen {' '.join(argv[:3])} failed:\n{r.stderr[-3000:]}")
    return time.perf_counter() - t


def blender_cpu_s_per_image(out: str) -> float:
    """CPU seconds Blender used (all threads) per image: what waiting on a loaded machine does not inflate."""
    import pyarrow.parquet as pq

    stats = pq.read_table(os.path.join(out, "render_stats.parquet")).to_pylist()
    return sum(s["cpu_s"] for s in stats) / sum(len(s["render_s"]) for s in stats)


def load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--catalog", help="manifest.parquet (default: a small sphere catalog built here)")
    p.add_argument("--job", default=os.path.join(ROOT, "jobs", "quickstart.toml"))
    p.add_argument("--groups", type=int, default=12)
    p.add_argument("--shard-size", type=int, default=2)
    p.add_argument("--resolution", type=int, default=96)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--rotations", type=int, default=4, help="lightings per group (one map, N rotations)")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    p.add_argument("--keep", help="keep the outputs in this folder")
    args = p.parse_args()

    work = args.keep or tempfile.mkdtemp(prefix="farm-scaling-")
    catalog = args.catalog
    if catalog is None:
        catalog = os.path.join(work, "catalog", "manifest.parquet")
        if not os.path.exists(catalog):
            subprocess.run([sys.executable, os.path.join(ROOT, "tests", "make_catalog.py"), os.path.dirname(catalog)],
                           check=True, cwd=ROOT)
    sets = [f'job.catalogs=["{os.path.abspath(catalog)}"]', f"splits.train={args.groups}", "splits.val=0",
            "splits.test=0", f"job.shard_size={args.shard_size}", f"render.resolution={args.resolution}",
            f"render.samples={args.samples}", "lighting.hdris_per_group=1",
            f"lighting.rotations_per_hdri={args.rotations}"]
    common = [args.job, "-q", *[a for s in sets for a in ("--set", s)]]
    images = args.groups * args.rotations
    rows = []

    print(f"job: {args.groups} groups x {args.rotations} lightings = {images} images, {args.resolution} px, "
          f"{args.samples} spp, shards of {args.shard_size}; {os.cpu_count()} cores, load {load()}")
    out = os.path.join(work, "local")
    shutil.rmtree(out, ignore_errors=True)
    before = load()
    wall = run(["render", *common, "--out", out, "--local", "--set", "render.threads=1"])
    rows.append({"run": "local (1 process, 1 thread)", "workers": 1, "wall_s": wall, "images_per_s": images / wall,
                 "in_task_images_per_s": None, "cpu_s_per_image": blender_cpu_s_per_image(out),
                 "load_before": before, "load_after": load()})
    for n in [int(x) for x in args.workers.split(",")]:
        out = os.path.join(work, f"farm{n}")
        shutil.rmtree(out, ignore_errors=True)
        before = load()
        wall = run(["render", *common, "--out", out, "--workers", str(n), "--cpus-per-worker", "1"])
        with open(os.path.join(out, "farm_report.json")) as f:
            rep = json.load(f)
        in_task = sum(w["images_per_s"] or 0 for w in rep["workers"])
        rows.append({"run": f"farm x{n} (Ray, {n} worker{'s' * (n > 1)} x 1 CPU)", "workers": n, "wall_s": wall,
                     "images_per_s": images / wall, "in_task_images_per_s": in_task,
                     "core_s_per_1000_images": rep["core_s_per_1000_images"],
                     "cpu_s_per_image": blender_cpu_s_per_image(out), "load_before": before,
                     "load_after": load()})

    farm1 = next(r for r in rows if r["workers"] == 1 and r["in_task_images_per_s"] is not None)
    print(f"\n{'run':34s} {'wall s':>7s} {'img/s':>7s} {'in tasks':>9s} {'CPU-s/img':>10s} "
          f"{'efficiency':>18s}   load before / after")
    for r in rows:
        eff = ""
        if r["in_task_images_per_s"] is not None:
            n = r["workers"]
            r["efficiency"] = r["images_per_s"] / (n * farm1["images_per_s"])
            r["efficiency_in_tasks"] = r["in_task_images_per_s"] / (n * farm1["in_task_images_per_s"])
            r["efficiency_cpu"] = farm1["cpu_s_per_image"] / r["cpu_s_per_image"]
            eff = f"{r['efficiency']:.2f} / {r['efficiency_in_tasks']:.2f} / {r['efficiency_cpu']:.2f}"
        in_task = f"{r['in_task_images_per_s']:.3f}" if r["in_task_images_per_s"] is not None else "-"
        print(f"{r['run']:34s} {r['wall_s']:7.1f} {r['images_per_s']:7.3f} {in_task:>9s} {r['cpu_s_per_image']:10.3f} "
              f"{eff:>18s}   {r['load_before']} / {r['load_after']}")
    print("\nefficiency: T(N) / (N * T(1)) end to end / inside the tasks / CPU-s per image of x1 over xN "
          "(the last is what N workers cost per image, whatever the machine's load)")
    print(f"Ray path overhead, wall(farm x1) / wall(local) = {farm1['wall_s'] / rows[0]['wall_s']:.2f} "
          f"({farm1['wall_s'] - rows[0]['wall_s']:+.1f} s); Blender CPU-s per image farm x1 / local = "
          f"{farm1['cpu_s_per_image'] / rows[0]['cpu_s_per_image']:.2f}")
    with open(os.path.join(work, "farm_scaling.json"), "w") as f:
        json.dump({"args": vars(args), "images": images, "runs": rows}, f, indent=1)
    print(f"results: {os.path.join(work, 'farm_scaling.json')}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
