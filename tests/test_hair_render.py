"""Scalp hair through real bpy: every style grows and shows, the scalp region's sources, determinism, errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from PIL import Image

bpy = pytest.importorskip("bpy")

from assets_manifest.heads import sample_head_params  # noqa: E402
from synthgen.render import hair, head_preview, role_materials  # noqa: E402
from synthgen.render import scene as render_scene  # noqa: E402

SPEC = {"version": 1, "seed": 11, "style": "medium", "style_u": 0.4, "density": 0.9, "length_mm": 120.0,
        "clumping": 0.5, "curl": 0.1, "curl_radius_mm": 15.0, "frizz": 0.1, "parting": "left", "tie": "none",
        "hairline": {"recession": 0.1, "shape": "rounded", "height_mm": 60.0}, "greying": 0.1,
        "melanin": 0.9, "redness": 0.1, "roughness": 0.3, "coat": 0.1,
        "brows": {"density": 0.8, "thickness_mm": 9.0, "length_mm": 8.0, "arch": 0.5, "melanin": 0.9},
        "lashes": {"length_mm": 9.0, "count": 100, "curl": 0.5},
        "beard": {"style": "none", "length_mm": 0.0, "density": 0.0},
        "facial": False, "density_scale": 0.08}
STYLE_KEYS = {"shaved": dict(length_mm=0.8, clumping=0.0, curl=0.0, frizz=0.0),
              "buzz": dict(length_mm=4.0, clumping=0.0, curl=0.0),
              "short": dict(length_mm=45.0, parting="none"),
              "medium": {},
              "long": dict(length_mm=300.0, parting="centre"),
              "curly": dict(length_mm=120.0, curl=0.9, curl_radius_mm=5.0, frizz=0.4),
              "tied_back": dict(length_mm=250.0, tie="ponytail", parting="none")}


def spec(style: str = "medium", **over) -> dict:
    s = copy.deepcopy(SPEC)
    s.update(STYLE_KEYS[style], style=style)
    s.update(over)
    return s


@pytest.fixture(scope="module")
def bald_glb(tmp_path_factory) -> str:
    """A procedural head without its scalp part (hair grows on the skin estimate)."""
    import trimesh

    from assets_manifest.heads import export

    seed = next(s for s in range(50) if sample_head_params(s).hair_coverage == 0.0)
    path = str(tmp_path_factory.mktemp("heads") / f"head_{seed}.glb")
    scene, record = export.head_scene(sample_head_params(seed))
    scene.delete_geometry("scalp")
    record["parts"] = [p for p in record["parts"] if p != "scalp"]
    with open(path, "wb") as f:
        f.write(trimesh.exchange.gltf.export_glb(scene, include_normals=True, unitize_normals=False,
                                                 tree_postprocessor=export._add_node_extras(record)))
    return path


def _import(path: str) -> list:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    objs = render_scene.import_asset(path)
    bpy.context.view_layer.update()
    return objs


def _render(path: str, s: dict | None, tmp_path, name: str) -> np.ndarray:
    head_preview._reset_scene(head_preview.builtin_hdri("courtyard.exr"), 40, 2)
    bpy.context.scene.cycles.use_denoising = False
    options = {"generator_params": {"hair": s}} if s else None
    out = head_preview.render_head(path, str(tmp_path / f"{name}.png"), 0.0, options)
    assert not bpy.data.hair_curves, "the preview removes the hair it grew"
    return np.asarray(Image.open(out).convert("RGBA")).astype(float) / 255


def _check_styles(path: str, styles, tmp_path) -> None:
    bare = _render(path, None, tmp_path, "bare")
    top = slice(0, 12)  # the crown and forehead rows of a front view
    lum = lambda im: (im[top, :, :3].mean(axis=2) * im[top, :, 3]).sum() / max(im[top, :, 3].sum(), 1)  # noqa: E731
    for style in styles:
        img = _render(path, spec(style), tmp_path, style)
        if style in ("shaved", "buzz"):
            # nearly no strands: the tinted scalp shell darkens the skin in the hair's colour
            assert lum(img) < lum(bare) - 0.02, style
        else:
            # dark hair over the crown: darker there, and at least as much of it covered
            assert lum(img) < lum(bare) - 0.03, style
            assert img[top, :, 3].sum() >= bare[top, :, 3].sum() - 1.0, style


def test_hair_shows_above_the_forehead(bald_glb, tmp_path):
    _check_styles(bald_glb, ("buzz", "medium"), tmp_path)


@pytest.mark.slow
def test_every_style_renders_and_shows(bald_glb, tmp_path):
    _check_styles(bald_glb, hair.STYLES, tmp_path)


def test_points_are_deterministic_and_stay_outside_the_head(bald_glb):
    objs = _import(bald_glb)
    a = hair.build_strands(spec("long"), objs)
    b = hair.build_strands(spec("long"), objs)
    assert a.points.tobytes() == b.points.tobytes() and a.grey.tobytes() == b.grey.tobytes()
    made = hair.grow(spec("curly"), objs, None)
    made2 = hair.grow(spec("curly"), objs, None)
    assert hair.points_digest(made) == hair.points_digest(made2)
    assert hair.points_digest(made) != hair.points_digest(hair.grow(spec("curly", seed=12), objs, None))
    # every point past the root at or above the head's surface in its direction from the skull's centre
    pts = a.points[:, 1:].reshape(-1, 3)
    s, surf = a.skull.surface(pts[pts[:, 2] >= a.skull.chin_z])
    assert (s >= surf - 1e-9).all()
    assert a.region.source == "skin estimate"
    # roots inside the hairline: above the brows, below the top
    roots = a.points[:, 0]
    assert roots[:, 2].min() > a.skull.centre[2] - 0.09 and (roots[:, 2] > a.region.brow_z).mean() > 0.5
    front = roots[(roots[:, 1] < a.skull.centre[1]) & (np.abs(roots[:, 0] - a.skull.centre[0]) < 0.015)]
    assert front[:, 2].min() > a.region.brow_z + 0.05  # no hair on the forehead (hairline 60 mm above the brow)


def test_strand_counts_follow_density_and_style(bald_glb):
    objs = _import(bald_glb)
    n = {st: len(hair.build_strands(spec(st), objs).points) for st in ("buzz", "long")}
    assert n["buzz"] > n["long"]
    half = hair.build_strands(spec("long", density_scale=0.04), objs)
    assert abs(len(half.points) - n["long"] / 2) <= 0.05 * n["long"]
    assert hair.build_strands(spec("long"), objs).points.shape[1] > hair.build_strands(spec("short"), objs).points.shape[1]


def _mark_top(objs, name: str, z_above: float, role: str | None) -> None:
    """Give the skin's faces above ``z_above`` a material ``name`` (role ``role``)."""
    skin = next(o for o in objs if o.type == "MESH" and o.material_slots
                and o.material_slots[0].material["synthgen_role"] == "skin")
    mat = role_materials.build("scalp", role_materials.role_params("scalp", None, {}, False), {},
                               "RANDOM_WALK_SKIN", name) if role else bpy.data.materials.new(name)
    skin.data.materials.append(mat)
    k = len(skin.data.materials) - 1
    m = np.array(skin.matrix_world)
    for poly in skin.data.polygons:
        if (m[:3, :3] @ np.array(poly.center) + m[:3, 3])[2] > z_above:
            poly.material_index = k
    bpy.context.view_layer.update()


@pytest.mark.parametrize("name,role,source", [("scalp", "scalp", "scalp role"), ("Head_Scalp", None, "named")])
def test_scalp_region_from_a_role_or_a_name(bald_glb, name, role, source):
    objs = _import(bald_glb)
    _mark_top(objs, name, 0.07, role)
    built = hair.build_strands(spec("short"), objs)
    assert built.region.source == source
    assert built.points[:, 0, 2].min() > 0.07 - 0.003  # roots only on the marked faces
    made = hair.grow(spec("short"), objs, None)
    # the hair's tinted shell covers what lies inside the spec's hairline, whatever the region's source;
    # a scalp part stays skin (where the spec recedes further it must not read as a painted cap)
    assert sorted(o.type for o in made) == ["CURVES", "MESH"]
    shell = next(o for o in made if o.type == "MESH")
    assert shell.data.materials[0].node_tree.nodes[role_materials.SCALP_TINT_NODE + "_amount"].inputs[1].default_value > 0.3
    if role:
        mat = bpy.data.materials[name]
        assert role_materials.SCALP_TINT_NODE not in mat.node_tree.nodes or \
            mat.node_tree.nodes[role_materials.SCALP_TINT_NODE].inputs["Factor"].default_value == 0.0


def test_group_renderer_grows_hair_and_clears_it(bald_glb, tmp_path):
    import json

    cfg = {"device": "cpu", "resolution": 32, "samples": 1, "adaptive_threshold": 0, "denoise": False,
           "max_bounces": 2, "passes": [], "threads": 1}
    r = render_scene.GroupRenderer(cfg, tmp_dir=str(tmp_path))
    row = {"head_path": bald_glb, "focal_mm": 50.0, "sensor_mm": 36.0, "framing": 0.8, "yaw_deg": 0.0,
           "pitch_deg": 0.0, "roll_deg": 0.0, "hair": json.dumps(spec("short", facial=True))}
    with_hair = r.load_group(row)
    curves = [o for o in r.head_objects if o.type == "CURVES"]
    # the scalp's, and brows/lashes from facial_hair (facial = true)
    assert len(curves) >= 2 and all(c.parent == r.rig for c in curves)
    rgba = r.render_lighting({"hdri_asset_id": "studio", "hdri_path": head_preview.builtin_hdri("studio.exr"),
                              "rotation_deg": 30.0, "cycles_seed": 0, "exposure": 1.0,
                              "white_balance_rgb": [1.0, 1.0, 1.0]}, False)[0]
    assert rgba[..., 3].max() > 0.9
    bare = r.load_group(dict(row, hair=None))
    assert not bpy.data.hair_curves and not [o for o in bpy.data.objects if o.type == "CURVES"]
    # the camera frames the head, not its hair
    assert np.array_equal(with_hair.world_from_camera, bare.world_from_camera)


@pytest.mark.parametrize("change,needle", [
    ({"style": "mohawk"}, "hair.style"),
    ({"density": 1.5}, "hair.density"),
    ({"seed": -1}, "hair.seed"),
    ({"hairline": {"recession": 0.1, "shape": "zigzag", "height_mm": 60}}, "hair.hairline.shape"),
])
def test_bad_spec_is_a_one_line_error_naming_the_key(change, needle):
    s = dict(spec(), **change)
    with pytest.raises(hair.HairSpecError) as e:
        hair.check_spec(s)
    assert needle in str(e.value) and "\n" not in str(e.value)
    bad = spec()
    del bad["length_mm"]
    with pytest.raises(hair.HairSpecError, match="hair.length_mm: missing"):
        hair.grow(bad, [], None)
