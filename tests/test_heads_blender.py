"""Procedural head GLBs in Blender: import, materials from the extras, one tiny Cycles render."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

bpy = pytest.importorskip("bpy")

from assets_manifest.heads import sample_head_params, write_head_glb  # noqa: E402
from synthgen.render.head_materials import import_head_glb  # noqa: E402
from synthgen.render.head_preview import builtin_hdri, render_head_sheet  # noqa: E402


@pytest.fixture(scope="module")
def glb(tmp_path_factory) -> tuple[str, dict]:
    seed = next(s for s in range(50) if sample_head_params(s).hair_coverage >= 0.5)
    path = str(tmp_path_factory.mktemp("heads") / f"head_{seed}.glb")
    return path, write_head_glb(sample_head_params(seed), path)


def _principled(obj):
    return next(n for n in obj.data.materials[0].node_tree.nodes if n.type == "BSDF_PRINCIPLED")


def test_glb_imports_with_parts_and_materials(glb):
    path, meta = glb
    bpy.ops.wm.read_factory_settings(use_empty=True)
    objects = import_head_glb(path)
    assert sorted(objects) == sorted(meta["parts"])
    skin = objects["skin"]
    # the importer undoes glTF's +Y up: back in the generator's +Z-up frame
    co = np.array([v.co[:] for v in skin.data.vertices])
    assert co.min(axis=0) == pytest.approx(meta["bbox_min"], abs=1e-4)
    assert co[:, 2].max() <= meta["bbox_max"][2] + 1e-6
    assert skin.get("synthgen_head")["params"]["seed"] == meta["params"]["seed"]
    bsdf = _principled(skin)
    assert bsdf.subsurface_method == "RANDOM_WALK_SKIN"
    assert bsdf.inputs["Subsurface Weight"].default_value == pytest.approx(meta["params"]["subsurface_weight"])
    assert bsdf.inputs["Subsurface Scale"].default_value == pytest.approx(
        meta["params"]["subsurface_radius_mm"] * 1e-3 * meta["params"]["head_scale"])
    cornea = _principled(objects["cornea_L"])
    assert cornea.inputs["Transmission Weight"].default_value == 1.0
    assert cornea.inputs["Roughness"].default_value == 0.0
    # one role-based path: each part's material is built for the role its GLB material declares
    assert objects["eye_L"].data.materials[0]["synthgen_role"] == "iris"
    assert objects["teeth_upper"].data.materials[0]["synthgen_role"] == "teeth"
    assert objects["mouth"].data.materials[0]["synthgen_role"] == "gums"
    assert objects["scalp"].data.materials[0].name.startswith("scalp")
    # eyeball UV v is the angle from the gaze axis / pi: v ~ 0 looks out of the face (-Y)
    eye = objects["eye_L"]
    v = np.array([d.uv[1] for d in eye.data.uv_layers[0].data])
    y = np.array([eye.data.vertices[lp.vertex_index].co[1] for lp in eye.data.loops])
    assert y[v < 0.05].mean() < y.mean() - 0.009 and y[v > 0.95].mean() > y.mean() + 0.009


def test_tiny_render_shows_a_head_in_the_middle(glb, tmp_path):
    path, _ = glb
    out = render_head_sheet([path], builtin_hdri("courtyard.exr"), str(tmp_path / "sheet.png"),
                            resolution=64, samples=8, columns=1)
    img = np.asarray(Image.open(out).convert("RGB")).astype(float)
    tile = img[:64, :64]
    background = np.array([58, 60, 64], dtype=float)
    centre = tile[20:44, 22:42]
    assert np.abs(centre - background).sum(axis=-1).mean() > 40   # the head covers the middle
    assert tile.max() > 80                                           # lit, not black
    corner = tile[:6, :6]
    assert np.abs(corner - background).sum(axis=-1).mean() < 10    # background stays clear
