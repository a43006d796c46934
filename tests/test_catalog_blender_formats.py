"""FBX and .blend heads are catalogued through Blender (the render extra)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from assets_manifest.schema import read_rows
from conftest import run_cli, write_png

MAKE = r"""
import sys, bpy
out, tex = sys.argv[1], sys.argv[2]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.mesh.primitive_uv_sphere_add(radius=0.11, segments=32, ring_count=16)
obj = bpy.context.active_object
obj.name = "head"
mat = bpy.data.materials.new("skin")
nodes, links = mat.node_tree.nodes, mat.node_tree.links
bsdf = nodes["Principled BSDF"]
img = nodes.new("ShaderNodeTexImage")
img.image = bpy.data.images.load(tex)
links.new(img.outputs["Color"], bsdf.inputs["Base Color"])
obj.data.materials.append(mat)
bpy.ops.export_scene.fbx(filepath=out + "/head_fbx.fbx", path_mode="RELATIVE")
bpy.ops.wm.save_as_mainfile(filepath=out + "/head_blend.blend")
"""


def test_fbx_and_blend_heads_are_scanned_with_blender(tmp_path):
    pytest.importorskip("bpy")
    root = tmp_path / "heads"
    root.mkdir()
    tex = write_png(str(root / "skin_albedo.png"))
    script = tmp_path / "make.py"
    script.write_text(MAKE)
    r = subprocess.run([sys.executable, str(script), str(root), tex], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = str(tmp_path / "manifest.parquet")
    r = run_cli("assets", "scan", str(root), "--out", manifest, "--license", "MIT", "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {row["name"]: row for row in read_rows(manifest)}
    assert set(rows) == {"head_fbx", "head_blend"}
    for row in rows.values():
        head = row["head"]
        assert head["faces"] == 32 * 14 * 2 + 2 * 32  # UV sphere as triangles
        # stored coordinates (Blender's FBX exporter writes centimetres, and says so in the header)
        width = head["unit_scale"] * (head["bbox_max"][0] - head["bbox_min"][0])
        assert abs(width - 0.22) < 0.01, head  # metres once the recorded units are applied
        roles = {t["role"]: t["uri"] for t in head["textures"]}
        assert "albedo" in roles and roles["albedo"].endswith("skin_albedo.png"), head["textures"]
    os.remove(tex)
    r = run_cli("assets", "validate", manifest, "-q")
    assert r.returncode == 1 and "albedo texture" in r.stderr
