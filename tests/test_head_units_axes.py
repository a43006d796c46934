"""Units and axes of head files (issue 14, item 1): catalog keys, checks, renderer, preview.

The bust below is made in the scene convention (metres, +Z up, face toward
-Y: a head with a nose on a neck and shoulders) and written to files in other
units and axes; each file's sidecar declares them. Real Blender throughout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from PIL import Image

from assets_manifest import axes
from assets_manifest.schema import read_rows, write_manifest
from conftest import run_cli

pytest.importorskip("bpy")

MAKE_FBX = r"""
import sys, bpy, numpy as np
src, out = sys.argv[1], sys.argv[2]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.wm.obj_import(filepath=src, forward_axis="Y", up_axis="Z")  # the bust in metres, +Z up, face -Y
# Blender writes FBX in centimetres (header UnitScaleFactor 1), here +Y up and face +Z: as Maya does
bpy.ops.export_scene.fbx(filepath=out, axis_forward="-Z", axis_up="Y")
"""


def bust() -> trimesh.Trimesh:
    """About 0.45 m tall, in the scene frame: metres, +Z up, the nose toward -Y."""
    head = trimesh.creation.icosphere(subdivisions=4, radius=0.1)
    head.apply_translation([0, 0, 0.34])
    nose = trimesh.creation.cone(radius=0.02, height=0.04, sections=24)
    nose.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))  # tip toward -Y
    nose.apply_translation([0, -0.095, 0.33])
    neck = trimesh.creation.cylinder(radius=0.05, height=0.1, sections=24)
    neck.apply_translation([0, 0, 0.22])
    shoulders = trimesh.creation.box([0.42, 0.16, 0.18])
    shoulders.apply_translation([0, 0, 0.09])
    return trimesh.util.concatenate([head, nose, neck, shoulders])


def stored(mesh: trimesh.Trimesh, scale: float, up: str, forward: str) -> trimesh.Trimesh:
    """``mesh`` (scene frame) as a file with these units and axes stores it."""
    m = mesh.copy()
    m.vertices = (m.vertices @ axes.to_scene(up, forward)) / scale  # rows: R^T v
    return m


def write(folder, name: str, mesh: trimesh.Trimesh, sidecar: dict | None) -> str:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    mesh.export(path)
    if sidecar is not None:
        with open(path + ".asset.json", "w") as f:
            json.dump(sidecar, f)
    return path


def scan(folder, manifest) -> subprocess.CompletedProcess:
    return run_cli("assets", "scan", str(folder), "--out", str(manifest), "--license", "CC0-1.0", "-q")


RENDER = r"""
import json, sys
import numpy as np
from synthgen.locate import AssetPaths
from synthgen.render import scene
from synthgen.render.head_preview import builtin_hdri
manifest, out = sys.argv[1], sys.argv[2]
assets = AssetPaths.from_catalogs([manifest])
cfg = {"device": "cpu", "resolution": 48, "samples": 1, "adaptive_threshold": 0, "denoise": False,
       "max_bounces": 2, "passes": [], "threads": 1}
r = scene.GroupRenderer(cfg, tmp_dir=sys.argv[3])
lt = {"hdri_asset_id": "studio", "hdri_path": builtin_hdri("studio.exr"), "rotation_deg": 0.0, "cycles_seed": 0,
      "exposure": 1.0, "white_balance_rgb": [1.0, 1.0, 1.0]}
res = {}
for asset_id in sorted(assets.placements):  # the heads
    row = assets.locate({"head_asset_id": asset_id, "lightings": [], "focal_mm": 50.0, "sensor_mm": 36.0,
                         "framing": 0.8, "yaw_deg": 0.0, "pitch_deg": 0.0, "roll_deg": 0.0})
    r.load_group(row)
    co = scene._world_coords(r.head_objects)
    rgba = r.render_lighting(dict(lt), False)[0]
    name = row["head_path"].rsplit("/", 1)[-1]
    res[name] = {"lo": co.min(0).tolist(), "hi": co.max(0).tolist(), "mask": (rgba[..., 3] > 0.5).tolist(),
                 "placement": [row["head_unit_scale"], row["head_up_axis"], row["head_forward_axis"]]}
json.dump(res, open(out, "w"))
"""


def render_catalog(manifest, tmp_path) -> dict:
    """Each head of the catalog loaded and rendered by GroupRenderer (48 px, 1 sample): scene bbox and mask."""
    script, out = tmp_path / "render.py", tmp_path / "render.json"
    script.write_text(RENDER)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))  # this checkout
    r = subprocess.run([sys.executable, str(script), str(manifest), str(out), str(tmp_path)],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return {k: dict(v, mask=np.array(v["mask"])) for k, v in json.load(open(out)).items()}


def assert_upright_bust(res: dict) -> None:
    lo, hi = np.array(res["lo"]), np.array(res["hi"])
    ref = bust().bounds
    # scaled and turned, never moved: the scene bbox is the bust's, +Z up and the nose (y -0.115) toward -Y
    np.testing.assert_allclose(lo, ref[0], atol=2e-3)
    np.testing.assert_allclose(hi, ref[1], atol=2e-3)
    mask = res["mask"]  # image rows from the top: the head, framed as the renderer frames any bust
    rows, cols = np.nonzero(mask)
    assert 0.15 < mask.mean() < 0.7, mask.mean()
    assert abs(cols.mean() - mask.shape[1] / 2) < 2  # centred left-right
    # upright: a margin above the crown, the neck leaving the frame at the bottom
    assert not mask[:2].any() and mask[-1].any()


def test_bad_sidecar_values_are_one_line_errors_naming_file_and_key(tmp_path):
    root = tmp_path / "heads"
    cases = {
        "a.obj": ({"units": "inch"}, "units 'inch' is not m, cm, mm or a positive number"),
        "b.obj": ({"units": -2}, "units -2 is not m, cm, mm or a positive number"),
        "c.obj": ({"up_axis": "Y"}, "up_axis 'Y' is not one of +X, -X, +Y, -Y, +Z, -Z"),
        "d.obj": ({"up_axis": "+Y", "forward_axis": "+Y"}, "up_axis +Y and forward_axis +Y are the same axis"),
        "e.obj": ({"up_axis": "+Z", "forward_axis": "-Z"}, "up_axis +Z and forward_axis -Z are opposite"),
    }
    for i, (name, (sidecar, _)) in enumerate(cases.items()):
        write(root, name, stored(bust(), 1.0 + 0.01 * i, "+Z", "-Y"), sidecar)
    r = scan(root, tmp_path / "m.parquet")
    assert r.returncode == 1 and not (tmp_path / "m.parquet").exists()
    lines = r.stderr.strip().splitlines()
    for name, (sidecar, message) in cases.items():
        # a bad value names the sidecar file; a bad pair names the head (its keys may come from two files)
        where = str(root / name) + (": " if len(sidecar) == 2 else ".asset.json: ")
        assert [ln for ln in lines if message in ln] == [where + message + ln.split(message, 1)[1]
                                                         for ln in lines if message in ln][:1], (name, lines)
        assert any(ln.startswith(where) and message in ln for ln in lines), (name, lines)
    # a folder _catalog.json is checked the same way, and named
    folder = tmp_path / "f"
    write(folder, "h.obj", bust(), None)
    (folder / "_catalog.json").write_text(json.dumps({"forward_axis": "front"}))
    r = scan(folder, tmp_path / "m2.parquet")
    assert r.returncode == 1
    assert f"{folder / '_catalog.json'}: forward_axis 'front' is not one of +X" in r.stderr


def test_centimetre_obj_and_fbx_scan_validate_and_render_upright_at_size(tmp_path):
    root = tmp_path / "heads"
    obj = write(root, "bust_cm.obj", stored(bust(), 0.01, "+Y", "+Z"), None)  # Maya-like: cm, +Y up, face +Z
    # the same bust as a centimetre FBX; declared units and axes replace its header's
    fbx_src = tmp_path / "raw_m.obj"
    stored(bust(), 1.0, "+Z", "-Y").export(str(fbx_src))
    script = tmp_path / "make_fbx.py"
    script.write_text(MAKE_FBX)
    fbx = str(root / "bust_cm.fbx")
    r = subprocess.run([sys.executable, str(script), str(fbx_src), fbx], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = tmp_path / "manifest.parquet"
    r = scan(root, manifest)  # without a declaration the OBJ is a giant (the FBX's header says cm)
    assert r.returncode == 1 and '"units": "cm"' in r.stderr
    assert "bust_cm.obj: bounding-box diagonal 65" in r.stderr and "bust_cm.fbx" not in r.stderr
    with open(obj + ".asset.json", "w") as f:
        json.dump({"units": "cm"}, f)  # +Y up, face +Z: OBJ's own convention, nothing else to declare
    with open(fbx + ".asset.json", "w") as f:
        json.dump({"units": "cm", "up_axis": "+Y", "forward_axis": "+Z"}, f)  # as the exporter wrote it
    r = scan(root, manifest)
    assert r.returncode == 0, r.stderr
    rows = {row["name"] + "." + row["format"]: row["head"] for row in read_rows(str(manifest))}
    assert [rows["bust_cm.obj"][k] for k in ("unit_scale", "up_axis", "forward_axis")] == [0.01, "+Y", "+Z"]
    assert [rows["bust_cm.fbx"][k] for k in ("unit_scale", "up_axis", "forward_axis")] == [0.01, "+Y", "+Z"]
    r = run_cli("assets", "validate", str(manifest), "-q")
    assert r.returncode == 0, r.stderr
    for name, res in render_catalog(manifest, tmp_path).items():
        assert res["placement"][0] == 0.01, name
        assert_upright_bust(res)


def test_the_same_bust_as_ply_obj_glb_renders_the_same_way(tmp_path):
    root = tmp_path / "heads"
    zup = stored(bust(), 1.0, "+Z", "-Y")  # the Z-up bust
    declared = {"up_axis": "+Z", "forward_axis": "-Y"}
    for ext in ("ply", "obj", "glb"):
        write(root, f"bust.{ext}", zup, declared)
    # and once more in glTF's own frame, with no sidecar at all
    write(root / "native", "bust_native.glb", stored(bust(), 1.0, "+Y", "+Z"), None)
    manifest = tmp_path / "manifest.parquet"
    r = scan(root, manifest)
    assert r.returncode == 0, r.stderr
    res = render_catalog(manifest, tmp_path)
    assert sorted(res) == ["bust.glb", "bust.obj", "bust.ply", "bust_native.glb"]
    ref = res["bust.ply"]["mask"]
    for name, one in res.items():
        assert_upright_bust(one)
        iou = (one["mask"] & ref).sum() / (one["mask"] | ref).sum()
        assert iou > 0.97, (name, iou)


@pytest.fixture(scope="module")
def procedural_head(tmp_path_factory) -> str:
    from assets_manifest.heads import sample_head_params, write_head_glb

    path = str(tmp_path_factory.mktemp("proc") / "head.glb")
    write_head_glb(sample_head_params(3), path)
    return path


def test_facing_check_passes_procedural_heads_and_flags_them_turned_around(procedural_head, tmp_path):
    good = stored(bust(), 1.0, "+Y", "+Z")
    points = trimesh.load(procedural_head, force="mesh", process=False).vertices
    native = {"unit_scale": 1.0, "up_axis": "+Y", "forward_axis": "+Z"}
    assert axes.facing_problem(points, native, "head.glb") is None
    assert axes.facing_problem(good.vertices, native, "bust.glb") is None
    turned = dict(native, forward_axis="-Z")  # the same file declared the other way round
    assert "head.glb: the face does not look along forward_axis -Z" in axes.facing_problem(points, turned, "head.glb")
    # scan and validate: the head turned 180 degrees about its up axis, written as a plain GLB
    root = tmp_path / "heads"
    mesh = trimesh.load(procedural_head, force="mesh", process=False)
    mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi, [0, 1, 0]))
    write(root, "turned.glb", mesh, None)
    manifest = tmp_path / "m.parquet"
    r = scan(root, manifest)
    assert r.returncode == 1 and f"{root / 'turned.glb'}: the face does not look along forward_axis +Z" in r.stderr
    with open(root / "turned.glb.asset.json", "w") as f:
        json.dump({"forward_axis": "-Z"}, f)
    assert scan(root, manifest).returncode == 0
    assert run_cli("assets", "validate", str(manifest), "-q").returncode == 0
    rows = read_rows(str(manifest))
    rows[0]["head"]["forward_axis"] = "+Z"  # a manifest that says otherwise is flagged by validate
    write_manifest(rows, str(manifest))
    r = run_cli("assets", "validate", str(manifest), "-q")
    assert r.returncode == 1 and "turned.glb: the face does not look along forward_axis +Z" in r.stderr


def test_manifests_without_units_and_axes_still_read(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from assets_manifest import schema

    root = tmp_path / "heads"
    write(root, "bust.obj", stored(bust(), 1.0, "+Y", "+Z"), None)
    manifest = str(tmp_path / "m.parquet")
    assert scan(root, manifest).returncode == 0
    table = pq.read_table(manifest)
    old_head = pa.struct([f for f in schema.HEAD_TYPE if f.name not in axes.KEYS + ("unit_scale",)])
    heads = table.column("head").cast(old_head)
    old = table.set_column(table.schema.get_field_index("head"), pa.field("head", old_head), heads)
    pq.write_table(old.replace_schema_metadata(table.schema.metadata), manifest)
    row = read_rows(manifest)[0]
    assert row["head"]["unit_scale"] is None and row["head"]["up_axis"] is None
    assert run_cli("assets", "validate", manifest, "-q").returncode == 0  # the format's own convention


def test_preview_draws_imported_heads(tmp_path):
    root = tmp_path / "cat"
    write(root / "heads", "bust_cm.obj", stored(bust(), 0.01, "+Z", "-Y"),
          {"units": "cm", "up_axis": "+Z", "forward_axis": "-Y"})
    from assets_manifest import hdri_io
    from conftest import sky

    hdri_io.write_exr(str(root / "sky.exr"), sky())
    manifest = tmp_path / "manifest.parquet"
    assert scan(root, manifest).returncode == 0
    out = tmp_path / "preview.png"
    r = run_cli("assets", "preview", str(manifest), "--out", str(out), "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    heads_png = tmp_path / "preview_heads.png"
    assert "1 heads" in r.stdout and heads_png.exists()
    img = np.asarray(Image.open(heads_png).convert("RGB")).astype(int)
    tile = img[:160, :160]
    background = np.array([58, 60, 64])
    fg = np.abs(tile - background).sum(axis=-1) > 30
    assert 0.1 < fg.mean() < 0.8, fg.mean()  # the head is drawn, and framed
    rows, cols = np.nonzero(fg)
    assert abs(cols.mean() - 80) < 10 and fg[-1].sum() > fg[rows.min() + 3].sum()  # centred, upright
