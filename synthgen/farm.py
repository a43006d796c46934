"""The Ray render farm: one Ray task per shard, retried by Ray, resumable, local or fsspec output.

``run_farm`` plans the job, checks every completion record at the
destination against it (:mod:`synthgen.resume`; other settings are refused,
naming them), keeps every shard whose checksum verifies there, and submits
one task per remaining shard (at most ``workers`` in flight). A task calls the same
``runner.render_shard`` as the single-process path, with Blender in a child
process (:mod:`synthgen.render_process`: per-group timeout, crash isolation,
recycling after N groups or past an RSS cap). The Ray worker and its
Blender child persist across tasks, so a worker pays Blender's start-up
once, not once per shard.

Fault tolerance is Ray's own: a task whose worker dies (kill -9, OOM, lost
node) is resubmitted, up to ``max_retries`` times; ``OSError`` raised by a
task (an upload that failed) is retried the same way. A retried shard is
rendered again from its plan rows into a staging name of its own, validated
and atomically renamed or uploaded, so no partial or duplicate shard is
ever visible. When every shard is in, the driver writes dataset.json and
the other files beside the shards (``dataset.finalize``) and
``farm_report.json``.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import ray
from tqdm import tqdm

from synthgen import dataset, farm_report, plan as planning, provenance, resume, runner, storage
from synthgen.job import Job
from synthgen.render_process import BlenderProcess, BlenderStartError

REPORT = "farm_report.json"


class FarmError(RuntimeError):
    """The job could not finish; finished shards are kept and a re-run resumes."""

    exit_code = 1  # runtime failure (assets_manifest.cli_errors)


@dataclass
class FarmOptions:
    address: str | None = None  # None: RAY_ADDRESS, else a new local Ray instance
    workers: int | None = None  # cap on concurrent shard tasks; None: what the cluster fits
    cpus_per_worker: float | None = None
    gpus_per_worker: float | None = None
    memory_gb: float | None = None  # declared to Ray's scheduler per worker
    max_retries: int = 3
    recycle_groups: int = 200  # restart Blender after this many groups (0: never)
    max_rss_gb: float = 8.0  # ... or once its RSS passes this (0: no cap)
    stage_dir: str | None = None  # worker-local staging for fsspec outputs (default: the temp dir)
    storage_options: dict[str, Any] = field(default_factory=dict)
    num_cpus: int | None = None  # CPUs of a new local Ray instance (default: all)


@dataclass
class WorkerShape:
    """What each shard task asks Ray for, and how its Blender runs."""

    cpus: float
    gpus: float
    memory_bytes: int | None
    threads: int  # Cycles threads: the CPUs Ray gave the worker
    in_flight: int  # tasks submitted at once
    recycle_groups: int
    max_rss_bytes: int
    stage_dir: str | None


# -- resources ------------------------------------------------------------------

def resolve_shape(nodes: list[dict[str, float]], opts: FarmOptions, device: str, render_threads: int = 0,
                  can_grow: bool = True) -> WorkerShape:
    """Per-worker resources from the cluster's nodes (their Ray resource dicts) and the options.

    GPUs: one Blender per GPU when the cluster has GPUs and the job may use
    them. CPUs: an even share of the cluster when ``--workers`` is given,
    else 4 per CPU worker (2 per GPU worker), never more than the largest
    node has. Without ``--workers`` every shard is submitted and Ray runs
    as many as fit (an autoscaling cluster grows to meet them).
    """
    max_node_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
    total_cpus = sum(n.get("CPU", 0) for n in nodes)
    has_gpus = any(n.get("GPU", 0) > 0 for n in nodes)
    if opts.workers is not None and opts.workers < 1:
        raise ValueError(f"--workers {opts.workers}: must be at least 1")
    gpus = opts.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if has_gpus and device != "cpu" else 0.0
    if gpus < 0:
        raise ValueError(f"--gpus-per-worker {gpus}: must be >= 0")
    if device == "gpu" and gpus == 0:
        raise ValueError("render.device = 'gpu' but the workers get no GPU: the Ray cluster has none, or "
                         "--gpus-per-worker is 0")
    cpus = opts.cpus_per_worker
    if cpus is None:
        if opts.workers and total_cpus:
            cpus = max(1.0, math.floor(total_cpus / opts.workers))
        else:
            cpus = 2.0 if gpus else 4.0
        if max_node_cpus:
            cpus = min(cpus, max_node_cpus)
    if cpus <= 0:
        raise ValueError(f"--cpus-per-worker {cpus}: must be > 0")
    capacity = 0
    for n in nodes:
        fit = math.floor(n.get("CPU", 0) / cpus)
        if gpus:
            fit = min(fit, math.floor(n.get("GPU", 0) / gpus))
        capacity += fit
    if capacity == 0 and not can_grow:  # a local instance never gets bigger: the tasks would wait forever
        have = ", ".join(f"{n.get('CPU', 0):g} CPUs/{n.get('GPU', 0):g} GPUs" for n in nodes) or "no nodes"
        raise ValueError(f"no Ray node fits a worker of {cpus:g} CPUs and {gpus:g} GPUs ({have}); "
                         "lower --cpus-per-worker / --gpus-per-worker")
    in_flight = opts.workers or max(2 * capacity, 64)
    return WorkerShape(cpus=cpus, gpus=gpus, memory_bytes=int(opts.memory_gb * 2**30) if opts.memory_gb else None,
                       threads=render_threads or max(1, math.ceil(cpus)), in_flight=in_flight,
                       recycle_groups=opts.recycle_groups, max_rss_bytes=int(opts.max_rss_gb * 2**30),
                       stage_dir=opts.stage_dir)


def _connect(opts: FarmOptions) -> tuple[bool, str, bool]:
    """Join or start Ray; (to shut down here, address, is a new local instance)."""
    if ray.is_initialized():
        return False, ray.get_runtime_context().gcs_address, False
    address = opts.address or os.environ.get("RAY_ADDRESS")
    quiet = {"logging_level": logging.WARNING, "log_to_driver": True}
    if address:
        ray.init(address=address, **quiet)
    else:
        for attempt in (1, 2):  # Ray waits a fixed 30 s for its raylet; a loaded machine can miss that once
            try:
                ray.init(address="local", num_cpus=opts.num_cpus, include_dashboard=False, **quiet)  # never join a stray cluster
                break
            except Exception as e:
                ray.shutdown()
                if attempt == 2:
                    raise FarmError(f"could not start a local Ray instance ({_error_line(e)}); "
                                    "try again, or render in one process with --local") from None
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm)  # replaces Ray's sys.exit handler
    return True, ray.get_runtime_context().gcs_address, not address


def _sigterm(signum, frame):
    # Slurm, Kubernetes and `kill` stop a job with SIGTERM: stop like Ctrl-C (cancel tasks, shut Ray down)
    raise KeyboardInterrupt


# -- the task -------------------------------------------------------------------

_WORKER: dict[str, Any] = {}  # per Ray worker process: its Blender child and HDRI cache, kept across tasks


def _worker_renderer(render_cfg: dict[str, Any], shape: WorkerShape, log_path: str):
    env = {}
    if shape.gpus:
        # Ray has set CUDA_VISIBLE_DEVICES for this worker; pass its GPUs on explicitly so the
        # Blender child renders on exactly the GPU(s) Ray assigned
        ids = ",".join(str(g) for g in ray.get_gpu_ids())
        env = {"CUDA_VISIBLE_DEVICES": ids, "HIP_VISIBLE_DEVICES": ids}
    elif render_cfg["device"] != "cpu":
        env = {"CUDA_VISIBLE_DEVICES": "", "HIP_VISIBLE_DEVICES": ""}  # no GPU was allocated to this worker
    key = repr((sorted(render_cfg.items()), shape.threads, sorted(env.items()), log_path, shape.recycle_groups,
                shape.max_rss_bytes))
    if _WORKER.get("key") != key:
        if "blender" in _WORKER:
            _WORKER["blender"].close()
        _WORKER.update(key=key, hdris=runner.HdriCache(),
                       blender=BlenderProcess(render_cfg, threads=shape.threads, log_path=log_path,
                                              recycle_groups=shape.recycle_groups,
                                              max_rss_bytes=shape.max_rss_bytes, env=env))
    return _WORKER["blender"], _WORKER["hdris"]


def stage_root(dest: storage.Dest, stage_dir: str | None) -> str:
    """Where a worker writes shards before publishing them: the output itself when local."""
    if dest.is_local:
        return dest.root
    tag = hashlib.sha1(dest.url.encode()).hexdigest()[:12]
    return os.path.join(stage_dir or tempfile.gettempdir(), "synthgen-stage", tag)


def render_shard_task(dest: storage.Dest, shard: str, rows: list[dict[str, Any]], job: dict[str, Any],
                      shape: WorkerShape, progress=None, settings: dict[str, Any] | None = None,
                      software_expected: dict[str, Any] | None = None) -> dict[str, Any]:
    """One shard, start to published completion record. Runs in a Ray worker (or anywhere).

    ``settings`` and ``software_expected``: see ``runner.render_shard``; the worker's own Blender is
    checked against the kept shards' here, so a driver without bpy needs none."""
    host, pid = socket.gethostname(), os.getpid()
    attempt = f"{host}:{pid}:{time.time_ns()}"
    start = time.time()
    _tell(progress, "started", shard, attempt)
    out_dir = stage_root(dest, shape.stage_dir)
    log_rel = f"logs/blender-{host}-{pid}.log"
    blender, hdris = _worker_renderer(job["render"], shape, os.path.join(out_dir, log_rel))
    before = blender.stats.to_dict()

    def on_group(images: int, failed: bool) -> None:
        _tell(progress, "group", shard, attempt, images, failed)

    result = runner.render_shard(out_dir, shard, rows, job, blender, hdris, on_group, settings=settings,
                                 software_expected=software_expected, where=dest.url)
    if not dest.is_local:
        completed = f"{runner.COMPLETED_DIR}/{shard}.json"
        dest.put(os.path.join(out_dir, result.record.path), result.record.path)
        dest.put(os.path.join(out_dir, completed), completed)  # the record only after its shard
        for rel in (result.record.path, completed):
            os.remove(os.path.join(out_dir, rel))
        if os.path.exists(os.path.join(out_dir, log_rel)):
            dest.put(os.path.join(out_dir, log_rel), log_rel)
    after = blender.stats.to_dict()
    failed_keys = {f["key"] for f in result.failures}
    return {
        "result": result.to_dict(),
        "task": {
            "shard": shard, "host": host, "pid": pid, "start": start, "end": time.time(),
            "cpus": shape.cpus, "gpus": shape.gpus, "device": blender.device,
            "groups": result.record.groups, "failed": len(result.failures),
            "images": sum(len(r["lightings"]) for r in rows if r["key"] not in failed_keys),
            "blender_cpu_s": sum(st["cpu_s"] for st in result.stats),
            "process": {k: after[k] - before[k] for k in after if k != "peak_rss_bytes"}
                       | {"peak_rss_bytes": after["peak_rss_bytes"]},
        },
    }


def _tell(progress, method: str, *args) -> None:
    """Report to the progress actor, fire and forget: a lost actor costs the progress bar, never the shard."""
    if progress is None:
        return
    try:
        getattr(progress, method).remote(*args)
    except Exception:  # noqa: BLE001 - e.g. RayActorError once the actor is known dead
        pass


@ray.remote(num_cpus=0)
class Progress:
    """Groups done per shard, reported by tasks as they go; a retried shard starts again from 0."""

    def __init__(self):
        self.attempt: dict[str, str] = {}
        self.counts: dict[str, list[int]] = {}
        self.starts: collections.Counter = collections.Counter()

    def started(self, shard: str, attempt: str) -> None:
        self.attempt[shard] = attempt
        self.counts[shard] = [0, 0, 0]
        self.starts[shard] += 1

    def group(self, shard: str, attempt: str, images: int, failed: bool) -> None:
        if self.attempt.get(shard) == attempt:  # late reports of a dead attempt are dropped
            c = self.counts[shard]
            c[0], c[1], c[2] = c[0] + 1, c[1] + images, c[2] + int(failed)

    def snapshot(self) -> dict[str, Any]:
        totals = [sum(c[i] for c in self.counts.values()) for i in range(3)]
        return {"groups": totals[0], "images": totals[1], "failed": totals[2],
                "attempts": sum(self.starts.values()), "retried": [s for s, n in self.starts.items() if n > 1]}


# OSError: a failed upload or a full disk; BlenderStartError: e.g. a start-up timeout on a loaded node.
# Both are worth another try (maybe elsewhere); a worker that died is retried by Ray in any case.
_remote_task = ray.remote(max_retries=3, retry_exceptions=[OSError, BlenderStartError])(render_shard_task)


# -- the driver -----------------------------------------------------------------

def _error_line(e: BaseException) -> str:
    cause = getattr(e, "cause", None) or e  # RayTaskError wraps the task's own exception
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"[:500]


def run_farm(job: Job, out: str, opts: FarmOptions | None = None, progress: bool = True,
             overwrite: bool = False) -> dict[str, Any]:
    """Render ``job`` to ``out`` on Ray; resume (records checked), or with ``overwrite`` start again."""
    opts = opts or FarmOptions()
    dest = storage.open_dest(out, opts.storage_options)
    t0 = time.perf_counter()
    prep = resume.prepare(job, dest, overwrite)
    table, by_shard = prep.table, prep.by_shard

    def kept(shard: str) -> runner.ShardResult | None:
        d = prep.records.get(shard)
        return runner.ShardResult.from_dict(d) if d and resume.tar_matches(dest, d) else None

    with ThreadPoolExecutor(8) as pool:  # remote checksums are I/O bound
        results = {s: r for s, r in zip(by_shard, pool.map(kept, by_shard)) if r is not None}
    pending = collections.deque(s for s in by_shard if s not in results)
    started_ray, address, local = (False, "", False) if not pending else _connect(opts)
    tasks: list[dict[str, Any]] = []
    snap = {"groups": 0, "images": 0, "failed": 0, "attempts": 0, "retried": []}
    shape_dict: dict[str, Any] = {}
    try:
        if pending:
            nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
            shape = resolve_shape(nodes, opts, job.render.device, job.render.threads, can_grow=not local)
            shape_dict = asdict(shape)
            snap = _run_tasks(job, dest, prep, pending, results, tasks, shape, opts, progress,
                              cancel_on_stop=not started_ray)
    finally:
        if started_ray:
            ray.shutdown()
    # workers checked their software against the kept shards'; without kept shards they must agree among
    # themselves (a cluster whose nodes have different Blenders)
    resume.common_software(dest, {s: r.to_dict() for s, r in results.items()})
    summary = finalize(dest, job, table, results)
    summary["wall_s"] = time.perf_counter() - t0
    summary["rendered_shards"] = len(tasks)
    report = farm_report.build(
        job_id=job.job.id, out=dest.url, counts={k: summary[k] for k in ("planned", "written", "failed", "images")},
        wall_s=summary["wall_s"], tasks=[t["task"] for t in tasks], shards_total=len(by_shard),
        shards_kept=len(by_shard) - len(tasks), attempts=snap["attempts"], retried=snap["retried"],
        shape=shape_dict, address=address)
    dest.write_json(REPORT, report)
    summary["report"] = report
    return summary


def _run_tasks(job, dest, prep: resume.Prepared, pending, results, tasks, shape: WorkerShape, opts: FarmOptions,
               show: bool, cancel_on_stop: bool = True):
    by_shard = prep.by_shard
    total = sum(len(rows) for rows in by_shard.values())
    kept_groups = sum(r.record.groups + len(r.failures) for r in results.values())
    kept_failed = sum(len(r.failures) for r in results.values())
    tracker = Progress.remote()  # best-effort: if it dies, rendering goes on (_progress_lost)
    job_dict = job.to_dict()
    options = {"num_cpus": shape.cpus, "num_gpus": shape.gpus, "max_retries": opts.max_retries}
    if shape.memory_bytes:
        options["memory"] = shape.memory_bytes
    task = _remote_task.options(**options)
    running: dict[Any, str] = {}
    errors: dict[str, str] = {}
    bar = tqdm(total=total, initial=kept_groups, desc="render", unit="group", disable=not show, smoothing=0.1,
               mininterval=1.0)
    t0 = time.perf_counter()
    snap = {"groups": 0, "images": 0, "failed": 0, "attempts": 0, "retried": []}
    try:
        while pending or running:
            while pending and len(running) < shape.in_flight:
                shard = pending.popleft()
                running[task.remote(dest, shard, by_shard[shard], job_dict, shape, tracker, prep.settings[shard],
                                    prep.software)] = shard
            done, _ = ray.wait(list(running), num_returns=len(running), timeout=0.5)
            for ref in done:
                shard = running.pop(ref)
                try:
                    out = ray.get(ref)
                except ray.exceptions.RayError as e:
                    if isinstance(getattr(e, "cause", None), provenance.SettingsMismatch):  # another Blender
                        raise provenance.SettingsMismatch(str(e.cause)) from None
                    errors[shard] = _error_line(e)
                    if isinstance(getattr(e, "cause", None), BlenderStartError):  # even after retries
                        raise FarmError(f"{shard}: {errors[shard]}") from None  # every task would fail the same way
                    continue
                rec_rel = f"{runner.COMPLETED_DIR}/{shard}.json"
                if not dest.exists(rec_rel):
                    raise FarmError(f"{shard}: finished on {out['task']['host']} but {dest.uri(rec_rel)} is not "
                                    "visible from the driver; on a multi-node cluster a local --out must be a "
                                    "shared filesystem (or use an s3:// / gs:// URL)")
                results[shard] = runner.ShardResult.from_dict(out["result"])
                tasks.append(out)
            if tracker is not None:
                try:
                    snap = ray.get(tracker.snapshot.remote(), timeout=60)
                except ray.exceptions.RayError as e:  # the actor died (OOM, kill -9, its node): not the job
                    tracker = None
                    _progress_lost(e, bar)
            if tracker is None:  # from the shards that came back: attempts still running are not counted
                snap = dict(snap, groups=sum(t["task"]["groups"] + t["task"]["failed"] for t in tasks),
                            images=sum(t["task"]["images"] for t in tasks),
                            failed=sum(t["task"]["failed"] for t in tasks),
                            attempts=max(snap["attempts"], len(tasks)))
            rate = snap["images"] / max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(img_s=f"{rate:.2f}", failed=kept_failed + snap["failed"], refresh=False)
            bar.update(max(kept_groups + snap["groups"] - bar.n, 0))  # redraws at most once a second (mininterval)
    except BaseException:
        # A Ray this driver started is shut down right after, which ends its workers; force-cancelling
        # there too raced with task replies and aborted the driver inside Ray (task_manager.cc
        # "Tried to complete task that was not pending") instead of exiting 130. On a shared
        # cluster the tasks must be cancelled.
        if cancel_on_stop:
            for ref in running:
                ray.cancel(ref, force=True)
        raise
    finally:
        bar.close()
    if errors:
        listed = "; ".join(f"{s}: {e}" for s, e in sorted(errors.items())[:5])
        raise FarmError(f"{len(errors)} shard(s) failed after {opts.max_retries} retries ({listed}); "
                        f"{len(results)} finished shard(s) are kept, run the same command again to resume")
    return snap


def _progress_lost(e: BaseException, bar) -> None:
    bar.write(f"warning: the progress actor (ray::Progress) was lost ({_error_line(e)}); rendering goes on, the "
              "progress bar now moves only as shards finish and farm_report.json may undercount retries",
              file=sys.stderr)


def finalize(dest: storage.Dest, job: Job, table, results: dict[str, runner.ShardResult]) -> dict[str, Any]:
    """dataset.json, index, wids, failures, stats, preview: written locally, then published."""
    if dest.is_local:
        summary = dataset.finalize(dest.root, job, table, results)
        shutil.rmtree(os.path.join(dest.root, ".staging"), ignore_errors=True)  # leftovers of killed attempts
        return summary
    dataset.check_accounting(dest.url, table.to_pylist(), results)  # named at the destination, not the mirror
    with tempfile.TemporaryDirectory() as mirror:
        got = 0
        for name in sorted(results, key=_split_order):  # the shards the preview reads (its first 12 groups)
            if got >= dataset.PREVIEW_GROUPS:
                break
            rec = results[name].record
            dest.get(rec.path, os.path.join(mirror, rec.path))
            got += rec.groups
        summary = dataset.finalize(mirror, job, table, results)
        for name in sorted(os.listdir(mirror)):
            if os.path.isfile(os.path.join(mirror, name)):
                dest.put(os.path.join(mirror, name), name)
    summary["out"] = dest.url
    return summary


def _split_order(shard: str) -> tuple[int, str]:
    split = shard.rsplit("-", 1)[0]
    return (planning.SPLIT_ORDER.index(split) if split in planning.SPLIT_ORDER else 99, shard)
