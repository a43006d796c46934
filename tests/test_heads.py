"""Procedural heads (assets_manifest.heads): params, determinism, mesh quality, GLB export."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import trimesh

from assets_manifest.heads import SPECS, HeadParams, build_head, read_head_record, sample_head_params, write_head_glb
from assets_manifest.heads import appearance, geometry
from assets_manifest.heads.params import HAIR_MIN_COVERAGE
from assets_manifest.heads.uv import weld

from conftest import ROOT

EYE_PARTS = ("eye_L", "eye_R", "cornea_L", "cornea_R")


def _extreme() -> HeadParams:
    """Bald, mouth open, eyes shut, big smile, features at the ends of their ranges."""
    p = sample_head_params(3)
    return dataclasses.replace(
        p, hair_coverage=0.0, jaw_open=1.0, eyelid_closure=1.0, smile=1.0, nose_width=SPECS["nose_width"].hi,
        ear_protrusion=1.0, jaw_width=SPECS["jaw_width"].lo, head_scale=SPECS["head_scale"].hi,
        gaze_yaw=SPECS["gaze_yaw"].hi, upper_lip=SPECS["upper_lip"].hi).validate()


@pytest.fixture(scope="module")
def heads() -> dict[str, tuple[HeadParams, dict[str, trimesh.Trimesh]]]:
    out = {}
    for name, p in (("seed7", sample_head_params(7)), ("extreme", _extreme())):
        out[name] = (p, build_head(p))
    return out


def _mesh_hash(parts: dict[str, trimesh.Trimesh]) -> str:
    h = hashlib.sha256()
    for name in sorted(parts):
        m = parts[name]
        h.update(name.encode())
        h.update(np.ascontiguousarray(m.vertices, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(m.faces, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(m.visual.uv, dtype=np.float64).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------- params --

def test_sampling_is_deterministic_and_inside_sampling_ranges():
    for seed in range(40):
        a, b = sample_head_params(seed), sample_head_params(seed)
        assert a == b
        for name, spec in SPECS.items():
            assert spec.sample_lo <= getattr(a, name) <= spec.sample_hi, name
    assert sample_head_params(1) != sample_head_params(2)
    assert len(SPECS) >= 40
    from assets_manifest.heads.params import SHAPE_PARAMS, EXPRESSION_PARAMS
    assert len(SHAPE_PARAMS) >= 20 and {"smile", "jaw_open", "eyelid_closure"} <= set(EXPRESSION_PARAMS)


def test_sampling_spans_all_fitzpatrick_types_and_bald_heads():
    ps = [sample_head_params(s) for s in range(120)]
    assert {p.materials()["fitzpatrick_type"] for p in ps} == {1, 2, 3, 4, 5, 6}
    assert any(p.hair_coverage < HAIR_MIN_COVERAGE for p in ps)
    assert sum(p.hair_coverage >= HAIR_MIN_COVERAGE for p in ps) > 80


@pytest.mark.parametrize("name,value,message", [
    ("nose_length", 3.2, "head param 'nose_length'=3.2 out of range [0.8, 1.25]"),
    ("jaw_open", -0.1, "head param 'jaw_open'=-0.1 out of range [0.0, 1.0]"),
    ("melanin", float("nan"), "head param 'melanin'=nan out of range [0.005, 0.5]"),
    ("smile", "wide", "head param 'smile'='wide' is not a number"),
])
def test_validate_names_parameter_and_range(name, value, message):
    p = dataclasses.replace(HeadParams(), **{name: value})
    with pytest.raises(ValueError) as err:
        p.validate()
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_build_and_export_refuse_bad_params(tmp_path):
    bad = dataclasses.replace(HeadParams(), ear_size=2.0)
    with pytest.raises(ValueError, match=r"head param 'ear_size'=2.0 out of range \[0.85, 1.2\]"):
        build_head(bad)
    with pytest.raises(ValueError, match="ear_size"):
        write_head_glb(bad, str(tmp_path / "bad.glb"))
    assert not (tmp_path / "bad.glb").exists()
    with pytest.raises(ValueError, match="seed"):
        sample_head_params(-1)


def test_dict_round_trip_and_unknown_keys():
    p = sample_head_params(11)
    d = json.loads(json.dumps(p.to_dict()))
    assert HeadParams.from_dict(d) == p
    with pytest.raises(ValueError, match=r"unknown head param\(s\): 'nose_lenght', 'zz'"):
        HeadParams.from_dict({**d, "zz": 1, "nose_lenght": 1.0})
    with pytest.raises(ValueError, match="out of range"):
        HeadParams.from_dict({**d, "chin_width": 9.0})
    assert HeadParams.from_dict({"seed": 4}) == HeadParams(seed=4)


def test_skin_albedo_darkens_with_melanin_and_reddens_with_blood():
    lum = [np.dot(appearance.skin_albedo(m, 0.02), [0.2126, 0.7152, 0.0722]) for m in (0.01, 0.05, 0.12, 0.25, 0.45)]
    assert all(a > b for a, b in zip(lum, lum[1:]))
    pale, flushed = appearance.skin_albedo(0.03, 0.005), appearance.skin_albedo(0.03, 0.06)
    assert flushed[0] / flushed[1] > pale[0] / pale[1]
    assert [appearance.fitzpatrick_type(m) for m in (0.01, 0.05, 0.1, 0.15, 0.25, 0.4)] == [1, 2, 3, 4, 5, 6]


# -------------------------------------------------------------- geometry --

def test_parts_present_with_uvs(heads):
    p, parts = heads["seed7"]
    assert set(parts) == {"skin", *EYE_PARTS, "hair"} and p.hair_coverage >= HAIR_MIN_COVERAGE
    _, bald = heads["extreme"]
    assert set(bald) == {"skin", *EYE_PARTS}
    for part_set in (parts, bald):
        for name, m in part_set.items():
            uv = np.asarray(m.visual.uv)
            assert uv.shape == (len(m.vertices), 2), name
            # faces across the skin's back seam get u > 1 on their wrapped corners
            assert np.isfinite(uv).all() and uv.min() >= -1e-6 and uv.max() <= 1.5, name


def test_parts_are_watertight_consistent_and_in_budget(heads):
    for key, (_, parts) in heads.items():
        total = 0
        for name, m in parts.items():
            w = weld(m)
            assert w.is_watertight, (key, name)
            assert w.is_winding_consistent, (key, name)
            assert w.volume > 0, (key, name)          # outward normals
            assert w.body_count == 1, (key, name)
            total += len(m.faces)
        assert 25_000 <= len(parts["skin"].faces) <= 45_000
        assert 20_000 <= total <= 60_000, (key, total)


def test_orientation_and_size_convention(heads):
    for p, parts in heads.values():
        v = np.asarray(parts["skin"].vertices)
        L = geometry.make_layout(p).landmarks()
        # face toward -Y: the nose tip is (nearly) the front-most point
        assert L["nose_tip"][1] == pytest.approx(v[:, 1].min(), abs=0.012)
        assert parts["eye_L"].vertices[:, 0].mean() > 0 > parts["eye_R"].vertices[:, 0].mean()
        height = v[:, 2].max() - L["chin"][2]
        assert 0.20 <= height <= 0.27
        assert v[:, 2].min() == pytest.approx(geometry.BUST_BOTTOM * p.head_scale, abs=2e-3)


def test_eyes_sit_in_their_sockets_without_touching_skin(heads):
    for p, parts in heads.values():
        L = geometry.make_layout(p)
        for name in EYE_PARTS:
            v = np.asarray(parts[name].vertices, dtype=np.float32) / p.head_scale
            d = geometry.skin_sdf(v, L)
            assert d.min() > -2e-4, name
        assert parts["cornea_L"].vertices[:, 1].min() < parts["eye_L"].vertices[:, 1].min()


def test_build_is_deterministic(heads):
    p, parts = heads["seed7"]
    assert _mesh_hash(build_head(p)) == _mesh_hash(parts)
    assert _mesh_hash(heads["extreme"][1]) != _mesh_hash(parts)


# ------------------------------------------------------------------- GLB --

def test_glb_bytes_identical_across_processes_and_loads_in_trimesh(tmp_path):
    p = sample_head_params(21)
    a, b = tmp_path / "a.glb", tmp_path / "b.glb"
    meta = write_head_glb(p, str(a))
    code = ("import sys; from assets_manifest.heads import sample_head_params, write_head_glb; "
            f"write_head_glb(sample_head_params(21), {str(b)!r})")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                   env={"PYTHONPATH": ROOT, "PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"})
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    assert not list(tmp_path.glob(".tmp-*"))

    assert meta["parts"] == [n for n in ("skin", "eye_L", "eye_R", "cornea_L", "cornea_R", "hair")
                             if n != "hair" or p.hair_coverage >= HAIR_MIN_COVERAGE]
    assert meta["params"] == p.to_dict()
    assert 20_000 <= meta["faces"] <= 60_000
    scene = trimesh.load(str(a))
    assert sorted(scene.geometry) == sorted(meta["parts"])
    assert sum(len(g.faces) for g in scene.geometry.values()) == meta["faces"]
    record = scene.metadata["synthgen_head"]
    assert record["params"] == p.to_dict() and HeadParams.from_dict(record["params"]) == p
    assert read_head_record(str(a)) == record
    # glTF is +Y up: the file's (x, y, z) is the generator's (x, z, -y)
    lo, hi = scene.bounds
    assert meta["bbox_min"] == pytest.approx([lo[0], -hi[2], lo[1]], abs=1e-5)
    assert meta["bbox_max"] == pytest.approx([hi[0], -lo[2], hi[1]], abs=1e-5)
    raw = a.read_bytes()
    tree = json.loads(raw[20:20 + int.from_bytes(raw[12:16], "little")])
    skin_node = next(n for n in tree["nodes"] if n.get("name") == "skin")
    assert skin_node["extras"]["synthgen_head"]["params"] == p.to_dict()
