"""What each change to the tiny relighting model bought, on one fixed held-out set, with the same commands.

Every variant is ``jobs/relight_tiny.toml`` plus a few ``--set`` overrides,
trained from scratch on the same dataset for the same steps with
``relight train``, then scored with ``relight eval --seeds 3`` on the test
split (the quickstart's: 8 groups of test heads under test HDRIs, 240 ordered
pairs at 48 px). Printed side by side with the two non-learned baselines that
eval computes on the same pairs:

* masked PSNR and SSIM (model: mean ± sd over the 3 sampling seeds), their
  gains over copy-input and colour transfer, and the left/right agreement;
* seconds of training (wall clock of ``relight train``, kept in ``OUT/NAME/bench.json``; the
  machine's load average when it started is printed, since a busy machine stretches it) and
  seconds per evaluated pair.

Variants (``--variants`` picks some):

* ``paper``: SynthLight's objective on the same tiny UNet: epsilon prediction of
  the image at every noise level, no gain head, no env vector, plain MSE,
  sampled in 20 DDIM steps with image guidance 3 (the paper's l_I);
* ``paper-x0``: the same with x0 ("sample") prediction, the old demo objective;
* ``no-terminal``: the demo config trained at every noise level and sampled in
  10 DDIM steps (``model.timesteps = "uniform"``);
* ``no-ratio``: the demo config predicting the image instead of a gain;
* ``no-env-vector``: the demo config without the pooled env in the blocks;
* ``demo``: ``jobs/relight_tiny.toml`` as it is (what ``make demo`` trains).

    python benchmarks/relight_quality.py --shards out/quickstart [--steps 600] [--variants demo,paper]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "jobs", "relight_tiny.toml")
PAPER = ["model.output='image'", "model.env_vector=false", "model.timesteps='uniform'",
         "train.background_weight=1.0"]
VARIANTS = {
    "paper": (PAPER + ["model.prediction_type='epsilon'", "train.val_steps=20", "train.image_guidance=3.0"],
              "epsilon, every t, image, 20 steps, l_I 3"),
    "paper-x0": (PAPER + ["train.val_steps=20", "train.image_guidance=3.0"],
                 "x0, every t, image, 20 steps, l_I 3"),
    "no-terminal": (["model.timesteps='uniform'", "train.val_steps=10"], "gain, env vector, every t, 10 steps"),
    "no-ratio": (["model.output='image'"], "x0 image, env vector, one step"),
    "no-env-vector": (["model.env_vector=false"], "gain, one step, env only as image"),
    "demo": ([], "gain, env vector, one step (jobs/relight_tiny.toml)"),
}


def _relight(*args: str) -> None:
    # the progress bars go to stderr; a failure shows its one-line error there too
    subprocess.run([sys.executable, "-m", "relight.cli", *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def run_variant(name: str, shards: str, out: str, steps: int, seeds: int, eval_only: bool = False) -> dict:
    overrides, what = VARIANTS[name]
    run_dir, eval_dir = os.path.join(out, name), os.path.join(out, name + "-eval")
    sets = [x for o in overrides + [f"train.max_steps={steps}", "train.validate_every=0"] for x in ("--set", o)]
    info_path = os.path.join(run_dir, "bench.json")
    if not (eval_only and os.path.isfile(info_path)):
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        _relight("train", "--shards", shards, "--out", run_dir, "--config", TINY, *sets)
        with open(info_path, "w") as f:
            json.dump({"train_s": time.perf_counter() - t0, "load": load}, f)
    with open(info_path) as f:
        info = json.load(f)
    train_s, load = info["train_s"], info["load"]
    _relight("eval", "--model", os.path.join(run_dir, "model"), "--shards", shards, "--out", eval_dir,
             "--seeds", str(seeds), "-q")
    with open(os.path.join(eval_dir, "summary.json")) as f:
        summary = json.load(f)
    return {"name": name, "what": what, "train_s": train_s, "load": load, "summary": summary}


def _row(label: str, o: dict, base: dict, colour: dict, extra: str, sd: bool) -> str:
    p, s = o["psnr_masked"], o["ssim_masked"]
    pm = f"{p:.2f} ± {o['psnr_masked_sd']:.2f}" if sd else f"{p:.2f}"
    sm = f"{s:.3f} ± {o['ssim_masked_sd']:.3f}" if sd else f"{s:.3f}"
    return (f"| {label} | {pm} | {p - base['psnr_masked']:+.2f} | {p - colour['psnr_masked']:+.2f} | {sm} | "
            f"{o['side_corr']:.2f} | {extra} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", required=True, help="a dataset folder with train and test splits (make demo's)")
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "bench-relight-quality"))
    ap.add_argument("--steps", type=int, default=600, help="training steps of every variant (default 600)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--eval-only", action="store_true",
                    help="re-evaluate the variants already trained under --out (after a change to eval)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of: " + ", ".join(VARIANTS))
    args = ap.parse_args()
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    results = []
    for name in names:
        print(f"{name}: training {args.steps} steps and evaluating ...", file=sys.stderr, flush=True)
        results.append(run_variant(name, args.shards, args.out, args.steps, args.seeds, args.eval_only))
    first = results[0]["summary"]
    base, colour = first["overall"]["copy input (baseline)"], first["overall"]["colour transfer (baseline)"]
    print(f"\n{first['split']} split of {args.shards}: {first['pairs']} pairs at {first['resolution']} px; "
          f"model rows: mean ± sd over {args.seeds} sampling seeds; {args.steps} training steps each\n")
    print("| variant | masked PSNR (dB) | vs copy | vs colour transfer | masked SSIM | left/right agreement | "
          "objective; train s (load); eval s/pair |")
    print("|---|---|---|---|---|---|---|")
    print(_row("copy input (baseline)", base, base, colour, "", False))
    print(_row("colour transfer (baseline)", colour, base, colour, "", False))
    for r in results:
        s = r["summary"]
        print(_row(r["name"], s["overall"]["model"], base, colour,
                   f"{r['what']}; {r['train_s']:.0f} s (load {r['load']:.1f}); {s['s_per_pair']:.3f}", True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
