"""Job files and plans: validation with named keys, determinism, split isolation."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from synthgen import job as jobs, plan
from synthgen.job import JobError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(catalog: str, *overrides: str) -> jobs.Job:
    return jobs.load(os.path.join(ROOT, "jobs", "quickstart.toml"),
                     [f'job.catalogs=["{catalog}"]', *overrides])


def test_shipped_jobs_are_valid():
    for name in ("quickstart.toml", "demo.toml", "synthlight.toml"):
        job = jobs.load(os.path.join(ROOT, "jobs", name))
        assert job.lightings_per_group >= 2
    demo = jobs.load(os.path.join(ROOT, "jobs", "demo.toml"))  # the tiny model's fixed evaluation set
    assert demo.splits.test >= 8 and demo.render.resolution >= 48 and demo.lightings_per_group == 6
    paper = jobs.load(os.path.join(ROOT, "jobs", "synthlight.toml"))
    assert paper.lightings_per_group == 360 and paper.render.resolution == 512
    assert paper.splits.train + paper.splits.val + paper.splits.test == 3500  # x 360 = 1.26 M images


@pytest.mark.parametrize("override,message", [
    ("render.sampels=3", "render.sampels: unknown key; did you mean render.samples?"),
    ("rendr.samples=3", "unknown section [rendr]; did you mean render?"),
    ("render.samples=0", "render.samples = 0 is out of range [1, 65536]"),
    ("render.samples=\"many\"", "render.samples must be an integer"),
    ("camera.yaw_deg=[40, -40]", "camera.yaw_deg = [40, -40] must be [min, max]"),
    ("camera.focal_mm=[1, 50]", "camera.focal_mm = [1, 50] is out of range [8, 400]"),
    ("render.device=\"tpu\"", "render.device = 'tpu' must be one of auto, cpu, gpu"),
    ("render.passes=[\"albedo\", \"uv\"]", "render.passes: unknown pass 'uv'"),
    ("background.weights=[1.0]", "background.weights must be 3 non-negative numbers"),
    ("job.id=\"a.b\"", "job.id = 'a.b' must be letters, digits"),
    ("samples=3", "keys are section.name"),
])
def test_bad_jobs_name_the_key(override, message):
    with pytest.raises(JobError) as e:
        jobs.load(os.path.join(ROOT, "jobs", "quickstart.toml"), [override])
    assert message in str(e.value)
    assert "quickstart.toml" in str(e.value) or override.startswith("samples")


def test_a_group_needs_two_lightings():
    with pytest.raises(JobError, match="= 1; a group needs 2 to 1000 lightings"):
        jobs.load(os.path.join(ROOT, "jobs", "quickstart.toml"),
                  ["lighting.hdris_per_group=1", "lighting.rotations_per_hdri=1"])


def test_cli_reports_bad_job_in_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[render]\nresolution = 5\n")
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", "plan", str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {bad}: render.resolution = 5 is out of range [16, 8192]"


def test_plan_is_a_pure_function(catalog, tmp_path):
    job = load(catalog)
    a, b = plan.make_plan(job), plan.make_plan(load(catalog))
    assert a.equals(b)
    # any group can be planned alone: workers never need the whole plan
    assets = plan.load_assets(job.job.catalogs)
    rows = a.to_pylist()
    for row in (rows[0], rows[7], rows[-1]):
        assert plan.plan_group(job, assets, row["split"], row["group_index"], row["shard"]) == row
    c = plan.make_plan(load(catalog, "job.seed=7"))
    assert not a.equals(c)
    # through the CLI: identical plan.parquet contents
    for out in ("p1", "p2"):
        r = subprocess.run([sys.executable, "-m", "synthgen.cli", "plan", os.path.join(ROOT, "jobs", "quickstart.toml"),
                            "--set", f'job.catalogs=["{catalog}"]', "--out", str(tmp_path / out)],
                           capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0, r.stderr
    assert pq.read_table(tmp_path / "p1" / "plan.parquet").equals(pq.read_table(tmp_path / "p2" / "plan.parquet"))


def test_plan_respects_splits_and_structure(catalog):
    job = load(catalog, "lighting.hdris_per_group=2", "lighting.rotations_per_hdri=4", 'lighting.rotation="even"')
    table = plan.make_plan(job)
    assets = plan.load_assets(job.job.catalogs)
    ids = {s: ({h["asset_id"] for h in assets.heads[s]}, {h["asset_id"] for h in assets.hdris[s]})
           for s in plan.SPLIT_ORDER}
    rows = table.to_pylist()
    assert [r["split"] for r in rows] == ["train"] * 12 + ["val"] * 2 + ["test"] * 2
    assert [r["group_index"] for r in rows] == list(range(16))
    assert len({r["key"] for r in rows}) == 16 and all("." not in r["key"] for r in rows)
    for r in rows:
        heads, hdris = ids[r["split"]]
        assert r["head_asset_id"] in heads  # a test head never in train, and so on
        assert {lt["hdri_asset_id"] for lt in r["lightings"]} <= hdris
        assert len(r["lightings"]) == 8
        for h in range(2):  # evenly spaced rotations per HDRI, 90 degrees apart
            rots = sorted(lt["rotation_deg"] for lt in r["lightings"][h * 4:(h + 1) * 4])
            steps = [b - a for a, b in zip(rots, rots[1:])]
            assert all(abs(s - 90.0) < 1e-9 for s in steps)
    assert {r["shard"] for r in rows} == {"train-000000", "train-000001", "train-000002", "val-000000", "test-000000"}


def test_plan_fails_clearly_without_assets_for_a_split(catalog, tmp_path):
    from assets_manifest.schema import read_manifest, write_manifest
    import pyarrow.compute as pc

    t = read_manifest(catalog)
    only_train = t.filter(pc.equal(t.column("split"), "train"))
    path = str(tmp_path / "train_only.parquet")
    write_manifest(only_train.to_pylist(), path)
    with pytest.raises(JobError, match="splits.val = 2 but the catalogs .* have no val heads"):
        plan.make_plan(load(path))


def test_render_resume_and_overwrite_flags_are_documented():
    """`--resume` names the default (checked resume); `--overwrite` starts again: --help and the README say so."""
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", "render", "--help"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
    flat = " ".join(r.stdout.split())
    assert "--resume the default, named for scripts" in flat and "[--resume | --overwrite]" in flat
    assert "--overwrite remove the previous run in --out (dataset.json, records, shards) and render everything" in flat
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = " ".join(f.read().split())
    assert "the default (`--resume` names it for scripts; `make demo` stays idempotent)" in readme
    assert "[--resume | --overwrite]" in readme and "`--overwrite` instead removes the previous run" in readme


def test_plan_refuses_two_hdris_per_group_from_a_split_of_one(catalog, tmp_path):
    """hdris_per_group = 2 with one val HDRI would give every val lighting the same map: one line, exit 2."""
    from assets_manifest.schema import read_manifest, write_manifest
    import pyarrow.compute as pc

    t = read_manifest(catalog)
    val_hdris = t.filter(pc.and_(pc.equal(t.column("split"), "val"), pc.equal(t.column("kind"), "hdri")))
    assert val_hdris.num_rows >= 2
    drop = val_hdris.column("asset_id")[0].as_py()
    one = str(tmp_path / "one_val_hdri.parquet")
    write_manifest(t.filter(pc.not_equal(t.column("asset_id"), drop)), one)
    out = tmp_path / "p"
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", "plan", os.path.join(ROOT, "jobs", "quickstart.toml"),
                        "--set", f'job.catalogs=["{one}"]', "--set", "lighting.hdris_per_group=2",
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"error: {os.path.join(ROOT, 'jobs', 'quickstart.toml')}: lighting.hdris_per_group = 2 but the catalogs "
        f"({one}) have 1 val HDRI; add val HDRIs or set lighting.hdris_per_group = 1"]
    assert not out.exists()
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", "plan", os.path.join(ROOT, "jobs", "quickstart.toml"),
                        "--set", f'job.catalogs=["{one}"]', "--set", "lighting.hdris_per_group=1",
                        "--set", "lighting.rotations_per_hdri=2", "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_plan_and_render_refuse_a_folder_of_other_files(catalog, tmp_path):
    """--out naming a non-empty folder synthgen did not write: one line naming it, nothing written there."""
    import importlib.util

    quick = os.path.join(ROOT, "jobs", "quickstart.toml")
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"not yours")

    def synthgen(*args: str) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([sys.executable, "-m", "synthgen.cli", *args, "--set", f'job.catalogs=["{catalog}"]'],
                                  capture_output=True, text=True, cwd=ROOT, timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail(f"synthgen {' '.join(args)} did not refuse the folder (it went on to render)")

    refusal = ("a folder with other files, not a synthgen output (no dataset.json, plan.parquet or completed/); "
               "give a new or empty folder")
    runs = [("plan", quick, "--out", str(mine)),
            # a URL goes to the farm; --address skips the bpy check and the refusal comes before Ray is joined
            ("render", quick, "--out", f"file://{mine}", "--address", "127.0.0.1:1")]
    if importlib.util.find_spec("bpy") is not None:
        runs.append(("render", quick, "--out", str(mine), "--local"))
    for args in runs:
        r = synthgen(*args)
        out = args[args.index("--out") + 1]
        assert (r.returncode, r.stderr.strip().splitlines()) == (2, [f"error: --out {out}: {refusal}"]), args
        assert os.listdir(mine) == ["holiday.jpg"], args
    (mine / "holiday.jpg").unlink()  # empty: fine, and so is a folder synthgen wrote (plan.parquet)
    assert synthgen("plan", quick, "--out", str(mine)).returncode == 0
    (mine / "notes.txt").write_text("mine, beside the plan")
    r = synthgen("plan", quick, "--out", str(mine))
    assert r.returncode == 0, r.stderr
    r = synthgen("plan", quick, "--out", str(mine / "notes.txt"))
    assert (r.returncode, r.stderr.strip()) == (2, f"error: --out {mine / 'notes.txt'}: a file, not a folder")


def test_inspect_a_missing_folder_in_one_line(tmp_path):
    missing, other = str(tmp_path / "nothere"), str(tmp_path)
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", "inspect", missing], capture_output=True, text=True,
                       cwd=ROOT)
    assert (r.returncode, r.stdout, r.stderr.strip()) == (1, "", f"error: {missing}: no such folder")
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", "inspect", other], capture_output=True, text=True,
                       cwd=ROOT)
    assert (r.returncode, r.stderr.strip()) == (
        1, f"error: {other}: no dataset.json (not a synthgen output, or the job has not finished)")
