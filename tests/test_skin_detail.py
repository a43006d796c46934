"""Skin detail (issue 15): per-person parameters, the eye-placed face frame, the shader's nodes,
and tiny real renders of its roughness and specular maps (AOVs) on a test-written head."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from synthgen.render import skin_detail

LIGHT = [0.55, 0.36, 0.24]   # Fitzpatrick I-II albedo
DARK = [0.15, 0.05, 0.03]    # Fitzpatrick VI


# ---- pure ---------------------------------------------------------------------------------------

def test_detail_params_are_deterministic_and_follow_the_skin():
    p = {"albedo": LIGHT, "seed": 7, "micro_detail": 0.6, "roughness_variation": 0.3, "blush": 0.35}
    assert skin_detail.detail_params(p) == skin_detail.detail_params(dict(p))
    assert skin_detail.detail_params(p) != skin_detail.detail_params(dict(p, seed=8))
    assert skin_detail.detail_params(p)["micro"] == 0.6
    light = [skin_detail.detail_params({"albedo": LIGHT, "seed": s})["freckles"] for s in range(300)]
    dark = [skin_detail.detail_params({"albedo": DARK, "seed": s})["freckles"] for s in range(300)]
    # some light-skinned people have none, most dark-skinned people have none, and theirs are fainter
    assert 0.3 < np.mean(np.array(light) > 0) < 0.75
    assert np.mean(np.array(dark) > 0) < 0.2
    assert max(dark) < max(light)
    calm = skin_detail.detail_params({"albedo": LIGHT, "seed": 7, "blush": 0.1})["redness"]
    assert calm < skin_detail.detail_params({"albedo": LIGHT, "seed": 7, "blush": 0.35})["redness"]


def _eye_blobs(centre, iod, n=40):
    rng = np.random.default_rng(0)
    c = np.array(centre)
    ball = rng.uniform(-0.012, 0.012, (n, 3))
    return np.concatenate([c + [iod / 2, 0, 0] + ball, c - [iod / 2, 0, 0] + ball])


def test_face_frame_from_two_eyes_and_regions_scale_with_it():
    pts = _eye_blobs([0.001, -0.07, 0.02], 0.064)
    frame = skin_detail.face_frame(pts)
    assert frame["centre"] == pytest.approx([0.001, -0.07, 0.02], abs=0.002)
    assert frame["iod"] == pytest.approx(0.064, abs=0.003)
    regions = skin_detail.face_regions(frame)
    assert set(regions) == set(skin_detail.T_ZONE + skin_detail.CHEEKS)
    assert regions["forehead"][0][2] > frame["centre"][2] > regions["nose"][0][2] > regions["chin"][0][2]
    assert regions["cheek_L"][0][0] > 0 > regions["cheek_R"][0][0]
    wide = skin_detail.face_regions(dict(frame, iod=2 * frame["iod"]))
    assert wide["chin"][1][0] == pytest.approx(2 * regions["chin"][1][0])
    # no frame: one eye, or eyes in centimetres (a head the placement did not scale)
    assert skin_detail.face_frame(pts[:40]) is None
    assert skin_detail.face_frame(pts * 100) is None
    assert skin_detail.face_regions(None) == {}


# ---- Blender: the shader's nodes ------------------------------------------------------------------

def _skin(**over):
    from synthgen.render.role_materials import DEFAULT_SKIN
    return dict(DEFAULT_SKIN, albedo=LIGHT, **over)


def _nodes(mat, kind):
    return [n for n in mat.node_tree.nodes if n.type == kind]


def _principled(mat):
    return _nodes(mat, "BSDF_PRINCIPLED")[0]


def test_skin_material_builds_for_procedural_ict_like_and_textured_heads():
    bpy = pytest.importorskip("bpy")
    from synthgen.render.head_materials import skin_material

    bpy.ops.wm.read_factory_settings(use_empty=True)
    frame = {"centre": [0.0, -0.07, 0.0], "iod": 0.063}
    freckled = next(s for s in range(100) if skin_detail.detail_params(_skin(seed=s))["freckles"] > 0.3)
    plain = next(s for s in range(100) if skin_detail.detail_params(_skin(seed=s))["freckles"] == 0)
    procedural = skin_material(_skin(seed=freckled, face=frame, regions={
        "lips": {"centre": [0, -0.09, -0.06], "radii": [0.025, 0.02, 0.012]}}))
    assert _nodes(procedural, "TEX_VORONOI")                           # freckles
    assert _principled(procedural).inputs["Specular IOR Level"].is_linked  # T-zone specular
    assert not _nodes(skin_material(_skin(seed=plain, face=frame)), "TEX_VORONOI")
    # ICT-like: a Y-up object placed by a rotation; detail gets the object-to-head transform
    ict = skin_material(_skin(seed=plain, face=frame, to_head=[[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0]]))
    assert len(_nodes(ict, "VECT_MATH")) > len(_nodes(skin_material(_skin(seed=plain, face=frame)), "VECT_MATH"))
    # an imported head's albedo texture is its colour, untouched; roughness and bump still vary
    img = bpy.data.images.new("albedo", 4, 4)
    textured = skin_material(_skin(seed=freckled, face=frame), {"albedo": (img, None)})
    base = _principled(textured).inputs["Base Color"]
    assert base.links[0].from_node.type == "TEX_IMAGE"
    assert not _nodes(textured, "TEX_VORONOI")
    assert _principled(textured).inputs["Roughness"].is_linked and _nodes(textured, "BUMP")
    # lips: no freckles or face regions
    lips = skin_material(_skin(seed=freckled, face=frame, lips=True))
    assert not _nodes(lips, "TEX_VORONOI") and not _principled(lips).inputs["Specular IOR Level"].is_linked


def test_more_micro_detail_is_a_stronger_bump():
    pytest.importorskip("bpy")
    from synthgen.render.head_materials import skin_material

    def strength(micro):
        bump = _nodes(skin_material(_skin(micro_detail=micro)), "BUMP")[0]
        return bump.inputs["Strength"].default_value

    assert 0 < strength(0.2) < strength(0.8)
    assert strength(0.0) == 0.0


# ---- Blender: tiny renders of a test-written head ------------------------------------------------

EYE_Z, EYE_Y, IOD = 0.0, -0.075, 0.064


def _sphere(centre, radius, n=24):
    """UV-sphere vertices and quads/triangles (0-based)."""
    verts, faces = [], []
    for i in range(n + 1):
        t = math.pi * i / n
        for j in range(2 * n):
            a = math.pi * j / n
            verts.append((centre[0] + radius * math.sin(t) * math.cos(a),
                          centre[1] + radius * math.sin(t) * math.sin(a), centre[2] + radius * math.cos(t)))
    for i in range(n):
        for j in range(2 * n):
            a, b = i * 2 * n + j, i * 2 * n + (j + 1) % (2 * n)
            faces.append((a, b, b + 2 * n, a + 2 * n))
    return verts, faces


def write_eyed_head(folder: str, unit: float) -> str:
    """A skin sphere (M_Face) with two eyeballs (M_IrisLeft/Right) stored +Y up, face toward +Z
    (as ICT-FaceKit), in metres / ``unit``."""
    os.makedirs(folder, exist_ok=True)
    parts = [("M_Face", *_sphere((0.0, 0.0, 0.0), 0.1)),
             ("M_IrisLeft", *_sphere((IOD / 2, EYE_Y, EYE_Z), 0.012, 8)),
             ("M_IrisRight", *_sphere((-IOD / 2, EYE_Y, EYE_Z), 0.012, 8))]
    path = os.path.join(folder, f"eyed_{unit:g}.obj")
    with open(path, "w") as f:
        f.write("mtllib eyed.mtl\n")
        base = 1
        for name, verts, faces in parts:
            for x, y, z in verts:  # scene (x, y, z) -> stored (x, z, -y): +Y up, +Z forward
                f.write(f"v {x / unit:.7g} {z / unit:.7g} {-y / unit:.7g}\n")
            f.write(f"usemtl {name}\n")
            for face in faces:
                f.write("f " + " ".join(str(base + k) for k in face) + "\n")
            base += len(verts)
    with open(os.path.join(folder, "eyed.mtl"), "w") as f:
        for name, _, _ in parts:
            f.write(f"newmtl {name}\nKd 0.5 0.5 0.5\n")
    return path


RES = 40
ORTHO = 0.24


def _render_maps(path: str, unit: float, tmp: str, seed: int = 3) -> dict[str, np.ndarray]:
    """Front orthographic view centred on the eyes: combined, roughness and specular level (AOVs)."""
    import bpy

    from synthgen.format.codecs import read_exr_channels
    from synthgen.render.scene import import_asset

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 4
    scene.cycles.seed = 0
    scene.cycles.use_denoising = False
    scene.render.resolution_x = scene.render.resolution_y = RES
    scene.render.filter_size = 0.01  # each pixel is its own sample point: the maps read per pixel
    world = bpy.data.worlds.new("w")
    scene.world = world
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (1, 1, 1, 1)
    for name in ("rough", "spec"):
        aov = scene.view_layers[0].aovs.add()
        aov.name, aov.type = name, "VALUE"
    gp = {"appearance": {"melanin": 0.03, "haemoglobin": 0.02, "seed": seed, "micro_detail": 0.5}}
    place = {"unit_scale": unit, "up_axis": "+Y", "forward_axis": "+Z"}
    objs = import_asset(path, generator_params=gp, placement=place)
    for mat in {s.material for o in objs for s in o.material_slots if s.material.get("synthgen_role") == "skin"}:
        tree, bsdf = mat.node_tree, _principled(mat)
        for aov, socket in (("rough", "Roughness"), ("spec", "Specular IOR Level")):
            out = tree.nodes.new("ShaderNodeOutputAOV")
            out.aov_name = aov
            tree.links.new(bsdf.inputs[socket].links[0].from_socket, out.inputs["Value"])
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    scene.collection.objects.link(cam)
    cam.data.type, cam.data.ortho_scale = "ORTHO", ORTHO
    cam.location, cam.rotation_euler = (0.0, -1.0, EYE_Z), (math.pi / 2, 0.0, 0.0)
    scene.camera = cam
    s = scene.render.image_settings
    s.media_type, s.file_format, s.color_depth = "MULTI_LAYER_IMAGE", "OPEN_EXR_MULTILAYER", "32"
    scene.render.filepath = os.path.join(tmp, f"maps_{unit:g}_{seed}.exr")
    bpy.ops.render.render(write_still=True)
    ch = read_exr_channels(scene.render.filepath)
    get = lambda name: next(v for k, v in ch.items() if k.split(".")[-2] == name)  # noqa: E731
    combined = np.stack([ch[f"ViewLayer.Combined.{c}"] for c in "RGB"], -1)
    return {"rough": get("rough"), "spec": get("spec"), "combined": combined}


def _px(x: float, z: float) -> tuple[int, int]:
    """Pixel (row, col) of scene point (x, ., z) in the front orthographic view."""
    return int((0.5 - (z - EYE_Z) / ORTHO) * RES), int((0.5 + x / ORTHO) * RES)


def _mean(img, x, z):
    r, c = _px(x, z)
    return float(img[r - 1:r + 2, c - 1:c + 2].mean())


def test_t_zone_is_glossier_than_the_cheeks_in_metres_whatever_the_file_units(tmp_path):
    pytest.importorskip("bpy")
    metres = _render_maps(write_eyed_head(str(tmp_path / "m"), 1.0), 1.0, str(tmp_path))
    forehead, cheek = (0.0, 0.06), (0.046, -0.032)
    assert _mean(metres["rough"], *forehead) < _mean(metres["rough"], *cheek) - 0.05
    assert _mean(metres["spec"], *forehead) > _mean(metres["spec"], *cheek) + 0.05
    # the same head stored in centimetres (placement unit_scale 0.01): the same maps, not 100x finer
    cm = _render_maps(write_eyed_head(str(tmp_path / "cm"), 0.01), 0.01, str(tmp_path))
    face = metres["rough"] > 0
    assert np.abs(cm["rough"] - metres["rough"])[face].mean() < 0.005
    # another person: another pattern
    other = _render_maps(write_eyed_head(str(tmp_path / "m"), 1.0), 1.0, str(tmp_path), seed=4)
    assert np.abs(other["rough"] - metres["rough"])[face].mean() > 0.01


def test_same_seed_same_pixels(tmp_path):
    pytest.importorskip("bpy")
    path = write_eyed_head(str(tmp_path / "m"), 1.0)
    a = _render_maps(path, 1.0, str(tmp_path / "a"))
    b = _render_maps(path, 1.0, str(tmp_path / "b"))
    assert a["combined"].max() > 0.05
    assert np.array_equal(a["combined"], b["combined"]) and np.array_equal(a["rough"], b["rough"])
