"""Render speed of two checkouts (e.g. Blender 5.0 vs 5.2), alternating on the same job and catalog.

Each checkout renders with its own venv (`CHECKOUT/.venv/bin/python -m
synthgen.cli render JOB --local`), so a pre-migration commit in a git worktree
runs on its own Blender and numpy. The driver alternates the order every
round (A B, B A, A B, ...) so that slow drift on the machine falls on both,
and reports per checkout the median over rounds of:

- wall seconds for the job and groups/s,
- seconds per image inside Cycles' render call (from render_stats.parquet),

and the ratios against the first checkout. Both checkouts read the same
catalog file; build it with either one (`synthgen assets builtin`).

    git worktree add /tmp/old50 <pre-migration commit>   # plus its own .venv
    .venv/bin/python benchmarks/blender_versions.py --catalog out/catalog/manifest.parquet \\
        --checkout 5.0.1=/tmp/old50 --checkout 5.2.3=. --rounds 3 \\
        --set splits.train=8 --set render.resolution=128 --set render.samples=16
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def render_once(checkout: str, job: str, catalog: str, sets: list[str], out: str) -> dict:
    py = os.path.join(checkout, ".venv", "bin", "python")
    args = [a for s in [f'job.catalogs=["{catalog}"]', 'job.id="bench"', *sets] for a in ("--set", s)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    t = time.perf_counter()
    r = subprocess.run([py, "-m", "synthgen.cli", "render", job, "--local", "--out", out, "-q", *args],
                       cwd=checkout, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode or "failed 0" not in r.stdout:
        sys.exit(f"{checkout}: synthgen render failed:\n{r.stdout[-1500:]}\n{r.stderr[-2500:]}")
    stats = pq.read_table(os.path.join(out, "render_stats.parquet")).to_pylist()
    images = sum(len(s["render_s"]) for s in stats)
    in_render = sum(s["render_s_total"] for s in stats)
    return {"wall_s": wall, "groups": len(stats), "images": images, "cycles_s_per_image": in_render / max(images, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkout", action="append", required=True, help="LABEL=PATH (a checkout with .venv/)")
    ap.add_argument("--catalog", required=True, help="manifest.parquet both checkouts render from")
    ap.add_argument("--job", default="jobs/quickstart.toml", help="job file, relative to each checkout")
    ap.add_argument("--set", action="append", default=[], help="job override, passed to both")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    checkouts = [(c.partition("=")[0], os.path.abspath(c.partition("=")[2])) for c in args.checkout]
    catalog = os.path.abspath(args.catalog)
    work = tempfile.mkdtemp(prefix="synthgen-versions-")
    runs: dict[str, list[dict]] = {label: [] for label, _ in checkouts}
    try:
        for rnd in range(args.rounds):
            order = checkouts if rnd % 2 == 0 else checkouts[::-1]
            for label, path in order:
                out = os.path.join(work, f"{label}-{rnd}")
                r = render_once(path, args.job, catalog, args.set, out)
                shutil.rmtree(out, ignore_errors=True)
                runs[label].append(r)
                print(f"round {rnd + 1} {label:>8}: {r['wall_s']:7.1f} s wall, {r['groups']} groups, "
                      f"{r['images']} images, {r['cycles_s_per_image']:.3f} s/image in Cycles", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\njob {args.job} with {' '.join(args.set) or 'no overrides'}; medians of {args.rounds} rounds")
    print(f"{'checkout':>10} {'wall s':>8} {'groups/s':>9} {'s/image in Cycles':>18} {'wall vs first':>14} "
          f"{'Cycles vs first':>16}")
    base = None
    for label, _ in checkouts:
        wall = statistics.median(r["wall_s"] for r in runs[label])
        cyc = statistics.median(r["cycles_s_per_image"] for r in runs[label])
        groups = runs[label][0]["groups"]
        base = base or (wall, cyc)
        print(f"{label:>10} {wall:8.1f} {groups / wall:9.3f} {cyc:18.3f} {base[0] / wall:13.2f}x {base[1] / cyc:15.2f}x")
    print("(ratios > 1: faster than the first checkout)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
