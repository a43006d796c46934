"""Brows, lashes and beards as strands on a real procedural head (real bpy, tiny Cycles renders)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

bpy = pytest.importorskip("bpy")

from mathutils import Vector  # noqa: E402

from assets_manifest.heads import sample_head_params, write_head_glb  # noqa: E402
from synthgen.render import facial_hair as fh  # noqa: E402
from synthgen.render import scene as render_scene  # noqa: E402
from synthgen.render import strands  # noqa: E402
from synthgen.render.face_regions import face_regions, fit_sphere  # noqa: E402
from synthgen.render.head_preview import _reset_scene, builtin_hdri  # noqa: E402

SEED = 0


def spec(seed: int = 11, beard: str = "none", length_mm: float = 0.0) -> dict:
    return {"seed": seed, "melanin": 0.8, "redness": 0.15, "greying": 0.1, "roughness": 0.3, "coat": 0.05,
            "brows": {"density": 0.8, "thickness_mm": 10.0, "length_mm": 8.0, "arch": 0.5, "melanin": 0.9},
            "lashes": {"length_mm": 9.0, "count": 110, "curl": 0.5},
            "beard": {"style": beard, "length_mm": length_mm, "density": 0.8}}


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """(glb path, its metadata): a procedural head."""
    path = str(tmp_path_factory.mktemp("heads") / f"head_{SEED}.glb")
    return path, write_head_glb(sample_head_params(SEED), path)


@pytest.fixture(scope="module")
def placed(head):
    """(objects, regions, metadata) of the head imported into a fresh scene."""
    path, meta = head
    _reset_scene(builtin_hdri("courtyard.exr"), 64, 8)
    objects = render_scene.import_asset(path)
    return objects, face_regions(objects), meta


def _roots(pts: np.ndarray) -> np.ndarray:
    return pts[:, 0]


def test_fit_sphere_recovers_a_partial_sphere():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(400, 3))
    d /= np.sqrt((d * d).sum(axis=1))[:, None]
    cap = d[d[:, 1] < -0.3]  # only the front: an eyeball whose back is not modelled
    centre, radius = fit_sphere(np.array([0.03, -0.06, 0.01]) + 0.012 * cap)
    assert centre == pytest.approx([0.03, -0.06, 0.01], abs=1e-9)
    assert radius == pytest.approx(0.012, abs=1e-9)


def test_eyes_and_face_heights_match_the_landmarks(placed):
    _, reg, meta = placed
    lm, s = meta["landmarks"], meta["params"]["head_scale"]
    assert reg.has_eyes
    for (centre, radius), name in zip(reg.eyes, ("eye_L", "eye_R")):  # +X first, as the landmarks
        assert np.abs(centre - lm[name]).max() < 1.5e-3
        assert 0.010 * s < radius < 0.014 * s
    assert reg.eye_z < reg.brow_z < reg.eye_z + 0.03
    assert abs(reg.mouth_z - lm["mouth"][2]) < 5e-3
    assert reg.chin_z < lm["chin"][2] < reg.mouth_z      # the chin's underside is below its front
    assert reg.head_top_z >= lm["head_top"][2] - 1e-3
    loc, _, dist = reg.closest(np.array([lm["nose_tip"]]) + [0.0, -0.01, 0.0])
    assert 0.005 < dist[0] < 0.0101   # 1 cm in front of the nose tip (nearer to its sides)


def test_brows_sit_on_the_skin_above_each_eye(placed):
    _, reg, _ = placed
    pts, radius, grey, tint = fh.grow_brows(reg, spec(), np.random.default_rng([11, 1]), 1.0)
    roots = _roots(pts)
    assert 2 * 400 < len(roots) <= 2 * 1000
    _, _, dist = reg.closest(roots)
    assert dist.max() < 1e-3                              # rooted on the skin
    r = reg.eye_radius
    for centre, _ in reg.eyes:
        side = np.sign(centre[0] - reg.centre_x)
        mine = roots[np.sign(roots[:, 0] - reg.centre_x) == side]
        assert len(mine) > 300
        assert np.median(mine[:, 2]) > centre[2] + 1.0 * r   # above the eye
        assert mine[:, 2].min() > centre[2] + 0.6 * r
        assert np.abs(mine[:, 0] - centre[0]).max() < 3 * r
    # short, lying along the skin: each tip within a few mm of the skin
    _, _, tip_dist = reg.closest(pts[:, -1])
    assert np.median(tip_dist) < 2.5e-3
    lengths = np.sqrt(((pts[:, 1:] - pts[:, :-1]) ** 2).sum(axis=2)).sum(axis=1)
    assert 3e-3 < lengths.min() and lengths.max() < 12e-3
    assert radius.shape == (pts.shape[0] * pts.shape[1],) and grey.shape == tint.shape == (len(roots),)


def test_lashes_grow_from_the_lid_margin(placed):
    _, reg, _ = placed
    pts, _, _, _ = fh.grow_lashes(reg, spec(), np.random.default_rng([11, 2]), 1.0)
    roots = _roots(pts)
    assert 150 < len(roots) < 2 * 110 * 1.5
    _, _, dist = reg.closest(roots)
    assert np.median(dist) < 1e-3
    for centre, r in reg.eyes:
        mine = roots[np.sign(roots[:, 0] - reg.centre_x) == np.sign(centre[0] - reg.centre_x)]
        gap = np.sqrt(((mine - centre) ** 2).sum(axis=1))
        assert gap.max() < 2.5 * r                         # around the eye's aperture
        assert (mine[:, 1] < centre[1] - 0.5 * r).all()    # in front of the eyeball
        assert (mine[:, 2] > centre[2]).sum() > 0.6 * len(mine)  # most on the upper lid
    tips = pts[:, -1]
    assert (tips[:, 1] < roots[:, 1]).mean() > 0.95       # pointing out of the face


@pytest.mark.parametrize("style", ["stubble", "moustache", "goatee", "beard"])
def test_each_beard_style_builds_on_the_skin(placed, style):
    _, reg, _ = placed
    length = {"stubble": 1.5, "moustache": 12.0, "goatee": 15.0, "beard": 40.0}[style]
    pts, radius, _, _ = fh.grow_beard(reg, spec(beard=style, length_mm=length), np.random.default_rng([3, 3]), 0.5)
    roots = _roots(pts)
    _, _, dist = reg.closest(roots)
    assert dist.max() < 1e-4
    assert len(roots) > 100
    above_mouth = roots[:, 2] > reg.mouth_z
    if style == "moustache":
        h = reg.eye_z - reg.chin_z  # on the upper lip, its ends drooping to the mouth's corners
        assert above_mouth.mean() > 0.8 and (roots[:, 2] > reg.mouth_z - 0.15 * h).all()
        assert (roots[:, 2] < reg.mouth_z + 0.35 * h).all()
    if style in ("goatee", "beard"):
        assert above_mouth.any() and (~above_mouth).any()
    if style == "beard":  # reaches the jaw's sides and under the chin
        assert np.abs(roots[:, 0] - reg.centre_x).max() > 3 * reg.eye_radius
        assert roots[:, 2].min() < reg.chin_z
    assert fh.grow_beard(reg, spec(beard="none"), np.random.default_rng(0), 1.0) is None


def test_same_seed_same_strands_other_seed_other_strands(placed):
    objects, reg, _ = placed

    def points(seed):
        made = fh.grow_facial(spec(seed, "goatee", 10.0), objects, None, regions=reg)
        out = {}
        for o in made:
            co = np.empty(len(o.data.points) * 3, dtype=np.float32)
            o.data.attributes["position"].data.foreach_get("vector", co)
            out[o.name.split(".")[0]] = co.tobytes()
            bpy.data.objects.remove(o, do_unlink=True)
        return out

    a, b, c = points(11), points(11), points(12)
    assert sorted(a) == ["facial_beard", "facial_brows", "facial_lashes"]
    assert a == b
    assert all(a[k] != c[k] for k in a)


def test_bad_spec_is_one_line_naming_the_key(placed):
    objects, reg, _ = placed
    bad = spec()
    del bad["lashes"]["count"]
    with pytest.raises(ValueError, match=r"lashes\.count missing"):
        fh.grow_facial(bad, objects, regions=reg)
    before = set(bpy.data.objects)
    with pytest.raises(ValueError, match="beard.style 'full'"):
        fh.grow_facial(spec(beard="full"), objects, regions=reg)
    assert set(bpy.data.objects) == before  # checked before anything is built


def _render_brows(objects, reg, with_brows: bool) -> np.ndarray:
    scene = bpy.context.scene
    strands.use_curve_shape(scene, "THICK", 2)
    made = fh.grow_facial(spec(), objects, None, regions=reg) if with_brows else []
    cam = scene.camera
    target = Vector((reg.centre_x, float(reg.eyes[0][0][1]), reg.brow_z))
    half = math.atan(0.5 * cam.data.sensor_width / cam.data.lens)
    cam.location = target + Vector((0.0, -0.06 / math.tan(half), 0.0))  # 12 cm wide: both brows
    cam.rotation_euler = (target - cam.location).to_track_quat("-Z", "Y").to_euler()
    scene.render.resolution_x = scene.render.resolution_y = 64
    scene.cycles.samples = 8
    bpy.ops.render.render()
    result = bpy.data.images["Render Result"]
    path = bpy.app.tempdir + f"brows_{int(with_brows)}.png"
    result.save_render(path)
    for o in made:
        bpy.data.objects.remove(o, do_unlink=True)
    from PIL import Image
    return np.asarray(Image.open(path).convert("L"), dtype=np.float64)


def test_brows_darken_the_brow_band_in_a_render(placed):
    objects, reg, _ = placed
    bare, brows = _render_brows(objects, reg, False), _render_brows(objects, reg, True)
    # the camera looks at the brow line: a band of rows around the middle, away from the mid-plane, darkens
    rows = (brows - bare)[:, np.r_[4:26, 38:60]].mean(axis=1)
    assert rows.min() < -10 and 20 <= int(np.argmin(rows)) <= 44
    below = (slice(52, 64), slice(0, 64))  # cheeks: no strands there
    assert abs(brows[below].mean() - bare[below].mean()) < 4


# last: it resets the scene the module's fixture imported the head into
def test_a_head_without_eye_roles_gets_no_facial_hair():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.11)
    data = bpy.data.meshes.new("ball")
    data.from_pydata(mesh.vertices.tolist(), [], mesh.faces.tolist())
    mat = bpy.data.materials.new("skin")
    mat["synthgen_role"] = "skin"
    data.materials.append(mat)
    obj = bpy.data.objects.new("ball", data)
    bpy.context.scene.collection.objects.link(obj)
    reg = face_regions([obj])
    assert reg.eyes == [] and reg.brow_z is None and len(reg.skin_tris) == len(mesh.faces)
    assert fh.grow_facial(spec(beard="beard", length_mm=20.0), [obj]) == []
