"""Which finished shards a run may keep: completion records checked against this job, and ``--overwrite``.

``prepare`` plans the job and, before anything is written, reads every
completion record at the destination (a folder or an fsspec URL) and checks it
against this job (:mod:`synthgen.provenance`):

* a record from before settings digests, or one for a shard this plan does not
  have, is refused;
* a record whose settings (job, plan rows, assets) differ from this job's is
  refused, naming the keys (``render.resolution=32, this job has 48``);
* the records must agree on the software (Blender, synthgen) among themselves;
  the process that renders the remaining shards checks its own against theirs
  (``runner.render_shard``), so a driver without bpy needs no Blender.

Refusals are one line, exit 2, and leave the folder as it was. ``--overwrite``
instead removes the previous run's files first (``dataset.json`` before the
records, the records before the shards), so a folder never shows records for
shards that are gone; after an interrupted overwrite no records are left, and
the next run renders everything.

Records that pass are kept when their tar still has the recorded size and
sha256 (``tar_matches``); the rest are rendered again.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from assets_manifest import cli_errors
from synthgen import plan as planning, provenance, storage
from synthgen.job import Job

COMPLETED_DIR = "completed"
RECORD_FORMAT = "synthgen-completion/2"  # /1 (no format key): records without settings and digest
# what a run writes beside the shards; removed by --overwrite after dataset.json and the records
RUN_FILES = ("index.parquet", "failures.parquet", "render_stats.parquet", "preview.png", "farm_report.json",
             *(f"{s}.wids.json" for s in planning.SPLIT_ORDER), "plan.parquet", ".staging")


@dataclass
class Prepared:
    table: pa.Table
    by_shard: dict[str, list[dict[str, Any]]]
    settings: dict[str, dict[str, Any]]  # shard -> its settings without software (provenance.shard_settings)
    records: dict[str, dict[str, Any]]  # shard -> its completion record, checked against settings
    software: dict[str, Any] | None  # what the recorded shards were rendered with (None: no records)


def record_rel(shard: str) -> str:
    return f"{COMPLETED_DIR}/{shard}.json"


def asset_rows(assets: planning.Assets) -> dict[str, dict[str, Any]]:
    return {r["asset_id"]: r for pool in (assets.heads, assets.hdris) for rows in pool.values() for r in rows}


def prepare(job: Job, dest: storage.Dest, overwrite: bool = False) -> Prepared:
    """Plan ``job``, check (or with ``overwrite`` remove) what ``dest`` holds, write ``plan.parquet``."""
    assets = planning.load_assets(job.job.catalogs)
    table = planning.make_plan(job, assets)
    by_shard = planning.shards_of(table)
    rows_by_id = asset_rows(assets)
    job_dict = job.to_dict()
    settings = {s: provenance.shard_settings(job_dict, rows, rows_by_id) for s, rows in by_shard.items()}
    if overwrite:
        remove_run(dest)
    else:
        check_plan_version(dest)
    records = read_records(dest)
    for shard, d in sorted(records.items()):
        check_record(dest, shard, d, settings)
    software = common_software(dest, records)
    write_plan(dest, table, job)
    return Prepared(table=table, by_shard=by_shard, settings=settings, records=records, software=software)


def check_plan_version(dest: storage.Dest) -> None:
    """Refuse a folder planned by an older synthgen (its samples and records are in older formats)."""
    if not dest.exists("plan.parquet"):
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = dest.path("plan.parquet") if dest.is_local else dest.get("plan.parquet", os.path.join(tmp, "p"))
        try:
            planning.read_plan(local)
        except planning.JobError as e:
            raise provenance.SettingsMismatch(f"{dest.uri('plan.parquet')}: {str(e).split(': ', 1)[1]}") from None
        except (OSError, pa.ArrowException):
            pass  # unreadable (a torn copy): it is rewritten, and the completion records decide what is kept


def write_plan(dest: storage.Dest, table: pa.Table, job: Job) -> None:
    if dest.is_local:
        planning.write_plan(table, job, dest.path("plan.parquet"))
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = planning.write_plan(table, job, os.path.join(tmp, "plan.parquet"))
        dest.put(local, "plan.parquet")


def remove_run(dest: storage.Dest) -> None:
    """Remove a previous run's files: dataset.json, then the records, then the shards and the rest."""
    for rel in ("dataset.json", COMPLETED_DIR, "shards", *RUN_FILES):
        dest.remove(rel)


def read_records(dest: storage.Dest) -> dict[str, dict[str, Any]]:
    """Shard name -> completion record (parsed JSON) for every ``completed/*.json`` at ``dest``."""
    folder = dest.path(COMPLETED_DIR)
    dest.fs.invalidate_cache(folder)  # object stores: records published by workers since the last listing
    try:
        names = [os.path.basename(p.rstrip("/")) for p in dest.fs.ls(folder, detail=False)]
    except (FileNotFoundError, NotADirectoryError):  # nothing rendered yet (or --out is not a folder: said later)
        return {}
    out = {}
    for name in sorted(n for n in names if n.endswith(".json")):
        rel = f"{COMPLETED_DIR}/{name}"
        try:
            d = dest.read_json(rel)
        except ValueError as e:
            raise cli_errors.runtime(ValueError(f"{dest.uri(rel)}: not valid JSON ({e}); delete it to render "
                                                "its shard again")) from None
        out[name[: -len(".json")]] = d
    return out


def check_record(dest: storage.Dest, shard: str, d: Any, settings: dict[str, dict[str, Any]]) -> None:
    """Raise SettingsMismatch (one line) unless record ``d`` of ``shard`` was made by this job's settings."""
    where = dest.uri(record_rel(shard))
    if not isinstance(d, dict) or d.get("format") != RECORD_FORMAT:
        found = d.get("format") if isinstance(d, dict) else None
        what = f"format {found!r}" if found else "an older synthgen's record, without a settings digest"
        raise provenance.SettingsMismatch(f"{where}: {what} (this synthgen writes {RECORD_FORMAT}); "
                                          f"{provenance.ADVICE}")
    if shard not in settings:
        raise provenance.SettingsMismatch(f"{dest.url}: shard {shard} is not in this job's plan (job.id, splits "
                                          f"or job.shard_size changed); {provenance.ADVICE}")
    if not isinstance(d.get("settings"), dict) or provenance.digest(d["settings"]) != d.get("digest"):
        raise cli_errors.runtime(ValueError(f"{where}: its digest does not match its settings (the record was "
                                            "changed or damaged); delete it to render its shard again"))
    recorded = {k: v for k, v in d["settings"].items() if k != "software"}
    if diffs := provenance.differences(recorded, settings[shard]):
        raise provenance.SettingsMismatch(f"{dest.url}: shard {shard} was rendered with "
                                          f"{provenance.describe(diffs)}; {provenance.ADVICE}")


def common_software(dest: storage.Dest, records: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The software every record names; SettingsMismatch naming two shards that disagree."""
    first: tuple[str, dict[str, Any]] | None = None
    for shard, d in sorted(records.items()):
        software = d["settings"].get("software") or {}
        if first is None:
            first = (shard, software)
        elif diffs := provenance.differences({"software": first[1]}, {"software": software}):
            raise provenance.SettingsMismatch(
                f"{dest.url}: shard {first[0]} was rendered with "
                f"{provenance.describe(diffs, f'shard {shard} with')}; {provenance.ADVICE}")
    return first[1] if first else None


def check_software(where: str, shard: str, expected: dict[str, Any] | None, software: dict[str, Any]) -> None:
    """In the rendering process: its software must be what the kept shards were rendered with."""
    if expected and (diffs := provenance.differences({"software": expected}, {"software": software})):
        raise provenance.SettingsMismatch(f"{where}: the finished shards were rendered with "
                                          f"{provenance.describe(diffs, 'the process rendering ' + shard + ' has')}"
                                          f"; {provenance.ADVICE}")


def tar_matches(dest: storage.Dest, d: dict[str, Any]) -> bool:
    """Whether the record's tar is at ``dest`` with the recorded size and sha256."""
    rec = d["record"]
    return dest.size(rec["path"]) == rec["bytes"] and dest.digest(rec["path"]) == rec["sha256"]
