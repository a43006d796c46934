"""Run a job on this machine: plan, render shard by shard, resume, finalize.

``render_shard`` is the unit of work (DESIGN.md): it renders a shard's
groups from their plan rows, writes the tar atomically and records a
completion file ``completed/<shard>.json`` (the shard's settings and their
digest, sha256, bytes, the keys read back from the tar, failures, timings).
The Ray farm calls the same function; here shards run one after another in
this process, sharing one Blender session.

Resume is the default (the same command again; ``--resume`` says so): every
completion record is checked against this job first (:mod:`synthgen.resume`:
other settings are refused, naming them), shards whose tar still has the
recorded sha256 are kept and the rest rendered; the result equals an
uninterrupted run. ``overwrite`` removes the previous run and renders all.
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
from tqdm import tqdm

from assets_manifest import hdri_io
from synthgen import dataset, locate, provenance, resume, samples, shards, storage
from synthgen.format import atomic
from synthgen.job import Job
from synthgen.render_process import BlenderStartError, GroupFailed

COMPLETED_DIR = resume.COMPLETED_DIR


@dataclass
class ShardResult:
    record: shards.ShardRecord
    failures: list[dict[str, Any]] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # provenance.shard_settings + software
    digest: str = ""  # provenance.digest(settings)

    def to_dict(self) -> dict[str, Any]:
        return {"format": resume.RECORD_FORMAT, "settings": self.settings, "digest": self.digest,
                "record": self.record.to_dict(), "failures": self.failures, "stats": self.stats}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ShardResult":
        return cls(record=shards.ShardRecord(**d["record"]), failures=d["failures"], stats=d["stats"],
                   settings=d.get("settings") or {}, digest=d.get("digest", ""))


class HdriCache:
    """Source HDRIs as float arrays by asset id, for the camera-frame env maps (numpy side)."""

    def __init__(self, limit: int = 32):
        self.limit, self.items = limit, {}

    def get(self, asset_id: str, path: str) -> np.ndarray:
        if asset_id not in self.items:  # an id is its content, wherever the file is
            if len(self.items) >= self.limit:
                self.items.pop(next(iter(self.items)))
            self.items[asset_id] = np.maximum(hdri_io.read_hdri(path), 0.0)
        return self.items[asset_id]


def render_shard(out_dir: str, shard: str, rows: list[dict[str, Any]], job: dict[str, Any],
                 renderer=None, hdris: HdriCache | None = None, on_group=None,
                 assets: locate.AssetPaths | None = None, *,
                 settings: dict[str, Any] | None = None, software_expected: dict[str, Any] | None = None,
                 where: str | None = None) -> ShardResult:
    """Render and publish one shard; failed groups are recorded, never fatal.

    Asset files are found here, on the rendering node, in the job's catalogs (``assets``).
    ``settings``: the shard's settings from the driver (``resume.Prepared.settings``; by default from
    ``job`` and ``rows`` alone), recorded with this process's software. ``software_expected``: what the
    kept shards were rendered with; another Blender or synthgen here raises SettingsMismatch before any
    render. ``where`` names the output in that message (default ``out_dir``)."""
    assets = assets or locate.AssetPaths.from_catalogs(job["job"]["catalogs"])
    if renderer is None:
        from synthgen.render import scene as bpy_scene  # only here: the render environment has bpy

        renderer = bpy_scene.GroupRenderer(job["render"], tmp_dir=os.path.join(out_dir, ".staging"),
                                           log_path=blender_log_path(out_dir))
    hdris = hdris or HdriCache()
    software = getattr(renderer, "software", None)  # a BlenderProcess knows it; bpy is in its child
    if software is None:
        from synthgen.render import scene as bpy_scene

        software = bpy_scene.software_versions()
    resume.check_software(where or out_dir, shard, software_expected, software)
    settings = dict(settings if settings is not None else provenance.shard_settings(job, rows, {}),
                    software=software)
    result = ShardResult(record=None, settings=settings, digest=provenance.digest(settings))  # type: ignore[arg-type]

    def produce():
        for row in rows:
            t0, cpu0 = time.perf_counter(), time.process_time()
            try:
                located = assets.locate(row)
                renders, timings = renderer.render_group(located)
                cpu_s = getattr(timings, "cpu_s", None)  # a BlenderProcess measures its child
                cpu_s = time.process_time() - cpu0 if cpu_s is None else cpu_s
                maps = {lt["hdri_asset_id"]: hdris.get(lt["hdri_asset_id"], lt["hdri_path"])
                        for lt in located["lightings"]}
                sample = samples.build_sample(row, renders, maps, job, software)
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
    atomic.write_json(path, obj)  # temp name per host and pid: two attempts of a shard never share one


def run_local(job: Job, out_dir: str, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Render ``job`` into ``out_dir`` shard after shard; resume, or with ``overwrite`` start again."""
    dest = storage.open_dest(out_dir)
    prep = resume.prepare(job, dest, overwrite)
    by_shard = prep.by_shard
    results: dict[str, ShardResult] = {}
    pending = []
    for name in by_shard:
        d = prep.records.get(name)
        if d and resume.tar_matches(dest, d):
            results[name] = ShardResult.from_dict(d)
        else:
            pending.append(name)
    total = prep.table.num_rows
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
                hdris, assets = HdriCache(), locate.AssetPaths.from_catalogs(job.job.catalogs)
                for name in pending:
                    results[name] = render_shard(out_dir, name, by_shard[name], job.to_dict(), renderer, hdris,
                                                 on_group, assets, settings=prep.settings[name],
                                                 software_expected=prep.software)
        finally:
            bar.close()
    summary = dataset.finalize(out_dir, job, prep.table, results)
    summary["wall_s"] = time.perf_counter() - t0
    summary["rendered_shards"] = len(pending)
    return summary
