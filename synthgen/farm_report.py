"""The farm's final report: counts, wall time, cost per 1000 images, throughput per worker.

Built from what each shard task returns (host, worker pid, start/end, the
CPUs and GPUs Ray gave it, groups and images rendered, Blender restarts).
Core-seconds are task wall time x CPUs held, GPU-seconds likewise: what the
cluster was billed for, not what Cycles used. Attempts killed mid-shard
return nothing, so their time is not counted (the retry's is).
Plain dicts, so it is written as JSON beside the dataset (``farm_report.json``).
"""

from __future__ import annotations

from typing import Any

PROCESS_COUNTERS = ("starts", "groups", "recycled_groups", "recycled_rss", "timeouts", "crashes")


def build(*, job_id: str, out: str, counts: dict[str, Any], wall_s: float, tasks: list[dict[str, Any]],
          shards_total: int, shards_kept: int, attempts: int, retried: list[str], shape: dict[str, Any],
          address: str) -> dict[str, Any]:
    images = sum(t["images"] for t in tasks)
    groups = sum(t["groups"] for t in tasks)
    core_s = sum((t["end"] - t["start"]) * t["cpus"] for t in tasks)
    gpu_s = sum((t["end"] - t["start"]) * t["gpus"] for t in tasks)
    blender_cpu_s = sum(t["blender_cpu_s"] for t in tasks)
    per_k = (lambda x: round(x / images * 1000, 3)) if images else (lambda x: None)
    workers: dict[str, dict[str, Any]] = {}
    for t in sorted(tasks, key=lambda t: t["start"]):
        w = workers.setdefault(f"{t['host']}:{t['pid']}", {"host": t["host"], "pid": t["pid"], "device": t["device"],
                                                          "shards": 0, "groups": 0, "images": 0, "busy_s": 0.0})
        w["shards"] += 1
        w["groups"] += t["groups"]
        w["images"] += t["images"]
        w["busy_s"] += t["end"] - t["start"]
    for w in workers.values():
        w["busy_s"] = round(w["busy_s"], 3)
        w["images_per_s"] = round(w["images"] / w["busy_s"], 4) if w["busy_s"] > 0 else None
    blender = {k: sum(t["process"].get(k, 0) for t in tasks) for k in PROCESS_COUNTERS}
    blender["peak_rss_mb"] = round(max((t["process"].get("peak_rss_bytes", 0) for t in tasks), default=0) / 2**20, 1)
    return {
        "job": job_id, "out": out, "ray_address": address, "counts": counts,
        "shards": {"total": shards_total, "kept_from_before": shards_kept, "rendered": len(tasks),
                   "attempts": attempts, "retried": sorted(retried)},
        "this_run": {"groups": groups, "images": images, "failed": sum(t["failed"] for t in tasks)},
        "wall_s": round(wall_s, 3),
        "images_per_s": round(images / wall_s, 4) if wall_s > 0 and images else None,
        "worker": shape,
        "core_s": round(core_s, 3), "gpu_s": round(gpu_s, 3),
        "core_s_per_1000_images": per_k(core_s), "gpu_s_per_1000_images": per_k(gpu_s),
        # CPU Blender actually used (all its threads): unlike core_s, not inflated by waiting on a loaded node
        "blender_cpu_s": round(blender_cpu_s, 3), "blender_cpu_s_per_1000_images": per_k(blender_cpu_s),
        "workers": list(workers.values()),
        "blender": blender,
    }


def lines(report: dict[str, Any]) -> list[str]:
    c, s, r = report["counts"], report["shards"], report["this_run"]
    out = [
        f"planned {c['planned']}, written {c['written']}, failed {c['failed']} ({c['images']} images); "
        f"shards: {s['total']} ({s['rendered']} rendered now, {s['kept_from_before']} kept, "
        f"{s['attempts'] - s['rendered']} retried attempt(s))",
        f"this run: {r['images']} images in {report['wall_s']:.1f} s"
        + (f" = {report['images_per_s']:.3f} images/s" if report["images_per_s"] else ""),
    ]
    if r["images"]:
        cost = (f"cost per 1000 images: {report['core_s_per_1000_images']:.1f} core-s held "
                f"({report['blender_cpu_s_per_1000_images']:.1f} CPU-s used by Blender)")
        if report["gpu_s"]:
            cost += f", {report['gpu_s_per_1000_images']:.1f} GPU-s"
        out.append(cost)
    for w in report["workers"]:
        rate = f"{w['images_per_s']:.3f} images/s" if w["images_per_s"] else "-"
        out.append(f"  worker {w['host']}:{w['pid']} ({w['device']}): {w['shards']} shard(s), {w['images']} images, "
                   f"{w['busy_s']:.1f} s busy, {rate}")
    b = report["blender"]
    if b["timeouts"] or b["crashes"] or b["recycled_groups"] or b["recycled_rss"]:
        out.append(f"  blender: {b['starts']} start(s), {b['recycled_groups']} recycled after N groups, "
                   f"{b['recycled_rss']} past the RSS cap, {b['timeouts']} timeout(s), {b['crashes']} crash(es)")
    return out
