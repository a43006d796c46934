"""The files beside the shards, and ``synthgen inspect``.

``finalize`` writes, from the plan and the shards' completion records:
``dataset.json`` (job, counts, per split the brace pattern and each shard's
sha256/bytes/groups), ``index.parquet`` (one row per written group),
``<split>.wids.json`` (wids shard index), ``failures.parquet``,
``render_stats.parquet`` (timings; kept out of the samples so that two runs
of a job give identical samples and metadata) and ``preview.png``.
Everything but the timings is deterministic.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import tempfile
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from synthgen import shard_format, shards, storage
from synthgen.job import Job

SCHEMA_VERSION = "synthgen-dataset/1"
FAILURE_SCHEMA = pa.schema([
    ("group_index", pa.int64()), ("key", pa.string()), ("split", pa.string()), ("shard", pa.string()),
    ("head_asset_id", pa.string()), ("hdri_asset_ids", pa.list_(pa.string())), ("error", pa.string()),
    ("traceback", pa.string()),
])


def _brace(split: str, names: list[str]) -> str:
    idx = sorted(int(n.rsplit("-", 1)[1]) for n in names)
    if len(idx) == 1:
        return f"shards/{split}-{idx[0]:06d}.tar"
    return f"shards/{split}-{{{idx[0]:06d}..{idx[-1]:06d}}}.tar"


def _write_parquet(table: pa.Table, path: str) -> None:
    pq.write_table(table, path + ".tmp")
    os.replace(path + ".tmp", path)


def finalize(out_dir: str, job: Job, plan: pa.Table, results: dict[str, Any]) -> dict[str, Any]:
    rows = plan.to_pylist()
    failures = [f for r in results.values() for f in r.failures]
    failed_keys = {f["key"] for f in failures}
    written = [r for r in rows if r["key"] not in failed_keys]
    splits: dict[str, Any] = {}
    md5: dict[str, str] = {}
    for name in sorted(results):
        rec = results[name].record
        entry = splits.setdefault(rec.split, {"shards": [], "groups": 0})
        entry["shards"].append({"path": rec.path, "sha256": rec.sha256, "bytes": rec.bytes, "groups": rec.groups})
        entry["groups"] += rec.groups
        md5[rec.path] = rec.md5 or shards.file_digest(os.path.join(out_dir, rec.path), "md5")
    for split, entry in splits.items():
        entry["pattern"] = _brace(split, [os.path.basename(s["path"])[:-4] for s in entry["shards"]])
        wids = {
            "__kind__": "wids-shard-index-v1", "wids_version": 1, "name": f"{job.job.id}-{split}",
            "shardlist": [{"url": s["path"], "nsamples": s["groups"], "filesize": s["bytes"],
                           "md5sum": md5[s["path"]]} for s in entry["shards"]],
        }
        with open(os.path.join(out_dir, f"{split}.wids.json"), "w") as f:
            json.dump(wids, f, indent=1, sort_keys=True)
    counts = {"planned": len(rows), "written": len(written), "failed": len(failures),
              "lightings_per_group": job.lightings_per_group,
              "images": len(written) * job.lightings_per_group}
    assert counts["planned"] == counts["written"] + counts["failed"], counts
    meta = {"format": shard_format.FORMAT, "schema_version": SCHEMA_VERSION, "job": job.to_dict(),
            "counts": counts, "splits": splits}
    tmp = os.path.join(out_dir, "dataset.json.tmp")
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    os.replace(tmp, os.path.join(out_dir, "dataset.json"))

    index = pa.Table.from_pylist([{
        "key": r["key"], "split": r["split"], "shard": r["shard"], "group_index": r["group_index"],
        "head_asset_id": r["head_asset_id"], "hdri_asset_ids": [lt["hdri_asset_id"] for lt in r["lightings"]],
        "rotations_deg": [lt["rotation_deg"] for lt in r["lightings"]],
        "exposures": [lt["exposure"] for lt in r["lightings"]],
        "background": r["background"], "focal_mm": r["focal_mm"], "yaw_deg": r["yaw_deg"],
        "pitch_deg": r["pitch_deg"], "roll_deg": r["roll_deg"],
    } for r in written]) if written else pa.table({"key": pa.array([], pa.string())})
    _write_parquet(index, os.path.join(out_dir, "index.parquet"))
    _write_parquet(pa.Table.from_pylist(sorted(failures, key=lambda f: f["group_index"]), schema=FAILURE_SCHEMA),
                   os.path.join(out_dir, "failures.parquet"))
    stats = [dict(s, render_s_total=float(sum(s["render_s"]))) for r in results.values() for s in r.stats]
    if stats:
        _write_parquet(pa.Table.from_pylist(stats), os.path.join(out_dir, "render_stats.parquet"))
    if written:
        preview(out_dir, os.path.join(out_dir, "preview.png"))
    return {"out": out_dir, **counts}


def iter_samples(out_dir: str, split: str | None = None):
    """Samples of a finished dataset, read with plain webdataset."""
    import webdataset as wds

    with open(os.path.join(out_dir, "dataset.json")) as f:
        meta = json.load(f)
    for name in ("train", "val", "test"):
        entry = meta["splits"].get(name)
        if entry is None or (split and name != split):
            continue
        for s in entry["shards"]:
            yield from wds.WebDataset(os.path.join(out_dir, s["path"]), shardshuffle=False, empty_check=False)


PREVIEW_GROUPS = 12  # rows of preview.png


def preview(out_dir: str, out_png: str, max_groups: int = PREVIEW_GROUPS, max_lightings: int = 6,
            tile: int = 128) -> str:
    """Contact sheet: a row per group, a column per lighting, the env map under each render."""
    rows = []
    # islice stops after max_groups samples without opening the next shard: for a remote output only the
    # shards holding those groups are staged locally (farm.finalize), and the next one is not there
    for sample in itertools.islice(iter_samples(out_dir), max_groups):
        k = shard_format.check_fields(sample["__key__"], {k for k in sample if not k.startswith("__")})
        cells = []
        for i in range(min(k, max_lightings)):
            rgb = Image.open(io.BytesIO(sample[shard_format.rgb_field(i)])).convert("RGB").resize((tile, tile))
            env = Image.open(io.BytesIO(sample[shard_format.env_field(i)])).convert("RGB").resize((tile, tile // 2))
            cells.append((rgb, env))
        rows.append((sample["__key__"], cells))
    cols = max(len(c) for _, c in rows)
    label = 14
    sheet = Image.new("RGB", (cols * (tile + 4) + 4, len(rows) * (tile + tile // 2 + label + 8) + 4), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for r, (key, cells) in enumerate(rows):
        y = 4 + r * (tile + tile // 2 + label + 8)
        draw.text((6, y), key, fill=(220, 220, 220))
        for c, (rgb, env) in enumerate(cells):
            x = 4 + c * (tile + 4)
            sheet.paste(rgb, (x, y + label))
            sheet.paste(env, (x, y + label + tile + 2))
    sheet.save(out_png)
    return out_png


def inspect(out_dir: str, storage_options: dict[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """(report lines, problems): counts and sizes per split; every shard checked against the format.

    ``out_dir`` is a folder or an fsspec URL; remote shards are hashed as they stream and checked one at a
    time from a temporary copy."""
    dest = storage.open_dest(out_dir, storage_options)
    if not dest.exists("dataset.json"):
        if not dest.fs.exists(dest.root):
            return [], [f"{out_dir}: no such folder"]
        return [], [f"{out_dir}: no dataset.json (not a synthgen output, or the job has not finished)"]
    where = dest.uri("dataset.json")
    try:
        meta = dest.read_json("dataset.json")
    except ValueError as e:  # not JSON (truncated, or another file by that name)
        return [], [f"{where}: not valid JSON ({e})"]
    if not isinstance(meta, dict):
        return [], [f"{where}: not a synthgen dataset.json (a JSON {type(meta).__name__}, not an object)"]
    for key in ("format", "job", "counts", "splits"):
        if key not in meta:
            return [], [f"{where}: no {key!r} key (not a complete synthgen dataset.json)"]
    lines, problems = [], []
    c = meta["counts"]
    lines.append(f"{out_dir}: {meta['format']}, job {meta['job']['job']['id']}: planned {c['planned']}, "
                 f"written {c['written']}, failed {c['failed']}, {c['lightings_per_group']} lightings per group")
    for split, entry in sorted(meta["splits"].items()):
        size = sum(s["bytes"] for s in entry["shards"])
        lines.append(f"  {split:5s} {len(entry['shards']):4d} shard(s) {entry['groups']:6d} group(s) "
                     f"{size / 1e6:9.1f} MB  {entry['pattern']}")
        for s in entry["shards"]:
            try:  # the same check as relight's reader: nothing outside the dataset folder is opened
                rel = shard_format.check_shard_path(s.get("path"), dest.url)
            except ValueError as e:
                problems.append(f"{dest.uri('dataset.json')}: split {split!r}: {e}; not opened")
                continue
            tar = dest.uri(rel)
            if not dest.exists(rel):
                problems.append(f"{tar}: missing")
                continue
            if dest.digest(rel) != s["sha256"]:
                problems.append(f"{tar}: sha256 differs from dataset.json (changed or truncated)")
                continue
            with tempfile.TemporaryDirectory() as tmp:
                local = dest.path(rel) if dest.is_local else dest.get(rel, os.path.join(tmp, "s.tar"))
                try:
                    keys = shards.validate_tar(local)
                except Exception as e:
                    problems.append(f"{tar}: {e}")
                    continue
            if len(keys) != s["groups"]:
                problems.append(f"{tar}: {len(keys)} samples, dataset.json says {s['groups']}")
    return lines, problems
