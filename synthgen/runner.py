"""Run a job on this machine: plan, render shard by shard, resume, finalize.

``render_shard`` is the unit of work (DESIGN.md): it renders a shard's
groups from their plan rows, writes the tar atomically and records a
completion file ``completed/<shard>.json`` (sha256, bytes, keys, failures,
timings). The Ray farm calls the same function; here shards run one after
another in this process, sharing one Blender session.

Resume is the default (the same command again; ``--resume`` is a no-op kept
for scripts): it keeps every shard whose completion record exists and whose
tar still has the recorded sha256, and renders the rest; the result equals an
uninterrupted run.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from assets_manifest import hdri_io
from synthgen import dataset, plan as planning, samples, shards
from synthgen.job import Job, JobError
from synthgen.render_process import BlenderStartError, GroupFailed

COMPLETED_DIR = "completed"


@dataclass
class ShardResult:
    record: shards.ShardRecord
    failures: list[dict[str, Any]] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"record": self.record.to_dict(), "failures": self.failures, "stats": self.stats}


class HdriCache:
    """Source HDRIs as float arrays, for the camera-frame env maps (numpy side)."""

    def __init__(self, limit: int = 32):
        self.limit, self.items = limit, {}

    def __getitem__(self, uri: str) -> np.ndarray:
        if uri not in self.items:
            if len(self.items) >= self.limit:
                self.items.pop(next(iter(self.items)))
            self.items[uri] = np.maximum(hdri_io.read_hdri(uri), 0.0)
        return self.items[uri]


def render_shard(out_dir: str, shard: str, rows: list[dict[str, Any]], job: dict[str, Any],
                 renderer=None, hdris: HdriCache | None = None, on_group=None) -> ShardResult:
    """Render and publish one shard; failed groups are recorded, never fatal."""
    if renderer is None:
        from synthgen.render import scene as bpy_scene  # only here: the render environment has bpy

        renderer = bpy_scene.GroupRenderer(job["render"], tmp_dir=os.path.join(out_dir, ".staging"),
                                           log_path=blender_log_path(out_dir))
    hdris = hdris or HdriCache()
    software = getattr(renderer, "software", None)  # a BlenderProcess knows it; bpy is in its child
    if software is None:
        from synthgen.render import scene as bpy_scene

        software = bpy_scene.software_versions()
    result = ShardResult(record=None)  # type: ignore[arg-type]

    def produce():
        for row in rows:
            t0, cpu0 = time.perf_counter(), time.process_time()
            try:
                renders, timings = renderer.render_group(row)
                cpu_s = getattr(timings, "cpu_s", None)  # a BlenderProcess measures its child
                cpu_s = time.process_time() - cpu0 if cpu_s is None else cpu_s
                sample = samples.build_sample(row, renders, {lt["hdri_uri"]: hdris[lt["hdri_uri"]]
                                                            for lt in row["lightings"]}, job, software)
            except BlenderStartError:
                raise  # no Blender at all (not installed, no GPU): the task fails, not its groups
            except Exception as e:  # a bad asset or a Blender error fails the group, not the job
                result.failures.append({
                    "group_index": row["group_index"], "key": row["key"], "split": row["split"],
                    "shard": shard, "head_asset_id": row["head_asset_id"],
                    "hdri_asset_ids": [lt["hdri_asset_id"] for lt in row["lightings"]],
                    "error": _error_line(e),
                    "traceback": getattr(e, "remote_traceback", "") or traceback.format_exc()[-4000:],
                })
                if on_group:
                    on_group(0, failed=True)
                continue
            result.stats.append({
                "key": row["key"], "shard": shard, "device": renderer.device, "host": socket.gethostname(),
                "pid": getattr(renderer, "pid", os.getpid()),
                "setup_s": timings.setup_s, "render_s": timings.render_s, "cpu_s": cpu_s,
                "wall_s": time.perf_counter() - t0,
            })
            if on_group:
                on_group(len(row["lightings"]), failed=False)
            yield sample

    result.record = shards.write_shard(out_dir, shard, rows[0]["split"], produce())
    _write_json(os.path.join(out_dir, COMPLETED_DIR, f"{shard}.json"), result.to_dict())
    return result


def _error_line(e: Exception) -> str:
    text = str(e) if isinstance(e, GroupFailed) else f"{type(e).__name__}: {e}"  # GroupFailed: "Type: msg" already
    return text.strip().splitlines()[0][:500]


def blender_log_path(out_dir: str) -> str:
    return os.path.join(out_dir, "logs", f"blender-{os.getpid()}.log")


def _write_json(path: str, obj: Any) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{socket.gethostname()}.{os.getpid()}.tmp"  # two attempts of a shard never share a temp file
    with open(tmp, "w") as f:
        json.dump(obj, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_completed(out_dir: str, shard: str) -> ShardResult | None:
    """A shard's completion record if its tar is present and matches; else None (render it again)."""
    path = os.path.join(out_dir, COMPLETED_DIR, f"{shard}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        d = json.load(f)
    rec = shards.ShardRecord(**d["record"])
    tar = os.path.join(out_dir, rec.path)
    if not os.path.exists(tar) or os.path.getsize(tar) != rec.bytes or shards.file_digest(tar) != rec.sha256:
        return None
    return ShardResult(record=rec, failures=d["failures"], stats=d["stats"])


def prepare(job: Job, out_dir: str, resume: bool) -> pa.Table:
    """Plan the job into ``out_dir/plan.parquet``; on resume the plan must be unchanged."""
    table = planning.make_plan(job)
    path = os.path.join(out_dir, "plan.parquet")
    if os.path.exists(path):
        old = planning.read_plan(path)
        if not old.equals(table):
            raise JobError(f"{out_dir}: holds a different plan (job, catalogs or seed changed); "
                           "use a new --out or delete the folder")
        if not resume and os.path.exists(os.path.join(out_dir, COMPLETED_DIR)):
            print(f"{out_dir}: resuming (same plan); finished shards are kept")
    planning.write_plan(table, job, path)
    return table


def run_local(job: Job, out_dir: str, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    table = prepare(job, out_dir, resume)
    by_shard = planning.shards_of(table)
    results: dict[str, ShardResult] = {}
    pending = []
    for name in by_shard:
        done = load_completed(out_dir, name) if resume else None
        if done:
            results[name] = done
        else:
            pending.append(name)
    total = table.num_rows
    already = sum(r.record.groups + len(r.failures) for r in results.values())
    counters = {"images": 0, "failed": sum(len(r.failures) for r in results.values())}
    t0 = time.perf_counter()
    from synthgen.render.blender_log import console_to  # no bpy: only the log redirection

    # bpy runs in this process: its console output (import, Cycles device probing, renders) goes to the log,
    # the progress bar to the terminal
    with console_to(blender_log_path(out_dir) if pending else None) as terminal:
        bar = tqdm(total=total, initial=already, desc="render", unit="group", disable=not progress, file=terminal)

        def on_group(images: int, failed: bool) -> None:
            counters["images"] += images
            counters["failed"] += failed
            dt = max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(img_s=f"{counters['images'] / dt:.2f}", failed=counters["failed"])
            bar.update(1)

        try:
            if pending:
                from synthgen.render import scene as bpy_scene

                renderer = bpy_scene.GroupRenderer(job.to_dict()["render"],
                                                   tmp_dir=os.path.join(out_dir, ".staging"),
                                                   log_path=blender_log_path(out_dir))
                hdris = HdriCache()
                for name in pending:
                    results[name] = render_shard(out_dir, name, by_shard[name], job.to_dict(), renderer, hdris,
                                                 on_group)
        finally:
            bar.close()
    summary = dataset.finalize(out_dir, job, table, results)
    summary["wall_s"] = time.perf_counter() - t0
    summary["rendered_shards"] = len(pending)
    return summary
