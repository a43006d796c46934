"""scan + validate through the CLI on real files, and every bad-input class rejected with its message."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from assets_manifest import hdri_io
from assets_manifest.schema import read_rows
from conftest import head_mesh, run_cli, sky, write_obj_with_textures


def test_scan_and_validate_good_assets(good_assets, tmp_path):
    manifest = str(tmp_path / "manifest.parquet")  # beside the assets folder: uris are relative
    r = run_cli("assets", "scan", good_assets, "--out", manifest, "-q")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in read_rows(manifest)}
    assert set(rows) == {"sky", "sky2", "head01", "head02", "head03"}
    assert rows["sky"]["kind"] == "hdri" and rows["head01"]["kind"] == "head"
    assert rows["sky"]["hdri"]["width"] == 64 and rows["sky"]["hdri"]["height"] == 32
    # the bright pixel is centred at u=0.508, v=0.266 of the panorama: in the front frame
    # (mirrored, as a frontal camera sees it) azimuth -2.8, elevation 42.2 degrees
    assert abs(rows["sky"]["hdri"]["dominant_azimuth_deg"] + 2.8) < 2
    assert abs(rows["sky"]["hdri"]["dominant_elevation_deg"] - 42.2) < 2
    assert rows["sky"]["hdri"]["dynamic_range_stops"] > 6
    roles = sorted(t["role"] for t in rows["head01"]["head"]["textures"])
    assert roles == ["albedo", "normal", "roughness"]
    assert all(t["sha256"] for t in rows["head01"]["head"]["textures"])
    # trimesh embeds a base-colour image in the GLB; the sibling file adds subsurface
    tex03 = {t["role"]: t["uri"] for t in rows["head03"]["head"]["textures"]}
    assert tex03["albedo"].startswith("embedded:") and tex03["subsurface"].endswith("head03_subsurface.png")
    assert rows["head01"]["head"]["faces"] == len(head_mesh().faces)
    assert rows["head02"]["license"] == "CC-BY-4.0" and rows["head02"]["split"] == "test"
    assert rows["sky"]["license"] == "CC0-1.0" and rows["sky"]["source"] == "test fixtures"
    assert all(row["asset_id"].startswith(row["kind"] + "-") for row in rows.values())
    assert rows["sky"]["uri"] == "assets/hdri/sky.exr"  # relative: the catalog folder can move
    r = run_cli("assets", "validate", manifest, "-q")
    assert r.returncode == 0, r.stderr
    assert "5 asset(s) OK" in r.stdout


def test_asset_ids_are_content_derived(good_assets, tmp_path):
    a, b = str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")
    moved = str(tmp_path / "moved")
    shutil.copytree(good_assets, moved)
    assert run_cli("assets", "scan", good_assets, "--out", a, "-q").returncode == 0
    assert run_cli("assets", "scan", moved, "--out", b, "-q").returncode == 0
    ids_a = {r["name"]: r["asset_id"] for r in read_rows(a)}
    assert ids_a == {r["name"]: r["asset_id"] for r in read_rows(b)}
    same = ["asset_id", "kind", "name", "sha256", "bytes", "license", "split", "hdri"]
    assert pq.read_table(a).select(same).equals(pq.read_table(b).select(same))


def test_validate_catches_changed_and_truncated_files(good_assets, tmp_path):
    manifest = str(tmp_path / "manifest.parquet")
    assert run_cli("assets", "scan", good_assets, "--out", manifest, "-q").returncode == 0
    exr = os.path.join(good_assets, "hdri", "sky.exr")
    with open(exr, "rb") as f:
        data = f.read()
    with open(exr, "wb") as f:
        f.write(data[: len(data) // 2])
    os.remove(os.path.join(good_assets, "heads", "head01_albedo.png"))
    r = run_cli("assets", "validate", manifest, "-q")
    assert r.returncode == 1
    assert f"{exr}: " in r.stderr and "truncated" in r.stderr and "sha256" in r.stderr
    assert "unreadable OpenEXR" in r.stderr
    assert "albedo texture" in r.stderr and "missing" in r.stderr


def _bad_asset_cases(root: str) -> dict[str, tuple[str, str]]:
    """name -> (file, expected message fragment); each file is bad in exactly one way."""
    os.makedirs(root, exist_ok=True)
    cases = {}

    def exr(name, rgb):
        path = os.path.join(root, name)
        hdri_io.write_exr(path, rgb, half=False)
        return path

    p = os.path.join(root, "corrupt.exr")
    with open(p, "wb") as f:
        f.write(b"\x76\x2f\x31\x01" + os.urandom(300))
    cases["corrupt"] = (p, "unreadable OpenEXR")
    good = exr("tmp_good.exr", sky())
    with open(good, "rb") as f:
        data = f.read()
    p = os.path.join(root, "truncated.exr")
    with open(p, "wb") as f:
        f.write(data[: len(data) // 3])
    os.remove(good)
    cases["truncated"] = (p, "unreadable OpenEXR")
    x = sky(); x[3, 4, 1] = np.nan
    cases["nan"] = (exr("nan.exr", x), "NaN or Inf")
    x = sky(); x[5, 5, 0] = np.inf
    cases["inf"] = (exr("inf.exr", x), "NaN or Inf")
    x = sky(); x[1, 1] = -2.0
    cases["negative"] = (exr("negative.exr", x), "negative")
    cases["aspect"] = (exr("square.exr", np.ones((32, 32, 3), np.float32)), "not 2:1")
    cases["black"] = (exr("black.exr", np.zeros((32, 64, 3), np.float32)), "black")
    p = os.path.join(root, "empty.obj")
    with open(p, "w") as f:
        f.write("# nothing here\nv 0 0 0\n")
    cases["empty mesh"] = (p, "mesh is empty")
    cases["missing texture"] = (write_obj_with_textures(os.path.join(root, "tex"), "head09", missing="normal"),
                                "normal texture")
    p = os.path.join(root, "giant.ply")
    big = head_mesh(); big.apply_scale(100.0)  # centimetres
    big.export(p)
    cases["scale"] = (p, "centimetres")
    return cases


def test_each_bad_input_is_rejected_with_its_message(tmp_path):
    cases = _bad_asset_cases(str(tmp_path / "bad"))
    for name, (path, fragment) in cases.items():
        folder = tmp_path / "one" / name.replace(" ", "_")
        folder.mkdir(parents=True)
        for src in [path] + [os.path.join(os.path.dirname(path), f) for f in os.listdir(os.path.dirname(path))
                             if f.startswith(os.path.splitext(os.path.basename(path))[0] + ".") or
                             f.startswith(os.path.splitext(os.path.basename(path))[0] + "_")]:
            if os.path.isfile(src):
                shutil.copy(src, folder)
        manifest = folder / "manifest.parquet"
        manifest.write_bytes(b"previous manifest")  # must survive a failed scan
        r = run_cli("assets", "scan", str(folder), "--out", str(manifest), "--license", "CC0-1.0", "-q")
        assert r.returncode == 1, (name, r.stdout, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if ln and not ln.startswith("error:")]
        assert len(lines) == 1, (name, r.stderr)
        assert os.path.basename(path) in lines[0] and fragment in lines[0], (name, lines[0])
        assert "nothing written" in r.stderr
        assert manifest.read_bytes() == b"previous manifest", name


def test_unknown_licence_is_rejected(good_assets, tmp_path):
    with open(os.path.join(good_assets, "hdri", "sky.exr.asset.json"), "w") as f:
        json.dump({"license": "do-what-you-want"}, f)
    r = run_cli("assets", "scan", good_assets, "--out", str(tmp_path / "m.parquet"), "-q")
    assert r.returncode == 1
    assert "sky.exr: unknown licence 'do-what-you-want'" in r.stderr
    assert not (tmp_path / "m.parquet").exists()


def test_missing_licence_and_bad_sidecar_key(tmp_path):
    root = tmp_path / "a"
    root.mkdir()
    hdri_io.write_exr(str(root / "s.exr"), sky())
    r = run_cli("assets", "scan", str(root), "--out", str(tmp_path / "m.parquet"), "-q")
    assert r.returncode == 1 and "s.exr: no licence" in r.stderr
    (root / "s.exr.asset.json").write_text(json.dumps({"licence": "CC0-1.0"}))
    r = run_cli("assets", "scan", str(root), "--out", str(tmp_path / "m.parquet"), "-q")
    assert r.returncode == 1 and "unknown sidecar key(s) licence" in r.stderr


def test_skip_bad_writes_the_good_ones(good_assets, tmp_path):
    hdri_io.write_exr(os.path.join(good_assets, "hdri", "square.exr"), np.ones((16, 16, 3), np.float32))
    manifest = str(tmp_path / "m.parquet")
    r = run_cli("assets", "scan", good_assets, "--out", manifest, "--skip-bad", "-q")
    assert r.returncode == 1 and "square.exr" in r.stderr
    assert len(read_rows(manifest)) == 5


def test_licence_filter(good_assets, tmp_path):
    manifest, kept = str(tmp_path / "m.parquet"), str(tmp_path / "k.parquet")
    assert run_cli("assets", "scan", good_assets, "--out", manifest, "-q").returncode == 0
    r = run_cli("assets", "filter", manifest, "--allow-license", "cc0", "--out", kept, "-q")
    assert r.returncode == 0, r.stderr
    assert {row["license"] for row in read_rows(kept)} == {"CC0-1.0"}
    assert len(read_rows(kept)) == 4
    r = run_cli("assets", "filter", manifest, "--allow-license", "wtfpl", "--out", kept, "-q")
    assert r.returncode == 2 and "unknown licence 'wtfpl'" in r.stderr


def test_not_a_manifest(tmp_path):
    p = tmp_path / "x.parquet"
    p.write_bytes(b"nope")
    r = run_cli("assets", "validate", str(p))
    assert r.returncode == 1 and "not a Parquet manifest" in r.stderr and str(p) in r.stderr  # corrupt input: 1


def test_byte_identical_heads_name_both_files(good_assets, tmp_path):
    heads = os.path.join(good_assets, "heads")
    first, second = os.path.join(heads, "head02.ply"), os.path.join(heads, "zcopy.ply")
    shutil.copy(first, second)  # same bytes, so the same content-derived asset_id
    manifest = str(tmp_path / "m.parquet")
    r = run_cli("assets", "scan", good_assets, "--out", manifest, "-q")
    assert r.returncode == 1, r.stderr  # bad input data, not a usage error
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith("error:")]
    assert len(lines) == 1 and f"{second}: same content as {first} (head-" in lines[0], r.stderr
    assert "nothing written" in r.stderr and not os.path.exists(manifest)
    r = run_cli("assets", "scan", good_assets, "--out", manifest, "--skip-bad", "-q")
    assert r.returncode == 1, r.stderr
    assert f"skipped 1 file(s) (--skip-bad): {second}" in r.stderr
    rows = read_rows(manifest)
    assert len(rows) == 5 and "zcopy" not in {row["name"] for row in rows}  # the first is kept


@pytest.mark.parametrize("umask", [0o022, 0o002], ids=["umask022", "umask002"])
def test_manifest_is_readable_like_any_file(good_assets, tmp_path, umask):
    manifest = str(tmp_path / "manifest.parquet")
    old = os.umask(umask)  # the CLI subprocess inherits it
    try:
        r = run_cli("assets", "scan", good_assets, "--out", manifest, "-q")
        hdri_io.write_exr(str(tmp_path / "written.exr"), sky())  # the other mkstemp + rename site
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    assert oct(os.stat(manifest).st_mode & 0o777) == oct(0o666 & ~umask)  # not mkstemp's 0600
    assert oct(os.stat(tmp_path / "written.exr").st_mode & 0o777) == oct(0o666 & ~umask)
