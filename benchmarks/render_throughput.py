"""Render throughput: the synthgen pipeline against a naive per-group baseline, same job, same machine.

Baseline (what Objaverse-style scripts do): one fresh Python process per
group that imports bpy, builds the scene, renders the group's K lightings by
turning the world (rotation, exposure and white balance in the world shader)
and writes PNGs with Blender's own writer. No persistent data, no reuse. It
uses the pipeline's Cycles settings (samples, bounces, denoising, passes). By
default it runs twice: with Blender's default world sampling (what such
scripts leave on: a 4096 px importance map rebuilt for every lighting) and
with the pipeline's, so the two ratios show how much of the speed-up comes
from that setting and how much from the pipeline's structure.

Pipeline: ``synthgen render --local`` in one process (one Blender session,
scene built once per group, persistent data, shards written through
webdataset), or with ``--workers N`` the Ray farm as ``synthgen render
--workers N`` runs it (N Blender workers, cores shared between them; wall time
includes starting Ray).

Prints groups/s for both, the ratio, and the share of the pipeline's wall
time spent inside Cycles' render call (the rest is overhead: import, scene
changes, encoding, shard writing; with workers, summed over workers).

    .venv/bin/python benchmarks/render_throughput.py --catalog out/catalog/manifest.parquet \
        --groups 6 --resolution 128 --samples 16 [--workers 2]
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
row, render_cfg, out, world_mode = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
r = S.GroupRenderer(render_cfg, tmp_dir=out)
sc = r.scene
sc.render.image_settings.media_type = "IMAGE"
sc.render.image_settings.file_format = "PNG"
# the naive world: the map turned by a mapping node, white balance multiplied in the shader
w = r.world
nt = w["world"].node_tree
mapping = nt.nodes.new("ShaderNodeMapping")
mix = nt.nodes.new("ShaderNodeMix")
mix.data_type, mix.blend_type = "RGBA", "MULTIPLY"
mix.inputs["Factor"].default_value = 1.0
nt.links.new(w["coord"].outputs["Generated"], mapping.inputs["Vector"])
nt.links.new(mapping.outputs["Vector"], w["env"].inputs["Vector"])
nt.links.new(w["env"].outputs["Color"], mix.inputs[6])
nt.links.new(mix.outputs[2], w["background"].inputs["Color"])
if world_mode == "automatic":
    w["world"].cycles.sampling_method = "AUTOMATIC"
r.load_group(row)
render_s = 0.0
for i, lt in enumerate(row["lightings"]):
    image = r._image(lt["hdri_path"])
    w["env"].image = image
    if world_mode == "same":
        w["world"].cycles.sample_map_resolution = S.world_map_resolution(image.size[0],
                                                                         render_cfg["world_map_resolution"])
    mapping.inputs["Rotation"].default_value = (0.0, 0.0, math.radians(scene_turn_deg(lt["rotation_deg"])))
    mix.inputs[7].default_value = (*lt["white_balance_rgb"], 1.0)
    w["background"].inputs["Strength"].default_value = lt["exposure"]
    sc.cycles.seed = lt["cycles_seed"]
    sc.render.filepath = os.path.join(out, f"{row['key']}_{i:02d}.png")
    t = time.perf_counter()
    bpy.ops.render.render(write_still=True)
    render_s += time.perf_counter() - t
print("JSON" + json.dumps({"render_s": render_s, "process_s": time.perf_counter() - t0}))
"""


def run_pipeline(job, job_path: str, out: str, workers: int, overrides: list[str]) -> float:
    """Seconds for the pipeline to render ``job`` into ``out`` (in-process, or the Ray farm via the CLI)."""
    if not workers:
        from synthgen import runner

        t = time.perf_counter()
        summary = runner.run_local(job, out, overwrite=True, progress=False)
        assert summary["failed"] == 0, "benchmark groups failed; see failures.parquet"
        return time.perf_counter() - t
    sets = [a for o in overrides for a in ("--set", o)]
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", "render", job_path, "--out", out, "-q",
                        "--workers", str(workers), *sets], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    if r.returncode or "failed 0" not in r.stdout:
        raise SystemExit(f"synthgen render failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", default=os.path.join(ROOT, "out", "catalog", "manifest.parquet"))
    ap.add_argument("--job", default=os.path.join(ROOT, "jobs", "quickstart.toml"))
    ap.add_argument("--groups", type=int, default=6)
    ap.add_argument("--hdris", type=int, default=2, help="HDR maps per group (default 2, as quickstart)")
    ap.add_argument("--rotations", type=int, default=2, help="rotations per map (default 2; the paper uses 36)")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--workers", type=int, default=0,
                    help="0: the pipeline in this process (--local); N: the Ray farm with N workers")
    ap.add_argument("--baseline-world", choices=("both", "automatic", "same"), default="both",
                    help="baseline's world importance map: Blender's 'Automatic' (4096 px whatever the map), as "
                         "naive scripts leave it; the pipeline's resolution; or both, one after the other "
                         "(default)")
    ap.add_argument("--skip-baseline", action="store_true", help="only the pipeline (for the in-render share)")
    args = ap.parse_args()

    from synthgen import job as jobs
    from synthgen import plan
    from synthgen.locate import AssetPaths

    overrides = [f'job.catalogs=["{os.path.abspath(args.catalog)}"]', f"splits.train={args.groups}",
                 "splits.val=0", "splits.test=0", f"lighting.hdris_per_group={args.hdris}", f"lighting.rotations_per_hdri={args.rotations}",
                 f"render.resolution={args.resolution}", f"render.samples={args.samples}",
                 # with workers, shards of one group, so that the workers share the job
                 f"job.shard_size={1 if args.workers else args.groups}", 'job.id="bench"']
    job = jobs.load(args.job, overrides)
    work = tempfile.mkdtemp(prefix="synthgen-bench-")
    try:
        pipe_s = run_pipeline(job, args.job, os.path.join(work, "pipeline"), args.workers, overrides)
        import pyarrow.parquet as pq

        stats = pq.read_table(os.path.join(work, "pipeline", "render_stats.parquet")).to_pylist()
        in_render = sum(s["render_s_total"] for s in stats)
        print(f"job: {args.groups} groups x {args.hdris} maps x {args.rotations} rotations, "
              f"{args.resolution}px, {args.samples} samples, world importance map "
              f"{job.render.world_map_resolution or '2x map width'}")
        how = f"Ray farm, {args.workers} workers" if args.workers else "one process"
        print(f"pipeline : {pipe_s:8.1f} s  {args.groups / pipe_s:.3f} groups/s  ({how}; "
              f"{100 * in_render / pipe_s / max(1, args.workers):.1f}% of wall time inside Cycles' render call)")
        if args.skip_baseline:
            return 0
        assets = AssetPaths.from_catalogs(job.job.catalogs)
        rows = [assets.locate(row) for row in plan.make_plan(job).to_pylist()]  # the files on this machine
        modes = ("automatic", "same") if args.baseline_world == "both" else (args.baseline_world,)
        for mode in modes:
            base_dir = os.path.join(work, f"baseline-{mode}")
            os.makedirs(base_dir)
            t = time.perf_counter()
            base_render = 0.0
            for row in rows:
                r = subprocess.run([sys.executable, "-c", BASELINE, json.dumps(row),
                                    json.dumps(job.to_dict()["render"]), base_dir, mode],
                                   capture_output=True, text=True, cwd=ROOT)
                if r.returncode:
                    print(r.stderr[-2000:], file=sys.stderr)
                    return 1
                base_render += json.loads(r.stdout.split("JSON", 1)[1])["render_s"]
            base_s = time.perf_counter() - t
            label = {"automatic": "Blender's default world sampling", "same": "the pipeline's world sampling"}[mode]
            print(f"baseline : {base_s:8.1f} s  {args.groups / base_s:.3f} groups/s  "
                  f"({100 * base_render / base_s:.1f}% inside render; {label})")
            print(f"speed-up : {base_s / pipe_s:.2f}x over the baseline with {label}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
