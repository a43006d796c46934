"""Render throughput: the synthgen pipeline against a naive per-group baseline, same job, same machine.

Baseline (what Objaverse-style scripts do): one fresh Python process per
group that imports bpy, builds the scene, renders the group's K lightings
and writes PNGs with Blender's own writer. No persistent data, no reuse.

Pipeline: ``synthgen render`` in one process (one Blender session, scene
built once per group, persistent data, shards written through webdataset).

Prints groups/s for both, the ratio, and the share of the pipeline's wall
time spent inside Cycles' render call (the rest is overhead: import, scene
changes, compositing, encoding, shard writing).

    .venv/bin/python benchmarks/render_throughput.py --catalog out/catalog/manifest.parquet \
        --groups 6 --resolution 128 --samples 16
    .venv/bin/python benchmarks/render_throughput.py --groups 2 --resolution 512 --samples 64 --skip-baseline
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
sys.path.insert(0, ROOT)

BASELINE = r"""
import json, math, os, sys, time
t0 = time.perf_counter()
import bpy
from synthgen.render import scene as S
from synthgen.camera_env import scene_turn_deg
row, render_cfg, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
r = S.GroupRenderer(render_cfg, tmp_dir=out)
sc = r.scene
sc.render.image_settings.media_type = "IMAGE"
sc.render.image_settings.file_format = "PNG"
r.load_group(row)
render_s = 0.0
for i, lt in enumerate(row["lightings"]):
    w = r.world
    w["env"].image = r._image(lt["hdri_uri"])
    # the naive way: turn the world (a world-shader update per lighting)
    w["mapping"].inputs["Rotation"].default_value = (0.0, 0.0, math.radians(scene_turn_deg(lt["rotation_deg"])))
    w["mix"].inputs[7].default_value = (*lt["white_balance_rgb"], 1.0)
    w["background"].inputs["Strength"].default_value = lt["exposure"]
    sc.cycles.seed = lt["cycles_seed"]
    sc.render.filepath = os.path.join(out, f"{row['key']}_{i:02d}.png")
    t = time.perf_counter()
    bpy.ops.render.render(write_still=True)
    render_s += time.perf_counter() - t
print("JSON" + json.dumps({"render_s": render_s, "process_s": time.perf_counter() - t0}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", default=os.path.join(ROOT, "out", "catalog", "manifest.parquet"))
    ap.add_argument("--job", default=os.path.join(ROOT, "jobs", "quickstart.toml"))
    ap.add_argument("--groups", type=int, default=6)
    ap.add_argument("--hdris", type=int, default=2, help="HDR maps per group (default 2, as quickstart)")
    ap.add_argument("--rotations", type=int, default=2, help="rotations per map (default 2; the paper uses 36)")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--skip-baseline", action="store_true", help="only the pipeline (for the in-render share)")
    args = ap.parse_args()

    from synthgen import job as jobs, plan, runner

    overrides = [f'job.catalogs=["{os.path.abspath(args.catalog)}"]', f"splits.train={args.groups}",
                 "splits.val=0", "splits.test=0", f"lighting.hdris_per_group={args.hdris}", f"lighting.rotations_per_hdri={args.rotations}",
                 f"render.resolution={args.resolution}", f"render.samples={args.samples}",
                 f"job.shard_size={args.groups}", 'job.id="bench"']
    job = jobs.load(args.job, overrides)
    work = tempfile.mkdtemp(prefix="synthgen-bench-")
    try:
        t = time.perf_counter()
        summary = runner.run_local(job, os.path.join(work, "pipeline"), resume=False, progress=False)
        pipe_s = time.perf_counter() - t
        import pyarrow.parquet as pq

        stats = pq.read_table(os.path.join(work, "pipeline", "render_stats.parquet")).to_pylist()
        in_render = sum(s["render_s_total"] for s in stats)
        assert summary["failed"] == 0, "benchmark groups failed; see failures.parquet"
        print(f"job: {args.groups} groups x {args.hdris} maps x {args.rotations} rotations, "
              f"{args.resolution}px, {args.samples} samples")
        print(f"pipeline : {pipe_s:8.1f} s  {args.groups / pipe_s:.3f} groups/s  "
              f"({100 * in_render / pipe_s:.1f}% of wall time inside Cycles' render call)")
        if args.skip_baseline:
            return 0
        rows = plan.make_plan(job).to_pylist()
        base_dir = os.path.join(work, "baseline")
        os.makedirs(base_dir)
        t = time.perf_counter()
        base_render = 0.0
        for row in rows:
            r = subprocess.run([sys.executable, "-c", BASELINE, json.dumps(row), json.dumps(job.to_dict()["render"]),
                                base_dir], capture_output=True, text=True, cwd=ROOT)
            if r.returncode:
                print(r.stderr[-2000:], file=sys.stderr)
                return 1
            base_render += json.loads(r.stdout.split("JSON", 1)[1])["render_s"]
        base_s = time.perf_counter() - t
        print(f"baseline : {base_s:8.1f} s  {args.groups / base_s:.3f} groups/s  "
              f"({100 * base_render / base_s:.1f}% inside render)")
        print(f"speed-up : {base_s / pipe_s:.2f}x (pipeline groups/s / baseline groups/s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
