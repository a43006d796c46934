"""Splits (deterministic, no leakage) and the built-in catalog through the CLI."""

from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest

from assets_manifest import splits
from assets_manifest.schema import read_rows
from conftest import run_cli


def test_split_is_a_pure_function_of_the_id():
    ids = [f"head-{i:016x}" for i in range(2000)]
    a = {i: splits.split_for(i) for i in ids}
    b = {i: splits.split_for(i) for i in reversed(ids)}
    assert a == b
    share = sum(v == "train" for v in a.values()) / len(a)
    assert 0.76 < share < 0.84
    # adding assets never moves existing ones
    more = {i: splits.split_for(i) for i in ids + [f"head-x{i}" for i in range(500)]}
    assert all(more[i] == a[i] for i in ids)


def test_rank_splits_exact_and_nonempty():
    ids = [f"hdri-{i}" for i in range(20)]
    s = splits.rank_splits(ids, (0.8, 0.1, 0.1))
    assert sorted(s.values()).count("train") == 16 and list(s.values()).count("test") == 2
    assert splits.rank_splits(list(reversed(ids))) == s
    small = splits.rank_splits(ids[:5])
    assert set(small.values()) == {"train", "val", "test"}


@pytest.mark.parametrize("text", ["0.8,0.1", "0.8,0.3,0.1", "a,b,c", "-0.1,0.6,0.5"])
def test_bad_fractions(text):
    with pytest.raises(ValueError, match="split fractions"):
        splits.parse_fractions(text)


def test_builtin_catalog_builds_validates_and_is_reproducible(tmp_path):
    pytest.importorskip("bpy")
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    for out in (out_a, out_b):
        r = run_cli("assets", "builtin", "--out", str(out), "--hdris", "10", "--hdri-width", "128", "--heads", "0", "-q")
        assert r.returncode == 0, r.stderr
    ma, mb = str(out_a / "manifest.parquet"), str(out_b / "manifest.parquet")
    assert pq.read_table(ma).equals(pq.read_table(mb))  # same ids, hashes, splits, metadata
    rows = read_rows(ma)
    hdris = [r for r in rows if r["kind"] == "hdri"]
    assert len(hdris) == 18
    names = {r["name"] for r in hdris}
    assert {"city", "courtyard", "forest", "interior", "night", "studio", "sunrise", "sunset"} <= names
    assert all(r["license"] == "CC0-1.0" for r in rows)
    assert {r["split"] for r in hdris} == {"train", "val", "test"}
    proc = [r for r in hdris if r["hdri"]["generator"]]
    assert len(proc) == 10 and all('"style"' in r["hdri"]["generator_params"] for r in proc)
    r = run_cli("assets", "validate", ma, "-q")
    assert r.returncode == 0, r.stderr
    r = run_cli("assets", "preview", ma, "--out", str(tmp_path / "sheet.png"), "-q")
    assert r.returncode == 0 and os.path.getsize(tmp_path / "sheet.png") > 10_000
    # tampering is caught
    victim = os.path.join(out_a, [r["uri"] for r in hdris if r["name"] == "forest"][0])
    with open(victim, "r+b") as f:
        f.seek(2000)
        f.write(b"\0" * 64)
    r = run_cli("assets", "validate", ma, "-q")
    assert r.returncode == 1 and "forest.exr" in r.stderr and "sha256" in r.stderr


def test_cli_help_everywhere():
    for args in (["--help"], ["assets", "--help"], ["assets", "builtin", "--help"], ["assets", "scan", "--help"],
                 ["assets", "validate", "--help"], ["assets", "split", "--help"], ["assets", "filter", "--help"],
                 ["assets", "preview", "--help"]):
        r = run_cli(*args)
        assert r.returncode == 0 and "usage:" in r.stdout, args
    r = run_cli("--help", module="relight.cli")
    assert r.returncode == 0 and "envmap" in r.stdout


def test_relight_envmap_uses_the_shared_convention(tmp_path):
    import numpy as np
    from PIL import Image

    from assets_manifest import hdri_io

    rgb = np.full((64, 128, 3), 0.01, np.float32)
    rgb[32, 63:65] = 1.0  # frontal light (centre columns: the same in the front frame), not clipped in LDR
    hdri_io.write_exr(str(tmp_path / "front.exr"), rgb)
    r = run_cli("envmap", "--env", str(tmp_path / "front.exr"), "--rotate", "90", "--width", "128",
                "--out", str(tmp_path / "e.png"), module="relight.cli")
    assert r.returncode == 0, r.stderr
    img = np.asarray(Image.open(tmp_path / "e.png"))
    assert img.shape == (64, 128, 3)
    y, x = np.unravel_index(np.argmax(img.sum(-1)), img.shape[:2])
    assert x in (95, 96)  # turned 90 degrees: now from image right (u = 0.75)
    r = run_cli("envmap", "--env", str(tmp_path / "missing.exr"), "--out", str(tmp_path / "x.png"), module="relight.cli")
    assert r.returncode == 1 and "missing.exr: file not found" in r.stderr  # missing input data (cli_errors)


def test_builtin_heads_are_catalogued_and_previewed(tmp_path):
    pytest.importorskip("bpy")
    out = tmp_path / "cat"
    r = run_cli("assets", "builtin", "--out", str(out), "--hdris", "3", "--hdri-width", "128", "--heads", "3",
                "--no-blender-hdris", "-q")
    assert r.returncode == 0, r.stderr
    manifest = str(out / "manifest.parquet")
    heads = [row for row in read_rows(manifest) if row["kind"] == "head"]
    assert len(heads) == 3 and {h["split"] for h in heads} == {"train", "val", "test"}
    for h in heads:
        assert h["format"] == "glb" and h["head"]["generator"] == "synthgen-head/1"
        assert 20_000 <= h["head"]["faces"] <= 80_000
        assert {"skin", "eye_L", "eye_R", "cornea_L", "cornea_R"} <= set(h["head"]["parts"])
        assert '"melanin"' in h["head"]["generator_params"]
    assert run_cli("assets", "validate", manifest, "-q").returncode == 0
    r = run_cli("assets", "preview", manifest, "--out", str(tmp_path / "sheet.png"), "--heads", "2", "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    from PIL import Image
    import numpy as np

    sheet = np.asarray(Image.open(tmp_path / "sheet_heads.png").convert("L")).astype(float)
    assert sheet.std() > 10  # rendered heads, not a blank canvas
