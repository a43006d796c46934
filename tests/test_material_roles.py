"""Material roles: presets and sidecars recorded by scan, one-line errors, role shaders in Blender.

The head here is a test-written OBJ + MTL with ICT-FaceKit's material names: a skin
quad with an eye-occlusion quad in front of it, plus teeth, gums and lashes slots.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets_manifest import material_roles, schema
from assets_manifest.material_roles import ROLES, preset_role
from conftest import run_cli
from synthgen.locate import AssetPaths

ICT_MTL_NAMES = {  # FaceXModel/ICTFaceModelMaterial.mtl of ICT-FaceKit, all twelve
    "M_BackHead": "skin", "M_EyeBlend": "eye_occlusion", "M_EyeLashes": "eyelashes",
    "M_EyeOcclusion": "eye_occlusion", "M_Face": "skin", "M_GumsTongue": "gums", "M_IrisLeft": "iris",
    "M_IrisRight": "iris", "M_LacrimalFluid": "tear_film", "M_ScleraLeft": "sclera",
    "M_ScleraRight": "sclera", "M_Teeth": "teeth",
}


def write_ict_like_head(folder: str, stem: str = "ict") -> str:
    """A 0.2 m skin quad (M_Face) facing -Y, an eye-occlusion quad 1 cm in front of its middle,
    and small teeth, gums and lash quads behind the skin (slots only)."""
    os.makedirs(folder, exist_ok=True)
    verts, faces = [], []

    def quad(x0, x1, z0, z1, y, mtl):
        i = len(verts) + 1
        verts.extend([(x0, y, z0), (x1, y, z0), (x1, y, z1), (x0, y, z1)])
        faces.append((mtl, (i, i + 1, i + 2, i + 3)))

    quad(-0.1, 0.1, 0.0, 0.25, 0.0, "M_Face")
    quad(-0.04, 0.04, 0.085, 0.165, -0.01, "M_EyeOcclusion")
    quad(-0.01, 0.01, 0.0, 0.01, 0.02, "M_Teeth")
    quad(-0.01, 0.01, 0.0, 0.01, 0.03, "M_GumsTongue")
    quad(-0.01, 0.01, 0.0, 0.01, 0.04, "M_EyeLashes")
    path = os.path.join(folder, f"{stem}.obj")
    with open(path, "w") as f:
        f.write(f"mtllib {stem}.mtl\n")
        for v in verts:
            f.write("v %g %g %g\n" % v)
        current = None
        for mtl, idx in faces:
            if mtl != current:
                f.write(f"usemtl {mtl}\n")
                current = mtl
            f.write("f " + " ".join(map(str, idx)) + "\n")
    with open(os.path.join(folder, f"{stem}.mtl"), "w") as f:  # the FaceKit's own values: Kd 0.5, Tf 0
        for name in ("M_Face", "M_EyeOcclusion", "M_Teeth", "M_GumsTongue", "M_EyeLashes"):
            f.write(f"newmtl {name}\nillum 4\nKd 0.50 0.50 0.50\nTf 0.00 0.00 0.00\nNi 1.00\nNs 18.00\n")
    return path


def _scan(folder: str, manifest: str):
    r = run_cli("assets", "scan", folder, "--out", manifest, "--license", "MIT", "-q")
    return r, ({row["name"]: row for row in schema.read_rows(manifest)} if r.returncode == 0 else {})


def test_presets_know_ict_makehuman_and_artist_names():
    assert {n: preset_role(n) for n in ICT_MTL_NAMES} == ICT_MTL_NAMES
    assert preset_role("M_Face.001") == "skin"  # Blender's duplicate suffix
    assert [preset_role(n) for n in ("Human.body", "Human.eyebrow001", "Human.eyelashes01",
                                     "Human.teeth_base", "Human.tongue01")] == \
        ["skin", "eyebrows", "eyelashes", "teeth", "gums"]
    assert [preset_role(n) for n in ("Head_Skin_MAT", "upper_teeth", "Cornea_L", "lashes", "LeftBrow",
                                     "iris_R", "Sclera", "Hair_cards", "lips", "mystery_slot")] == \
        ["skin", "teeth", "cornea", "eyelashes", "eyebrows", "iris", "sclera", "hair", "lips", None]
    assert set(material_roles.ICT_FACEKIT.values()) | {r for _, r in material_roles.PRESET_GLOBS} <= set(ROLES)


def test_scan_records_roles_and_sidecar_beats_presets(tmp_path):
    heads = tmp_path / "heads"
    write_ict_like_head(str(heads))
    write_ict_like_head(str(heads), "ict2")
    # a per-file sidecar: an exact name and a glob override the presets
    (heads / "ict2.obj.asset.json").write_text(json.dumps(
        {"material_roles": {"M_Teeth": "hidden", "M_Eye*": "tear_film"}}))
    manifest = str(tmp_path / "manifest.parquet")
    r, rows = _scan(str(heads), manifest)
    assert r.returncode == 0, r.stderr
    assert {x["material"]: x["role"] for x in rows["ict"]["head"]["material_roles"]} == {
        "M_Face": "skin", "M_EyeOcclusion": "eye_occlusion", "M_Teeth": "teeth",
        "M_GumsTongue": "gums", "M_EyeLashes": "eyelashes"}
    assert {x["material"]: x["role"] for x in rows["ict2"]["head"]["material_roles"]} == {
        "M_Face": "skin", "M_EyeOcclusion": "tear_film", "M_Teeth": "hidden",
        "M_GumsTongue": "gums", "M_EyeLashes": "tear_film"}
    # the renderer gets them with the located row
    located = AssetPaths.from_catalogs([manifest]).locate(
        {"head_asset_id": rows["ict2"]["asset_id"], "lightings": []})
    assert {"material": "M_Teeth", "role": "hidden"} in located["material_roles"]
    assert located["head_path"].endswith("ict2.obj")


@pytest.mark.parametrize("sidecar, expect", [
    ({"material_roles": {"M_Face": "skni"}}, "material_roles['M_Face'] = 'skni' is not a role"),
    ({"material_roles": {"M_Nose": "skin"}}, "material_roles key 'M_Nose' names no material of this head"),
    ({"material_roles": ["M_Face", "skin"]}, "material_roles must be a JSON object"),
])
def test_bad_material_roles_are_one_line_errors(tmp_path, sidecar, expect):
    heads = tmp_path / "heads"
    path = write_ict_like_head(str(heads))
    (heads / "ict.obj.asset.json").write_text(json.dumps(sidecar))
    r, _ = _scan(str(heads), str(tmp_path / "m.parquet"))
    assert r.returncode == 1
    lines = [line for line in r.stderr.strip().splitlines() if line.startswith("error") or path in line]
    assert any(expect in line and "ict.obj" in line for line in lines), r.stderr
    assert all("Traceback" not in line for line in r.stderr.splitlines())


def test_folder_roles_apply_where_they_match_and_old_manifests_read(tmp_path):
    heads = tmp_path / "heads"
    write_ict_like_head(str(heads))
    # a folder's glob that fits no slot of this head is not an error (it may fit other heads)
    (heads / "_catalog.json").write_text(json.dumps({"material_roles": {"*Gums*": "teeth", "*Beard*": "hair"}}))
    manifest = str(tmp_path / "m.parquet")
    r, rows = _scan(str(heads), manifest)
    assert r.returncode == 0, r.stderr
    assert {"material": "M_GumsTongue", "role": "teeth"} in rows["ict"]["head"]["material_roles"]
    # a manifest written before the field existed still reads, with null roles
    table = pq.read_table(manifest)
    head = table.column("head").combine_chunks()
    old_fields = [f for f in schema.HEAD_TYPE if f.name != "material_roles"]
    old_head = pa.StructArray.from_arrays([head.field(f.name) for f in old_fields], fields=old_fields,
                                          mask=head.is_null())
    old = table.set_column(table.schema.get_field_index("head"), "head", old_head)
    old_path = str(tmp_path / "old.parquet")
    pq.write_table(old, old_path)
    assert schema.read_rows(old_path)[0]["head"]["material_roles"] is None


# ---- Blender ----------------------------------------------------------------------------------

_BLENDER = r"""
import json, sys
import bpy
import numpy as np
from synthgen.render.scene import import_asset
path, roles, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
bpy.ops.wm.read_factory_settings(use_empty=True)
objs = import_asset(path, material_roles=roles)
mats = {}
for o in objs:
    for s in o.material_slots:
        m = s.material
        mats[m.name] = {"role": m.get("synthgen_role"), "nodes": sorted({n.type for n in m.node_tree.nodes}),
                        "sss": max([n.inputs["Subsurface Weight"].default_value for n in m.node_tree.nodes
                                    if n.type == "BSDF_PRINCIPLED"] or [0.0])}
result = {}
if "eye_occlusion" in {m["role"] for m in mats.values()}:
    # a tiny render: camera in front of the face, uniform white world
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"; scene.cycles.device = "CPU"; scene.cycles.samples = 8
    scene.cycles.use_denoising = False
    scene.render.resolution_x = scene.render.resolution_y = 24
    world = bpy.data.worlds.new("w"); scene.world = world
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (1, 1, 1, 1)
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam")); scene.collection.objects.link(cam)
    # aim along skin -> occlusion (whatever axes the importer chose), 0.6 m in front of the occlusion layer
    from mathutils import Vector
    centres = {}
    for o in objs:
        for poly in o.data.polygons:
            name = o.material_slots[poly.material_index].material.get("synthgen_role")
            centres.setdefault(name, []).append(o.matrix_world @ poly.center)
    occ = sum(centres["eye_occlusion"], Vector()) / len(centres["eye_occlusion"])
    skin = sum(centres["skin"], Vector()) / len(centres["skin"])
    cam.location = occ + 0.6 * (occ - skin).normalized()
    cam.rotation_euler = (occ - cam.location).to_track_quat("-Z", "Y").to_euler()
    cam.data.lens = 50
    scene.camera = cam
    scene.render.image_settings.file_format = "OPEN_EXR"; scene.render.filepath = out + ".exr"
    bpy.ops.render.render(write_still=True)
    img = bpy.data.images.load(out + ".exr")
    px = np.array(img.pixels[:]).reshape(24, 24, 4)[..., :3].mean(-1)
    ring = [px[11:13, 6:8], px[11:13, 16:18], px[6:8, 11:13], px[16:18, 11:13]]
    result = {"centre": float(px[11:13, 11:13].mean()), "skin": float(np.mean(ring))}
json.dump(dict(result, mats=mats, modules=sorted(m for m in sys.modules if m.startswith("assets_manifest.heads"))),
          open(out, "w"))
"""


def _in_blender(tmp_path, path: str, roles) -> dict:
    pytest.importorskip("bpy")
    out = str(tmp_path / "result.json")
    r = subprocess.run([sys.executable, "-c", _BLENDER, path, json.dumps(roles), out],
                       capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out) as f:
        return json.load(f)


def test_ict_like_head_gets_role_shaders_and_occlusion_is_not_black(tmp_path):
    path = write_ict_like_head(str(tmp_path / "heads"))
    r, rows = _scan(str(tmp_path / "heads"), str(tmp_path / "m.parquet"))
    assert r.returncode == 0, r.stderr
    res = _in_blender(tmp_path, path, rows["ict"]["head"]["material_roles"])
    by_role = {m["role"]: m for m in res["mats"].values()}
    assert set(by_role) == {"skin", "eye_occlusion", "teeth", "gums", "eyelashes"}
    assert by_role["skin"]["sss"] > 0.5 and by_role["teeth"]["sss"] > 0 and by_role["gums"]["sss"] > 0
    assert "BSDF_TRANSPARENT" in by_role["eye_occlusion"]["nodes"]
    assert "BSDF_PRINCIPLED" not in by_role["eye_occlusion"]["nodes"]
    assert "BSDF_TRANSPARENT" in by_role["eyelashes"]["nodes"]
    # the eye region (skin seen through the occlusion layer) is lit, a little darker than bare skin
    assert res["skin"] > 0.05
    assert 0.6 * res["skin"] < res["centre"] <= 1.02 * res["skin"], res


def test_procedural_head_renders_through_roles_without_the_generator(tmp_path):
    """The GLB names each part's role; the renderer never imports assets_manifest.heads."""
    from assets_manifest.heads import sample_head_params, write_head_glb

    seed = next(s for s in range(50) if sample_head_params(s).hair_coverage >= 0.5)
    path = str(tmp_path / "head.glb")
    write_head_glb(sample_head_params(seed), path)
    res = _in_blender(tmp_path, path, None)  # no manifest: roles from the GLB's material extras
    assert res["modules"] == []
    roles = {m["role"] for m in res["mats"].values()}
    assert roles == {"skin", "iris", "cornea", "scalp", "teeth", "gums"}
    skin = next(m for m in res["mats"].values() if m["role"] == "skin")
    assert skin["sss"] == pytest.approx(sample_head_params(seed).subsurface_weight)
