"""``relight eval``: relight every held-out pair of a dataset and measure it against the render.

For each ordered pair (i, j) of the chosen split (``relight.data.iter_pairs``:
deterministic, in shard order) the model relights render i under lighting j's
env map; the prediction is compared with render j. Metrics: masked and
full-frame PSNR and SSIM (:mod:`relight.metrics`), and, when local weights
are given, LPIPS (masked and full) and the identity embedding distance
(:mod:`relight.eval_nets`). The same metrics are computed for two non-learned
baselines (:mod:`relight.baselines`): *copy input* (render i itself, unmasked,
as the prediction) and *colour transfer* (render i scaled per channel in
linear light by the ratio of lighting j's mean camera-facing irradiance to
lighting i's, both from the groups' ``env_XX.exr``). All three are scored
with the same masked and full-frame metrics against render j. A model that
does not beat both baselines has not learnt to relight.

Writes under ``OUT/``: ``metrics.md`` and ``metrics.csv`` (overall and per
target HDRI, model and both baselines), ``pairs.csv`` (one row per pair and
method), ``grid.png`` (input | env | target | colour transfer | prediction for the first pairs)
and ``summary.json``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from relight import baselines, direction
from relight import metrics as metrics_mod
from relight import plots
from relight.infer import Settings, has_text, load_pipeline, model_input
from relight.inputs import InputError, model_geometry
from relight.shard_safety import ReadPolicy
from synthgen.format import shard as shard_format

MODEL, COPY, COLOUR = "model", "copy input (baseline)", "colour transfer (baseline)"
METHODS = (MODEL, COPY, COLOUR)
BASE_COLUMNS = ["psnr_masked", "psnr", "ssim_masked", "ssim", "side_corr"]
HEADERS = {"psnr_masked": "PSNR masked (dB)", "psnr": "PSNR (dB)", "ssim_masked": "SSIM masked", "ssim": "SSIM",
           "lpips_masked": "LPIPS masked", "lpips": "LPIPS", "identity": "identity dist.",
           "side_corr": "left/right agreement"}


@dataclass
class EvalOptions:
    split: str = "test"
    pairs: str | int = "all"
    batch_size: int = 8
    seeds: int = 1  # sampling seeds settings.seed, +1, ...: the model's table is the mean and spread over them
    grid_rows: int = 8
    size: int | None = None
    device: str = "auto"
    lpips_weights: str | None = None
    identity_weights: str | None = None
    identity_arch: str | None = None
    identity_size: int = 160
    read: ReadPolicy = ReadPolicy()  # remote/pipe/compressed opt-ins and size limits for the shards


def hdri_names(source) -> dict[str, str]:
    """HDRI asset id -> file stem, from the dataset folder's plan.parquet (empty when there is none)."""
    if not isinstance(source, str) or not os.path.isdir(source):
        return {}
    plan = os.path.join(source, "plan.parquet")
    if not os.path.isfile(plan):
        return {}
    import pyarrow.parquet as pq

    names = {}
    for lightings in pq.read_table(plan, columns=["lightings"]).column("lightings").to_pylist():
        for lt in lightings:
            names[lt["hdri_asset_id"]] = shard_format.hdri_name(lt) or lt["hdri_asset_id"]
    return names


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else math.nan


def evaluate(model_dir: str, shards, out_dir: str, settings: Settings = Settings(),
             opts: EvalOptions = EvalOptions(), progress: bool = True) -> dict:
    """Run the evaluation; returns the summary (also written to ``OUT/summary.json``)."""
    from relight import data as data_mod
    from relight.eval_nets import load_identity, load_lpips

    settings.check()
    pipe = load_pipeline(model_dir, settings.scheduler, opts.device)
    settings = settings.resolved(pipe)
    device = pipe.device
    geo = model_geometry(model_dir, pipe, opts.size)
    text = has_text(pipe)
    lpips = load_lpips(opts.lpips_weights, device) if opts.lpips_weights else None
    ident = (load_identity(opts.identity_weights, opts.identity_arch, opts.identity_size, device)
             if opts.identity_weights else None)
    # mask_input off: the loader returns the raw render, so the baseline copies it unmasked;
    # the model still gets the masked input it was trained on (model_input)
    dcfg = data_mod.DataConfig(resolution=geo.resolution, env_size=geo.env_size, env_hdr=geo.env_hdr,
                               env_hdr_max=geo.env_hdr_max, mask_input=False, captions=text, shuffle_buffer=0,
                               resampled=False, **dataclasses.asdict(opts.read))
    names = hdri_names(shards)
    irradiance = baselines.group_irradiance(
        data_mod.resolve_shards(shards, opts.split, opts.read.allow_remote, opts.read.allow_pipe), opts.read)
    os.makedirs(out_dir, exist_ok=True)
    rows: list[dict] = []
    grid: dict[str, list[torch.Tensor]] = defaultdict(list)
    grid_labels: list[str] = []
    t0 = time.perf_counter()
    n_batches = 0
    for batch in data_mod.iter_pairs(shards, opts.split, dcfg, pairs=opts.pairs, batch_size=opts.batch_size):
        inp, target, mask = batch["input"], batch["target"], batch["mask"]
        cond = torch.stack([model_input(x, m, geo) for x, m in zip(inp, mask)])
        preds = []
        for k in range(opts.seeds):
            gen = torch.Generator().manual_seed((settings.seed + k) * 1_000_003 + n_batches)
            preds.append(pipe(cond, batch["env"], batch.get("env_hdr"),
                              prompt=(settings.prompt or list(batch["caption"])) if text else None,
                              num_inference_steps=settings.steps, image_guidance_scale=settings.image_guidance,
                              guidance_scale=settings.text_guidance, generator=gen,
                              batched_branches=settings.batched_branches).cpu())
        pred = preds[0]
        n_batches += 1
        ratio = [baselines.irradiance_ratio(irradiance[m["group_key"]][m["i"]], irradiance[m["group_key"]][m["j"]])
                 for m in batch["meta"]]
        # scaled from the raw render like copy input: masking it first would darken the soft mask
        # edge that the masked metrics still weigh (1.6 dB worse on 64 px Blender renders)
        transfer = baselines.colour_transfer(inp, np.stack(ratio))
        runs = [(MODEL, settings.seed + k, p) for k, p in enumerate(preds)] + [(COPY, None, inp), (COLOUR, None, transfer)]
        side_target = direction.side_balance(target, mask).tolist()
        for method, seed, out in runs:
            m = {k: v.tolist() for k, v in metrics_mod.all_metrics(out, target, mask).items()}
            m["side"] = direction.side_balance(out, mask).tolist()
            m["side_target"] = side_target
            if lpips is not None:
                m["lpips"] = lpips(out.to(device), target.to(device)).cpu().tolist()
                m["lpips_masked"] = lpips(out.to(device), target.to(device), mask.to(device)).cpu().tolist()
            if ident is not None:
                m["identity"] = ident(out.to(device), target.to(device)).cpu().tolist()
            for b, meta in enumerate(batch["meta"]):
                hid = meta.get("hdri_out") or "?"
                rows.append({"key": batch["key"][b], "method": method, "seed": seed, "hdri": names.get(hid, hid),
                             "hdri_id": hid, "rotation_deg": meta.get("rotation_out"),
                             **{k: v[b] for k, v in m.items()}})
        room = opts.grid_rows - len(grid_labels)
        if room > 0:
            for name, x in (("input", inp), ("env (target)", batch["env"]), ("target", target),
                            ("colour transfer", transfer), ("prediction", pred)):
                grid[name].append(x[:room])
            model_psnr = metrics_mod.masked_psnr(pred[:room], target[:room], mask[:room]).tolist()
            grid_labels += [f"{p:.1f} dB" for p in model_psnr]
        if progress:
            print(f"\reval: {len(rows) // (len(METHODS) + opts.seeds - 1)} pairs, {time.perf_counter() - t0:.0f} s", end="", flush=True)
    if progress:
        print()
    if not rows:
        raise InputError(f"--shards {shards}: split {opts.split!r} yielded no pairs")
    wall = time.perf_counter() - t0
    columns = BASE_COLUMNS + (["lpips_masked", "lpips"] if lpips else []) + (["identity"] if ident else [])
    table = _table(rows, columns, opts.seeds)
    paths = {
        "pairs_csv": _write_csv(os.path.join(out_dir, "pairs.csv"), rows,
                                ["key", "method", "seed", "hdri", "hdri_id", "rotation_deg",
                                 *[c for c in columns if c != "side_corr"], "side", "side_target"]),
        "metrics_csv": _write_csv(os.path.join(out_dir, "metrics.csv"), table,
                                  ["method", "hdri", "pairs", "seeds", *[x for c in columns for x in (c, c + "_sd")]]),
        "grid": plots.image_grid({k: torch.cat(v) for k, v in grid.items()}, os.path.join(out_dir, "grid.png"),
                                 labels=grid_labels),
    }
    n_pairs = len(rows) // (len(METHODS) + opts.seeds - 1)
    info = {"model": os.path.abspath(model_dir), "shards": shards if isinstance(shards, str) else list(shards),
            "split": opts.split, "pairs": n_pairs, "resolution": geo.resolution, "env_size": list(geo.env_size),
            "sizes_from": geo.source, "steps": settings.steps, "scheduler": settings.scheduler,
            "image_guidance": settings.image_guidance,
            "text_guidance": settings.text_guidance if text else None, "text": text, "seed": settings.seed,
            "seeds": [settings.seed + k for k in range(opts.seeds)],
            "lpips": f"LPIPS v0.1 {lpips.net}" if lpips is not None else None, "identity": ident is not None,
            "wall_s": wall, "s_per_pair": wall / n_pairs, "device": str(device)}
    paths["metrics_md"] = _write_markdown(os.path.join(out_dir, "metrics.md"), table, columns, info)
    overall = {r["method"]: {x: r[x] for c in columns for x in (c, c + "_sd")} for r in table if r["hdri"] == "all"}
    summary = {**info, "overall": overall, "files": paths}
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def _table(rows: list[dict], columns: list[str], seeds: int = 1) -> list[dict]:
    """Means per method: over all pairs, then per target HDRI (sorted by name).

    ``<metric>_sd`` is the spread over sampling seeds: the standard deviation (ddof 0) of the per-seed
    means; 0 for the deterministic baselines and for one seed.
    """
    out = []
    groups = [("all", rows)] + [(h, [r for r in rows if r["hdri"] == h]) for h in sorted({r["hdri"] for r in rows})]
    for hdri, rs in groups:
        for method in METHODS:
            sel = [r for r in rs if r["method"] == method]
            by_seed: dict = defaultdict(list)
            for r in sel:
                by_seed[r.get("seed")].append(r)
            row = {"method": method, "hdri": hdri, "pairs": len(sel) // len(by_seed) if by_seed else 0,
                   "seeds": len(by_seed) if method == MODEL else ""}
            for c in columns:
                if c == "side_corr":  # per seed: does the prediction's bright side follow the target render's?
                    per_seed = [direction.correlation([r["side"] for r in rs_], [r["side_target"] for r in rs_])
                                for rs_ in by_seed.values()]
                else:
                    per_seed = [_mean([r[c] for r in rs_]) for rs_ in by_seed.values()]
                row[c] = _mean(per_seed)
                row[c + "_sd"] = float(np.std(per_seed)) if per_seed else math.nan
            out.append(row)
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return "" if v is None else str(v)


def _cell(row: dict, column: str, spread: bool) -> str:
    return f"{_fmt(row[column])} ± {_fmt(row[column + '_sd'])}" if spread else _fmt(row[column])


def _write_csv(path: str, rows: list[dict], fields: list[str]) -> str:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r.get(k)) for k in fields})
    return path


def _write_markdown(path: str, table: list[dict], columns: list[str], info: dict) -> str:
    head = ["method", "target HDRI", "pairs"] + [HEADERS[c] for c in columns]
    lines = [f"# relight eval: {info['split']} split, {info['pairs']} pairs", "",
             f"Model `{info['model']}`, {info['resolution']} px, {info['steps']} {info['scheduler']} steps, "
             f"image guidance {info['image_guidance']:g}"
             + (f", text guidance {info['text_guidance']:g}" if info["text"] else " (no text condition)")
             + (f", seeds {', '.join(map(str, info['seeds']))} (model: mean ± standard deviation over seeds)"
                if len(info["seeds"]) > 1 else f", seed {info['seed']}")
             + f"; {info['wall_s']:.1f} s on {info['device']}.",
             "Higher is better for PSNR/SSIM, lower for LPIPS and identity distance. "
             "Baselines: *copy input* is the input render unchanged; *colour transfer* scales the "
             "input render per channel, in linear light, by the target lighting's mean camera-facing "
             "irradiance over the input lighting's (relight/baselines.py). *Left/right agreement* is the "
             "correlation, over the pairs, of the prediction's right-minus-left face brightness with the "
             "target render's (relight/direction.py): 1 when the light falls on the same side as in the "
             "render.", "",
             "| metric (all pairs) | " + " | ".join(METHODS) + " |", "|" + "---|" * (len(METHODS) + 1)]
    overall = {r["method"]: r for r in table if r["hdri"] == "all"}
    for c in columns:
        lines.append(f"| {HEADERS[c]} | " + " | ".join(_cell(overall[m], c, m == MODEL and len(info["seeds"]) > 1)
                                                      for m in METHODS) + " |")
    lines += ["", "Per target HDRI:", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        bold = r["hdri"] == "all"
        cells = [r["method"], "**all**" if bold else r["hdri"], str(r["pairs"])] + [
            _cell(r, c, r["method"] == MODEL and len(info["seeds"]) > 1) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
