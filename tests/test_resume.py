"""Resume checked against the job, --overwrite, and accounting from the shards (issue 13, findings 1-3).

One tiny real render (two groups, one per shard, 32 px, 2 samples, through the
CLI with --local) is copied into each test, which then changes the folder or
the command and checks what synthgen does about it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pyarrow.parquet as pq
import pytest
from PIL import Image

pytest.importorskip("bpy")

from synthgen import dataset, shards  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = os.path.join(ROOT, "jobs", "quickstart.toml")
BASE = ["render.resolution=32", "render.samples=2", "render.denoise=false", "render.passes=[]",
        "splits.train=2", "splits.val=0", "splits.test=0", "job.shard_size=1",
        "lighting.hdris_per_group=1", "lighting.rotations_per_hdri=2", "lighting.env_width=32"]
SHARDS = ["train-000000", "train-000001"]
ADVICE = "run with --overwrite to re-render everything, or use a new --out"


def synthgen(command: str, out: str, catalog: str, *flags: str, sets=()) -> subprocess.CompletedProcess:
    args = [a for s in [f'job.catalogs=["{catalog}"]', *BASE, *sets] for a in ("--set", s)]
    local = ["--local"] if command == "render" else []
    return subprocess.run([sys.executable, "-m", "synthgen.cli", command, QUICK, "--out", out, "-q", *local, *flags,
                           *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def error_line(r: subprocess.CompletedProcess) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr[-3000:]
    return lines[0]


def record_path(out: str, shard: str) -> str:
    return os.path.join(out, "completed", f"{shard}.json")


def read_record(out: str, shard: str) -> dict:
    with open(record_path(out, shard)) as f:
        return json.load(f)


def write_record(out: str, shard: str, d: dict) -> None:
    with open(record_path(out, shard), "w") as f:
        json.dump(d, f)


def image_sizes(out: str, shard: str) -> set[tuple[int, int]]:
    with tarfile.open(os.path.join(out, "shards", f"{shard}.tar")) as tf:
        return {Image.open(io.BytesIO(tf.extractfile(m).read())).size for m in tf.getmembers() if ".rgb_" in m.name}


def file_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def first(catalog, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("first") / "ds")
    r = synthgen("render", out, catalog)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


@pytest.fixture
def ds(first, tmp_path) -> str:
    out = str(tmp_path / "ds")
    shutil.copytree(first, out)
    return out


def test_records_carry_settings_digest_and_the_keys_read_back(ds):
    from synthgen import provenance

    for shard in SHARDS:
        d = read_record(ds, shard)
        assert d["digest"] == provenance.digest(d["settings"])
        s = d["settings"]
        assert s["job"]["render"]["resolution"] == 32 and "catalogs" not in s["job"]["job"]
        assert "threads" not in s["job"]["render"] and "timeout_s" not in s["job"]["render"]
        assert s["software"]["blender"].startswith("5.2") and s["software"]["synthgen"]
        (key,) = s["plan"]
        assert d["record"]["keys"] == [key] == shards.validate_tar(os.path.join(ds, d["record"]["path"]))
        assert all(a["sha256"] for a in s["assets"].values()) and len(s["assets"]) == 2  # a head and an HDRI
        assert "/" not in provenance.canonical(s["plan"])  # no paths: a moved catalog is the same job
    index = pq.read_table(os.path.join(ds, "index.parquet")).column("key").to_pylist()
    assert index == [read_record(ds, s)["record"]["keys"][0] for s in SHARDS]


def test_resume_with_other_settings_is_refused_and_overwrite_renders_all(ds, catalog):
    """Finding 1: a lost record, then the command again at 48 px, used to exit 0 with 32 and 48 px shards."""
    os.remove(record_path(ds, "train-000001"))
    before = {p: file_bytes(os.path.join(ds, p)) for p in ("dataset.json", "shards/train-000001.tar")}
    r = synthgen("render", ds, catalog, sets=["render.resolution=48"])
    assert (r.returncode, error_line(r)) == (2, f"error: {ds}: shard train-000000 was rendered with "
                                                f"render.resolution=32, this job has 48; {ADVICE}")
    assert {p: file_bytes(os.path.join(ds, p)) for p in before} == before  # nothing written
    assert not os.path.exists(record_path(ds, "train-000001"))

    stale = os.path.join(ds, "shards", "train-000007.tar")  # a shard of some earlier, larger run
    shutil.copy(os.path.join(ds, "shards", "train-000000.tar"), stale)
    r = synthgen("render", ds, catalog, "--overwrite", sets=["render.resolution=48"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(os.listdir(os.path.join(ds, "shards"))) == [f"{s}.tar" for s in SHARDS]
    assert sorted(os.listdir(os.path.join(ds, "completed"))) == [f"{s}.json" for s in SHARDS]
    for shard in SHARDS:
        assert image_sizes(ds, shard) == {(48, 48)}
        assert read_record(ds, shard)["settings"]["job"]["render"]["resolution"] == 48
    assert json.load(open(os.path.join(ds, "dataset.json")))["job"]["render"]["resolution"] == 48
    assert dataset.inspect(ds)[1] == []


def test_the_same_command_resumes(ds, first, catalog):
    """make demo stays idempotent: the same command keeps every shard; a lost one is rendered identically."""
    tars = {s: os.stat(os.path.join(ds, "shards", f"{s}.tar")).st_mtime_ns for s in SHARDS}
    r = synthgen("render", ds, catalog, "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    assert {s: os.stat(os.path.join(ds, "shards", f"{s}.tar")).st_mtime_ns for s in SHARDS} == tars
    os.remove(record_path(ds, "train-000001"))
    r = synthgen("render", ds, catalog)
    assert r.returncode == 0, r.stderr[-3000:]
    assert os.stat(os.path.join(ds, "shards", "train-000001.tar")).st_mtime_ns != tars["train-000001"]
    assert file_bytes(os.path.join(ds, "dataset.json")) == file_bytes(os.path.join(first, "dataset.json"))
    r = synthgen("render", ds, catalog, "--resume", "--overwrite")
    assert r.returncode == 2 and "not allowed with argument" in r.stderr


def test_old_or_altered_records_are_refused(ds, catalog):
    d = read_record(ds, "train-000000")
    write_record(ds, "train-000000", {k: d[k] for k in ("record", "failures", "stats")})  # before digests
    r = synthgen("render", ds, catalog)
    assert (r.returncode, error_line(r)) == (
        2, f"error: {record_path(ds, 'train-000000')}: an older synthgen's record, without a settings digest "
           f"(this synthgen writes synthgen-completion/2); {ADVICE}")
    d["settings"]["job"]["render"]["samples"] = 99  # changed by hand: the digest no longer matches
    write_record(ds, "train-000000", d)
    r = synthgen("render", ds, catalog)
    assert (r.returncode, error_line(r)) == (
        1, f"error: {record_path(ds, 'train-000000')}: its digest does not match its settings (the record was "
           "changed or damaged); delete it to render its shard again")


def test_another_blender_is_refused(ds, catalog):
    """Kept shards from another Blender: the rendering process compares its own with theirs."""
    from synthgen import provenance

    d = read_record(ds, "train-000000")
    ours = d["settings"]["software"]["blender"]
    d["settings"]["software"]["blender"] = "4.2.0"
    d["digest"] = provenance.digest(d["settings"])
    write_record(ds, "train-000000", d)
    r = synthgen("render", ds, catalog)  # the records disagree among themselves
    assert (r.returncode, error_line(r)) == (
        2, f"error: {ds}: shard train-000000 was rendered with software.blender=4.2.0, shard train-000001 with "
           f"{ours}; {ADVICE}")
    os.remove(record_path(ds, "train-000001"))
    r = synthgen("render", ds, catalog)  # this Blender would render train-000001
    assert (r.returncode, error_line(r)) == (
        2, f"error: {ds}: the finished shards were rendered with software.blender=4.2.0, the process rendering "
           f"train-000001 has {ours}; {ADVICE}")
    assert not os.path.exists(record_path(ds, "train-000001"))


def test_plan_refuses_a_folder_rendered_from_another_plan(ds, catalog):
    """Finding 2: `synthgen plan` with another seed used to overwrite plan.parquet beside the old shards."""
    plan = file_bytes(os.path.join(ds, "plan.parquet"))
    r = synthgen("plan", ds, catalog, sets=["job.seed=7"])
    line = error_line(r)  # the seed first, then the plan rows (and assets) it changed
    assert r.returncode == 2 and line.startswith(
        f"error: {ds}: shard train-000000 was rendered with job.seed=20250116, this job has 7; "), line
    assert "more difference(s)" in line and line.endswith(f"; {ADVICE}")
    assert file_bytes(os.path.join(ds, "plan.parquet")) == plan
    assert synthgen("plan", ds, catalog).returncode == 0  # the same plan: fine
    r = synthgen("plan", ds, catalog, "--overwrite", sets=["job.seed=7"])
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(ds)) == ["logs", "plan.parquet"]  # the old run's files are gone


def test_turning_hair_off_changes_the_settings(ds, catalog):
    """hair.enabled is part of the settings digest: a folder rendered with hair refuses a job without."""
    r = synthgen("plan", ds, catalog, sets=["hair.enabled=false"])
    line = error_line(r)
    assert r.returncode == 2 and line.startswith(
        f"error: {ds}: shard train-000000 was rendered with hair.enabled=true, this job has false; "), line
    assert line.endswith(f"; {ADVICE}")
    s = read_record(ds, "train-000000")["settings"]
    (row,) = s["plan"].values()
    assert s["job"]["hair"]["enabled"] is True and json.loads(row["hair"])["version"] == 1


def test_finalize_checks_the_records_against_the_plan(ds, catalog):
    """Finding 3: finalize used to count plan minus failures; now the records' keys must add up."""
    before = file_bytes(os.path.join(ds, "dataset.json"))
    d = read_record(ds, "train-000001")
    (key,) = d["record"]["keys"]
    d["record"].update(keys=[], groups=0)
    write_record(ds, "train-000001", d)
    r = synthgen("render", ds, catalog)
    assert (r.returncode, error_line(r)) == (
        1, f"error: {ds}: the completion records do not add up to the plan: shard train-000001: planned key(s) "
           f"neither written nor failed: {key}; delete that shard's completed/<shard>.json and run the same "
           "command again to render it again")
    assert file_bytes(os.path.join(ds, "dataset.json")) == before
    d["record"].update(keys=[key, "quickstart-00000009"], groups=2)
    write_record(ds, "train-000001", d)
    r = synthgen("render", ds, catalog)
    assert r.returncode == 1 and "shard train-000001: key(s) not planned in this shard: quickstart-00000009" \
        in error_line(r)
    os.remove(record_path(ds, "train-000001"))
    assert synthgen("render", ds, catalog).returncode == 0  # rendered again: the books balance


def test_inspect_compares_the_keys_in_the_tars(ds):
    """Finding 3: inspect read the tars but compared only their sample counts with dataset.json."""
    tar = os.path.join(ds, "shards", "train-000000.tar")
    (key,) = shards.validate_tar(tar)
    renamed = tar + ".new"
    with tarfile.open(tar) as src, tarfile.open(renamed, "w") as dst:  # the same sample under another key
        for m in src.getmembers():
            data = src.extractfile(m).read()
            m.name = m.name.replace(key, "quickstart-00000099")
            dst.addfile(m, io.BytesIO(data))
    os.replace(renamed, tar)
    meta = json.load(open(os.path.join(ds, "dataset.json")))
    entry = meta["splits"]["train"]["shards"][0]
    entry.update(sha256=shards.file_digest(tar), bytes=os.path.getsize(tar))  # dataset.json agrees with the tar
    json.dump(meta, open(os.path.join(ds, "dataset.json"), "w"))
    lines, problems = dataset.inspect(ds)
    assert problems == [f"{tar}: key(s) in index.parquet missing from the tar: {key}",
                        f"{tar}: key(s) in the tar not in index.parquet: quickstart-00000099",
                        f"{ds}: planned key(s) neither in a shard nor in failures.parquet: {key}",
                        f"{ds}: key(s) not in plan.parquet: quickstart-00000099"]
