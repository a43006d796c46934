"""Plans and shards name assets by id, never by where the catalog is: same job, same bytes, anywhere.

Two copies of the tests' catalog at two paths give byte-identical plans and
(with real Blender) byte-identical shards; a moved catalog resumes the same
plan, and the renderer finds the files in it; an older synthgen's plan is
refused in one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from synthgen import job as jobs, plan as planning
from synthgen.locate import AssetNotFound, AssetPaths

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = os.path.join(ROOT, "jobs", "quickstart.toml")
TINY = ["render.resolution=32", "render.samples=2", "render.passes=[]", "splits.train=1", "splits.val=0",
        "splits.test=0", "lighting.hdris_per_group=2", "lighting.rotations_per_hdri=1", "lighting.env_width=32"]


def synthgen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthgen.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900)


def sets(manifest: str, extra=()) -> list[str]:
    return [a for s in [f'job.catalogs=["{manifest}"]', *TINY, *extra] for a in ("--set", s)]


@pytest.fixture
def two_catalogs(catalog, tmp_path) -> tuple[str, str]:
    """The same catalog folder copied to two unrelated places (the manifest's uris are relative)."""
    a = tmp_path / "here" / "cat"
    b = tmp_path / "somewhere" / "else" / "catalog_copy"
    for dst in (a, b):
        shutil.copytree(os.path.dirname(catalog), dst)
    return str(a / "manifest.parquet"), str(b / "manifest.parquet")


def test_plan_is_the_same_file_wherever_the_catalog_lives(two_catalogs, tmp_path):
    outs = []
    for i, manifest in enumerate(two_catalogs):
        out = tmp_path / f"plan{i}"
        r = synthgen("plan", QUICK, "--out", str(out), *sets(manifest, ["splits.val=2", "splits.test=2"]))
        assert r.returncode == 0, r.stderr
        outs.append((out / "plan.parquet").read_bytes())
    assert outs[0] == outs[1]
    for manifest in two_catalogs:  # no trace of either location, in the rows or the metadata
        assert os.path.dirname(manifest).encode() not in outs[0]
    rows = pq.read_table(tmp_path / "plan0" / "plan.parquet").to_pylist()
    assert all(r["head_name"].startswith("ball") for r in rows)  # the catalog's names, for people and captions
    assert {lt["hdri_name"] for r in rows for lt in r["lightings"]} <= {
        "studio", "clear_sky", "rim", "overcast", "hazy_sky", "studio_b"}


def test_assets_are_located_in_the_jobs_catalogs_at_render_time(two_catalogs):
    job = jobs.load(QUICK, [f'job.catalogs=["{two_catalogs[0]}"]', *TINY])
    row = planning.make_plan(job).to_pylist()[0]
    for manifest in two_catalogs:
        located = AssetPaths.from_catalogs([manifest]).locate(row)
        folder = os.path.dirname(manifest)
        assert located["head_path"].startswith(folder + os.sep) and os.path.isfile(located["head_path"])
        for lt in located["lightings"]:
            assert lt["hdri_path"] == os.path.join(folder, "hdri", lt["hdri_name"] + ".exr")
        placed = ("head_unit_scale", "head_up_axis", "head_forward_axis")  # the catalog's units and axes
        assert [located[k] for k in placed] == [1.0, "+Y", "+Z"]  # glTF's own: metres, +Y up, face +Z
        added = ("head_path", "lightings", "material_roles", "head_textures", "head_generator_params", *placed)
        assert {k: v for k, v in located.items() if k not in added} == \
            {k: v for k, v in row.items() if k != "lightings"}
        assert set(located) - set(row) == set(added) - {"lightings"}  # the head's manifest fields, for materials
    with pytest.raises(AssetNotFound) as e:
        AssetPaths.from_catalogs([two_catalogs[1]]).locate(dict(row, head_asset_id="head-0123456789abcdef"))
    assert str(e.value).startswith(f"head-0123456789abcdef: planned, but none of the job's catalogs lists it "
                                   f"({two_catalogs[1]})") and "\n" not in str(e.value)


def test_an_older_synthgens_plan_is_refused_in_one_line(catalog, tmp_path):
    out = tmp_path / "old"
    assert synthgen("plan", QUICK, "--out", str(out), *sets(catalog)).returncode == 0
    table = pq.read_table(out / "plan.parquet")
    meta = {**table.schema.metadata, b"plan_version": b"synthgen-plan/1"}
    pq.write_table(table.replace_schema_metadata(meta), out / "plan.parquet")
    r = synthgen("render", QUICK, "--out", str(out), "--local", "-q", *sets(catalog))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "plan_version 'synthgen-plan/1'" in r.stderr and planning.PLAN_VERSION in r.stderr and "--out" in r.stderr
    assert not (out / "shards").exists()


def _tars(out: str) -> dict[str, bytes]:
    folder = os.path.join(out, "shards")
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


def test_shards_are_byte_identical_wherever_the_catalog_lives_and_resume_after_a_move(two_catalogs, tmp_path):
    pytest.importorskip("bpy")
    from synthgen import dataset

    outs = [str(tmp_path / "ds_a"), str(tmp_path / "ds_b")]
    for manifest, out in zip(two_catalogs, outs):
        r = synthgen("render", QUICK, "--out", out, "--local", "-q", *sets(manifest))
        assert r.returncode == 0, r.stderr[-3000:]
    a, b = _tars(outs[0]), _tars(outs[1])
    assert list(a) == ["train-000000.tar"] and a == b
    for name in ("plan.parquet", "index.parquet"):
        assert open(os.path.join(outs[0], name), "rb").read() == open(os.path.join(outs[1], name), "rb").read(), name
    (sample,) = dataset.iter_samples(outs[0])
    meta = json.loads(sample["json"])
    assert meta["format"] == "relight-wds/2"
    assert meta["head"]["name"].startswith("ball") and meta["head"]["asset_id"].startswith("head-")
    for lt in meta["lightings"]:
        assert lt["hdri_asset_id"].startswith("hdri-") and lt["hdri_name"] and "hdri_uri" not in lt
    for manifest in two_catalogs:
        assert os.path.dirname(manifest).encode() not in a["train-000000.tar"]

    # move catalog A away: the same command with its new location resumes (the same plan), keeping the shard
    moved = str(tmp_path / "moved" / "cat")
    shutil.move(os.path.dirname(two_catalogs[0]), moved)
    manifest = os.path.join(moved, "manifest.parquet")
    r = synthgen("render", QUICK, "--out", outs[0], "--local", "-q", *sets(manifest))
    assert r.returncode == 0 and "different plan" not in r.stderr, r.stderr[-3000:]
    assert _tars(outs[0]) == a
    # and a shard rendered again after the move reads its assets where the catalog is now (the old folder is gone)
    os.remove(os.path.join(outs[0], "completed", "train-000000.json"))
    os.remove(os.path.join(outs[0], "shards", "train-000000.tar"))
    r = synthgen("render", QUICK, "--out", outs[0], "--local", "-q", *sets(manifest))
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.load(open(os.path.join(outs[0], "dataset.json")))["counts"]["failed"] == 0
    assert _tars(outs[0]) == a
