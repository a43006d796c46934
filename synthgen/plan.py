"""Plan a job: one row per group, a pure function of (job, catalogs, seed).

Group ``g`` draws everything from ``numpy.random.default_rng(SeedSequence([seed, g]))``:
its head, camera, background and K lightings (HDRI, azimuth rotation,
exposure, white balance, Cycles seed). No global RNG, no dependence on
worker count or order, so a plan is the same wherever it is computed and
any shard can be re-rendered from its rows alone.

Group indices run over the splits in order (train, val, test); each split
draws its heads and HDRIs only from the catalog assets of the same split.

Rows name assets by ``asset_id`` and the catalog's ``name``, never by path:
the plan is the same wherever the catalogs live (the renderer finds the
files with :mod:`synthgen.locate`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assets_manifest import hair
from assets_manifest.procedural_hdri import cct_to_rgb
from assets_manifest.schema import read_rows
from synthgen.format import atomic, shard as shard_format
from synthgen.job import Job, JobError

SPLIT_ORDER = ("train", "val", "test")
PLAN_VERSION = "synthgen-plan/3"  # /1 had absolute asset paths (head_uri, hdri_uri); /2 had no hair column

LIGHTING_TYPE = pa.struct([
    ("hdri_asset_id", pa.string()),
    ("hdri_name", pa.string()),  # the catalog's name (file stem), for people and captions
    ("rotation_deg", pa.float64()),
    ("exposure", pa.float64()),
    ("white_balance_kelvin", pa.float64()),
    ("white_balance_rgb", pa.list_(pa.float64())),
    ("cycles_seed", pa.int64()),
])

PLAN_SCHEMA = pa.schema([
    ("group_index", pa.int64()),
    ("key", pa.string()),
    ("split", pa.string()),
    ("shard", pa.string()),
    ("job_seed", pa.int64()),
    ("head_asset_id", pa.string()),
    ("head_name", pa.string()),
    ("head_sha256", pa.string()),
    ("head_params", pa.string()),  # generator parameters (JSON) for procedural heads
    ("focal_mm", pa.float64()),
    ("sensor_mm", pa.float64()),
    ("framing", pa.float64()),
    ("yaw_deg", pa.float64()),
    ("pitch_deg", pa.float64()),
    ("roll_deg", pa.float64()),
    ("background", pa.string()),
    ("background_rgb", pa.list_(pa.float64())),
    ("lightings", pa.list_(LIGHTING_TYPE)),
    # the head's hair spec resolved by the job's [hair] section (assets_manifest.hair.resolve), JSON; null: none
    ("hair", pa.string()),
], metadata={b"plan_version": PLAN_VERSION.encode()})


@dataclass(frozen=True)
class Assets:
    heads: dict[str, list[dict[str, Any]]]  # split -> rows, sorted by asset_id
    hdris: dict[str, list[dict[str, Any]]]


def load_assets(catalogs: list[str]) -> Assets:
    heads: dict[str, dict[str, dict]] = {s: {} for s in SPLIT_ORDER}
    hdris: dict[str, dict[str, dict]] = {s: {} for s in SPLIT_ORDER}
    for manifest in catalogs:
        for row in read_rows(manifest):
            if row["split"] not in SPLIT_ORDER:
                continue
            (heads if row["kind"] == "head" else hdris)[row["split"]][row["asset_id"]] = row
    return Assets(
        heads={s: [v[k] for k in sorted(v)] for s, v in heads.items()},
        hdris={s: [v[k] for k in sorted(v)] for s, v in hdris.items()},
    )


def white_balance_gains(kelvin: float) -> list[float]:
    """Camera white balance at ``kelvin`` as RGB gains on the scene, unit luminance (6504 K = neutral)."""
    g = cct_to_rgb(6504.0) / cct_to_rgb(kelvin)
    g = g / float(g @ np.array([0.2126, 0.7152, 0.0722]))
    return [float(x) for x in g]


def _lightings(rng: np.random.Generator, job: Job, hdris: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lit = job.lighting
    n = lit.hdris_per_group
    # distinct maps while there are enough, then another shuffled round (make_plan refuses a split of
    # one HDRI when n > 1: every lighting would reuse it)
    picks = np.concatenate([rng.permutation(len(hdris)) for _ in range(-(-n // len(hdris)))])[:n]
    out = []
    for idx in picks:
        hdri = hdris[int(idx)]
        base = 1.0
        if lit.normalize_exposure:
            base = lit.target_mean_luminance / max(hdri["hdri"]["mean_luminance"], 1e-6)
        start = rng.uniform(0.0, 360.0)
        for r in range(lit.rotations_per_hdri):
            if lit.rotation == "even":
                rotation = (start + 360.0 * r / lit.rotations_per_hdri) % 360.0
            else:
                rotation = rng.uniform(0.0, 360.0) if r else start
            kelvin = rng.uniform(*lit.white_balance_kelvin)
            out.append({
                "hdri_asset_id": hdri["asset_id"],
                "hdri_name": hdri["name"],
                "rotation_deg": float(rotation),
                "exposure": float(base * 2.0 ** rng.uniform(*lit.exposure_ev)),
                "white_balance_kelvin": float(kelvin),
                "white_balance_rgb": white_balance_gains(kelvin),
                "cycles_seed": int(rng.integers(0, 2**31 - 1)),
            })
    return out


def plan_group(job: Job, assets: Assets, split: str, group_index: int, shard: str) -> dict[str, Any]:
    rng = np.random.default_rng(np.random.SeedSequence([job.job.seed, group_index]))
    heads, hdris = assets.heads[split], assets.hdris[split]
    head = heads[int(rng.integers(len(heads)))]
    cam = job.camera
    bg = job.background
    weights = np.asarray(bg.weights, dtype=np.float64)
    mode = bg.modes[int(rng.choice(len(bg.modes), p=weights / weights.sum()))]
    bg_rgb = [float(x) for x in rng.uniform(0.05, 0.8, size=3)] if mode == "solid" else [0.0, 0.0, 0.0]
    return {
        "group_index": group_index,
        "key": shard_format.sample_key(job.job.id, group_index),
        "split": split,
        "shard": shard,
        "job_seed": job.job.seed,
        "head_asset_id": head["asset_id"],
        "head_name": head["name"],
        "head_sha256": head["sha256"],
        "head_params": (head.get("head") or {}).get("generator_params"),
        "focal_mm": float(rng.uniform(*cam.focal_mm)),
        "sensor_mm": float(cam.sensor_mm),
        "framing": float(rng.uniform(*cam.framing)),
        "yaw_deg": float(rng.uniform(*cam.yaw_deg)),
        "pitch_deg": float(rng.uniform(*cam.pitch_deg)),
        "roll_deg": float(rng.uniform(*cam.roll_deg)),
        "background": mode,
        "background_rgb": bg_rgb,
        "lightings": _lightings(rng, job, hdris),
        "hair": hair_json(head, job),
    }


def hair_json(head: dict[str, Any], job: Job) -> str | None:
    """The group's resolved hair spec as JSON (sorted keys), or None: hair off, or a head without a spec."""
    raw = (head.get("head") or {}).get("generator_params")
    try:
        gp = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        gp = {}
    spec = gp.get("hair") if isinstance(gp, dict) else None
    resolved = hair.resolve(spec if isinstance(spec, dict) else None, job.hair)
    return None if resolved is None else json.dumps(resolved, sort_keys=True)


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}"


def make_plan(job: Job, assets: Assets | None = None) -> pa.Table:
    assets = assets or load_assets(job.job.catalogs)
    rows, g = [], 0
    for split in SPLIT_ORDER:
        n = getattr(job.splits, split)
        if n == 0:
            continue
        for kind, pool in (("head", assets.heads[split]), ("HDRI", assets.hdris[split])):
            if not pool:
                raise JobError(f"{job.source}: splits.{split} = {n} but the catalogs "
                               f"({', '.join(job.job.catalogs)}) have no {split} {kind}s")
        k = job.lighting.hdris_per_group
        if k > 1 and len(assets.hdris[split]) == 1:  # every lighting of every group would use the same map
            raise JobError(f"{job.source}: lighting.hdris_per_group = {k} but the catalogs "
                           f"({', '.join(job.job.catalogs)}) have 1 {split} HDRI; add {split} HDRIs "
                           "or set lighting.hdris_per_group = 1")
        for i in range(n):
            rows.append(plan_group(job, assets, split, g, shard_name(split, i // job.job.shard_size)))
            g += 1
    return pa.Table.from_pylist(rows, schema=PLAN_SCHEMA)


def write_plan(table: pa.Table, job: Job, path: str) -> str:
    meta = dict(table.schema.metadata or {})
    d = job.to_dict()
    # where the catalogs are is no part of the plan (its rows name assets by id): the same job with
    # its catalogs elsewhere writes the same plan.parquet
    d["job"].pop("catalogs")
    meta[b"job"] = json.dumps(d, sort_keys=True).encode()
    table = table.replace_schema_metadata(meta)
    return atomic.write_parquet(path, table)


def read_plan(path: str) -> pa.Table:
    table = pq.read_table(path)
    version = (table.schema.metadata or {}).get(b"plan_version", b"").decode()
    if version != PLAN_VERSION:
        raise JobError(f"{path}: plan_version {version or 'missing'!r}, this synthgen reads {PLAN_VERSION!r} "
                       "(an older synthgen's plan, its shards in an older format); use a new --out or delete "
                       "the folder")
    return table


def shards_of(plan: pa.Table) -> dict[str, list[dict[str, Any]]]:
    """Shard name -> its groups, in plan order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in plan.to_pylist():
        out.setdefault(row["shard"], []).append(row)
    return out
