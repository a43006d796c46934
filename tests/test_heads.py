"""Procedural heads (assets_manifest.heads): params, determinism, mesh quality, GLB export."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import subprocess
import sys

import numpy as np
import pytest
import trimesh

from assets_manifest.heads import SPECS, HeadParams, build_head, read_head_record, sample_head_params, write_head_glb
from assets_manifest.heads import appearance, geometry
from assets_manifest import portable_math as pm
from assets_manifest.heads.params import HAIR_MIN_COVERAGE
from assets_manifest.heads.uv import weld

from conftest import ROOT

EYE_PARTS = ("eye_L", "eye_R", "cornea_L", "cornea_R")
MOUTH_PARTS = ("teeth_upper", "teeth_lower", "gums_upper", "gums_lower", "mouth")


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
    # version 1 had the painted hair cap's thickness: it loads, without it
    assert HeadParams.from_dict({**d, "params_version": 1, "hair_volume_mm": 8.0}) == p
    with pytest.raises(ValueError, match="hair_volume_mm"):
        HeadParams.from_dict({**d, "hair_volume_mm": 8.0})


def test_skin_albedo_darkens_with_melanin_and_reddens_with_blood():
    lum = [np.dot(appearance.skin_albedo(m, 0.02), [0.2126, 0.7152, 0.0722]) for m in (0.01, 0.05, 0.12, 0.25, 0.45)]
    assert all(a > b for a, b in zip(lum, lum[1:]))
    pale, flushed = appearance.skin_albedo(0.03, 0.005), appearance.skin_albedo(0.03, 0.06)
    assert flushed[0] / flushed[1] > pale[0] / pale[1]
    assert [appearance.fitzpatrick_type(m) for m in (0.01, 0.05, 0.1, 0.15, 0.25, 0.4)] == [1, 2, 3, 4, 5, 6]


# -------------------------------------------------------------- geometry --

def test_parts_present_with_uvs(heads):
    p, parts = heads["seed7"]
    assert set(parts) == {"skin", *EYE_PARTS, "scalp", *MOUTH_PARTS} and p.hair_coverage >= HAIR_MIN_COVERAGE
    q, bald = heads["extreme"]
    assert set(bald) == set(parts) and q.hair_coverage == 0.0   # bald heads keep a minimal scalp
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
            if name != "scalp":   # a receding hairline may leave two temple patches
                assert w.body_count == 1, (key, name)
            total += len(m.faces)
        assert 25_000 <= len(parts["skin"].faces) <= 45_000
        assert 50_000 <= total <= 80_000, (key, total)


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


def _first_hits(parts: dict[str, trimesh.Trimesh], origins: np.ndarray, direction) -> list[tuple[str, float]]:
    """(part, distance) of each ray's first hit (Moller-Trumbore over every triangle; no rtree here)."""
    names = list(parts)
    tri = np.concatenate([np.asarray(parts[n].triangles) for n in names])
    owner = np.concatenate([[i] * len(parts[n].faces) for i, n in enumerate(names)])
    d = np.asarray(direction, dtype=float)
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    pv = np.cross(d, e2)
    det = (e1 * pv).sum(1)
    out = []
    with np.errstate(all="ignore"):
        inv = 1.0 / det
        for o in origins:
            tv = o - tri[:, 0]
            u = (tv * pv).sum(1) * inv
            qv = np.cross(tv, e1)
            v = (qv * d).sum(1) * inv
            t = (e2 * qv).sum(1) * inv
            t = np.where((np.abs(det) > 1e-15) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0), t, np.inf)
            k = int(np.argmin(t))
            out.append((names[owner[k]], float(t[k])) if np.isfinite(t[k]) else (None, np.inf))
    return out


def _mouth_rays(p: HeadParams, zs) -> np.ndarray:
    """Rays from in front of the face toward +Y, across the mouth at heights zs (head_scale 1)."""
    return np.array([[x, -0.3, z] for z in zs for x in (-0.008, 0.0, 0.008)]) * [p.head_scale, 1.0, p.head_scale]


def test_teeth_hide_behind_closed_lips():
    p = dataclasses.replace(sample_head_params(7), jaw_open=0.0)
    parts = build_head(p)
    m = geometry.make_layout(p).mouth
    hits = _first_hits(parts, _mouth_rays(p, np.linspace(m[2] - 0.012, m[2] + 0.008, 9)), (0, 1, 0))
    assert {h[0] for h in hits} == {"skin"}
    # the rows sit behind the lips, inside the head's outline
    for name in ("teeth_upper", "teeth_lower"):
        v = np.asarray(parts[name].vertices)
        assert v[:, 1].min() > m[1] * p.head_scale and abs(v[:, 0]).max() < 0.035


def test_open_mouth_shows_teeth_and_a_dark_interior_not_the_back_of_the_head(heads):
    p, parts = heads["extreme"]
    L = geometry.make_layout(p)
    m, gap = L.mouth, 0.095 * L.jaw_angle
    hits = _first_hits(parts, _mouth_rays(p, m[2] - np.linspace(0.0005, gap - 0.001, 12)), (0, 1, 0))
    seen = {h[0] for h in hits}
    assert {"teeth_upper", "teeth_lower", "mouth"} <= seen, hits
    # nothing seen through the opening is further back than the oral cavity
    assert max(t for _, t in hits) < 0.3 + (m[1] + 0.06) * p.head_scale
    assert seen <= {"skin", *MOUTH_PARTS}


def test_scalp_is_a_thin_shell_inside_the_hairline(heads):
    for p, parts in heads.values():
        L = geometry.make_layout(p)
        v = np.asarray(parts["scalp"].vertices, dtype=np.float32) / p.head_scale
        d = geometry.skin_sdf(v, L)
        assert -0.0004 <= d.min() and d.max() <= 0.0005
        assert geometry._hairline(v.astype(np.float64), L).max() < 0.004
        # a full hairline covers the crown; a bald head keeps a fringe above the ears
        assert v[:, 2].max() > (0.1 if p.hair_coverage > 0.55 else 0.05)
        assert v[:, 2].min() > -0.06                      # the face and neck are not


def test_nostrils_are_shallow_openings_under_the_tip(heads):
    for p, _ in heads.values():
        L = geometry.make_layout(p)
        tip, sn = L.nose_tip, L.subnasale
        for sx in (1.0, -1.0):
            c = np.array([[sx * 0.0068 * p.nose_width, 0.5 * (tip[1] + sn[1]) + 0.0028, sn[2] + 0.0022]])
            assert geometry.skin_sdf(c.astype(np.float32), L)[0] > 0.0            # an opening
            above = c + [0.0, 0.0, 0.007]
            assert geometry.skin_sdf(above.astype(np.float32), L)[0] < 0.0       # closed a few mm up


def test_build_is_deterministic(heads):
    p, parts = heads["seed7"]
    assert _mesh_hash(build_head(p)) == _mesh_hash(parts)
    assert _mesh_hash(heads["extreme"][1]) != _mesh_hash(parts)


# ------------------------------------------------------------------- GLB --

# Subprocess environments the GLB must not depend on. Bytes are content hashes
# (asset ids), so another BLAS kernel or numpy's SIMD dispatch for an older CPU
# must give the same file (see assets_manifest/portable_math.py).
_BASE_ENV = {"PYTHONPATH": ROOT, "PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"}
_NPY_BASELINE_ONLY = ("X86_V3", "X86_V4", "AVX512_ICL", "AVX512_SPR")
GLB_VARIANTS = {
    # another OpenBLAS kernel than this CPU's own
    "openblas_prescott": {"OPENBLAS_CORETYPE": "Prescott"},
    # numpy's SIMD loops as on an x86-64-v2 CPU (no AVX2/AVX512), default OpenBLAS
    "numpy_x86_v2": {"NPY_DISABLE_CPU_FEATURES": " ".join(_NPY_BASELINE_ONLY)},
}


def _variant_skip_reason(name: str) -> str | None:
    if name != "numpy_x86_v2":
        return None
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"NPY_DISABLE_CPU_FEATURES variant is x86-64 only (machine: {platform.machine()})"
    from numpy._core._multiarray_umath import __cpu_features__
    if not any(__cpu_features__.get(f) for f in _NPY_BASELINE_ONLY):
        return "this CPU has none of " + ", ".join(_NPY_BASELINE_ONLY) + ": numpy already runs its baseline loops"
    return None


@pytest.fixture(scope="module")
def glb21(tmp_path_factory):
    """Seed 21's GLB written in this process and, concurrently, in one subprocess per variant."""
    d = tmp_path_factory.mktemp("glb21")
    code = ("import sys; from assets_manifest.heads import sample_head_params, write_head_glb; "
            "write_head_glb(sample_head_params(21), sys.argv[1])")
    procs = {}
    for name, extra in GLB_VARIANTS.items():
        if _variant_skip_reason(name) is None:
            env = {**_BASE_ENV, **extra}
            if "OPENBLAS_CORETYPE" not in extra:   # this machine's BLAS kernel choice, whatever it is
                for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
                    env.pop(k, None)
            procs[name] = subprocess.Popen([sys.executable, "-c", code, str(d / f"{name}.glb")], cwd=ROOT, env=env,
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    p = sample_head_params(21)
    meta = write_head_glb(p, str(d / "in_process.glb"))
    outs = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, (name, out)
        outs[name] = (d / f"{name}.glb").read_bytes()
    return d, p, meta, outs


@pytest.mark.parametrize("variant", sorted(GLB_VARIANTS))
def test_glb_bytes_identical_across_processes_and_loads_in_trimesh(glb21, variant):
    reason = _variant_skip_reason(variant)
    if reason:
        pytest.skip(reason)
    d, p, meta, outs = glb21
    a = d / "in_process.glb"
    assert hashlib.sha256(a.read_bytes()).hexdigest() == hashlib.sha256(outs[variant]).hexdigest(), variant
    assert not list(d.glob(".tmp-*"))

    assert meta["parts"] == ["skin", "eye_L", "eye_R", "cornea_L", "cornea_R", "scalp", *MOUTH_PARTS]
    assert meta["params"] == p.to_dict()
    assert 50_000 <= meta["faces"] <= 80_000
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
    roles = {m["name"]: m["extras"]["synthgen_role"] for m in tree["materials"]}
    assert roles == {"skin": "skin", "iris": "iris", "cornea": "cornea", "scalp": "scalp", "teeth": "teeth",
                     "gums": "gums", "mouth": "gums"}
    skin_node = next(n for n in tree["nodes"] if n.get("name") == "skin")
    assert skin_node["extras"]["synthgen_head"]["params"] == p.to_dict()
    for name, g in scene.geometry.items():   # stored normals are unit vectors (float32)
        n = np.asarray(g.vertex_normals)
        assert n.shape == g.vertices.shape and np.abs(np.sqrt((n * n).sum(axis=1)) - 1.0).max() < 1e-6, name


# ---------------------------------------------------------- portable math --
# portable_math replaces numpy's BLAS products and SIMD-dispatched
# transcendentals in the generator; it must agree with numpy to a few ULP.

def _ulps(got, ref) -> float:
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape
    same = (got == ref) | (np.isnan(got) & np.isnan(ref))
    err = np.abs(got - ref) / np.spacing(np.abs(ref))
    return float(np.where(same, 0.0, err).max())


_R = np.random.default_rng(1234)
_N = 20_000


@pytest.mark.parametrize("name,x,max_ulp", [
    ("exp", _R.uniform(-20.0, 20.0, _N), 2),
    ("exp", _R.uniform(-745.0, 709.0, _N), 2),
    ("log", _R.uniform(1e-6, 4.0, _N), 2),
    ("log", 10.0 ** _R.uniform(-300, 300, _N), 2),
    ("sin", _R.uniform(-2 * np.pi, 2 * np.pi, _N), 2),
    ("cos", _R.uniform(-2 * np.pi, 2 * np.pi, _N), 2),
    ("sin", _R.uniform(-1e4, 1e4, _N), 3),
    ("cos", _R.uniform(-1e4, 1e4, _N), 3),
    ("arcsin", _R.uniform(-1.0, 1.0, _N), 3),
    ("tanh", _R.uniform(-8.0, 8.0, _N), 3),
    ("tanh", _R.uniform(-0.6, 0.6, _N), 3),
    ("expm1", _R.uniform(-1.0, 1.0, _N), 5),
])
def test_portable_unary_functions_match_numpy(name, x, max_ulp):
    assert _ulps(getattr(pm, name)(x), getattr(np, name)(x)) <= max_ulp


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_portable_arctan2_and_hypot_match_numpy(scale):
    y, x = _R.uniform(-scale, scale, (2, _N))
    assert _ulps(pm.arctan2(y, x), np.arctan2(y, x)) <= 3
    assert _ulps(pm.hypot(x, y), np.hypot(x, y)) <= 2
    # near the axes and diagonals, where the reduction switches branches
    t = np.concatenate([np.linspace(-1e-12, 1e-12, 101), 1.0 + np.linspace(-1e-9, 1e-9, 101)])
    for yy, xx in ((t, np.ones_like(t)), (np.ones_like(t), t), (t, -np.ones_like(t)), (-np.ones_like(t), t),
                   (t * 7 / 8, np.ones_like(t)), (t * 3 / 16, -np.ones_like(t))):
        assert _ulps(pm.arctan2(yy * scale, xx * scale), np.arctan2(yy * scale, xx * scale)) <= 3


def test_portable_arctan2_edge_cases_follow_numpy():
    z, o = 0.0, 1.0
    ys = np.array([z, -z, z, -z, o, -o, z, -z, o, o, -o, -o, z, -z, 5.0, -5.0])
    xs = np.array([z, z, -z, -z, z, z, o, -o, o, -o, o, -o, -o, o, -z, z])
    got, ref = pm.arctan2(ys, xs), np.arctan2(ys, xs)
    assert _ulps(got, ref) <= 1
    assert np.array_equal(np.signbit(got), np.signbit(ref))
    assert got[0] == 0.0 and got[2] == np.pi and got[3] == -np.pi and got[4] == np.pi / 2


@pytest.mark.parametrize("e,lo,hi", [(0.85, 1e-4, 1.0), (1.2, 1e-4, 1.0), (-3.33, 400.0, 700.0),
                                     (-1.4, 0.8, 1.4), (0.5, 1e-9, 1e9), (2.5, 1e-50, 1e50)])
def test_portable_power_matches_numpy(e, lo, hi):
    x = _R.uniform(lo, hi, _N)
    assert _ulps(pm.power(x, e), x ** e) <= 3


def test_portable_edge_cases():
    assert pm.exp(0.0) == 1.0 and pm.exp(-1e4) == 0.0 and pm.exp(1e4) == np.inf
    with np.errstate(all="ignore"):
        got = pm.log(np.array([1.0, 0.0, -1.0, np.inf, 5e-324, np.nan]))
    assert got[0] == 0.0 and got[1] == -np.inf and np.isnan(got[2]) and got[3] == np.inf and np.isnan(got[5])
    assert got[4] == pytest.approx(np.log(5e-324), rel=1e-15)
    assert pm.sin(0.0) == 0.0 and pm.cos(0.0) == 1.0
    quarter = np.arange(-8, 9) * (np.pi / 2)
    assert np.abs(pm.sin(quarter) - np.sin(quarter)).max() < 1e-15
    assert np.abs(pm.cos(quarter) - np.cos(quarter)).max() < 1e-15
    assert pm.arcsin(1.0) == np.pi / 2 and pm.arcsin(-1.0) == -np.pi / 2 and pm.arcsin(0.0) == 0.0
    with np.errstate(invalid="ignore"):
        assert np.isnan(pm.arcsin(1.5)) and np.isnan(pm.power(-2.0, 0.5))
    assert pm.power(0.0, 0.85) == 0.0 and pm.power(0.0, -0.5) == np.inf and pm.power(2.0, -2) == 0.25
    x = _R.uniform(-3, 3, 1000)
    assert np.array_equal(pm.power(x, 3), x * x * x) and np.array_equal(pm.power(x, 5), x * x * x * x * x)
    assert np.array_equal(pm.power(x, 0), np.ones_like(x)) and np.array_equal(pm.power(x, -1), 1.0 / x)
    assert pm.hypot(3.0, 4.0) == 5.0 and pm.tanh(0.0) == 0.0 and pm.tanh(40.0) == 1.0 and pm.tanh(-40.0) == -1.0
    assert np.signbit(pm.tanh(-0.0)) and pm.tanh(1e-300) == 1e-300


def test_portable_results_keep_float32_and_scalars():
    x32 = _R.uniform(-3, 3, (100, 3)).astype(np.float32)
    m = np.array(geometry.S.rot_z(30.0))
    for r in (pm.sin(x32), pm.exp(x32), pm.power(np.abs(x32), 0.85), pm.arctan2(x32, x32 + 1), pm.hypot(x32, x32),
              pm.matmul(x32, m), pm.dot3(x32, x32), pm.length(x32), pm.normalize(x32)):
        assert r.dtype == np.float32
    # float32 results are the float64 results rounded once
    assert np.array_equal(pm.sin(x32), pm.sin(x32.astype(np.float64)).astype(np.float32))
    assert np.array_equal(pm.matmul(x32, m), pm.matmul(x32.astype(np.float64), m).astype(np.float32))
    for r in (pm.sin(0.5), pm.cos(np.float64(0.5)), pm.exp(1.0), pm.log(2.0), pm.arcsin(0.5), pm.tanh(0.3)):
        assert isinstance(r, np.float64)


def test_portable_linear_algebra_matches_numpy():
    a = _R.uniform(-1, 1, (5000, 3))
    b = _R.uniform(-1, 1, (5000, 3))
    m = _R.uniform(-1, 1, (3, 3))
    # written-out column sums: exactly the fixed-order definition, and close to BLAS
    expect = np.stack([a[:, 0] * m[0, j] + a[:, 1] * m[1, j] + a[:, 2] * m[2, j] for j in range(3)], axis=1)
    assert np.array_equal(pm.matmul(a, m), expect)
    assert np.allclose(pm.matmul(a, m), a @ m, rtol=0, atol=1e-15)
    assert np.allclose(pm.matmul(a, m[:, 0]), a @ m[:, 0], rtol=0, atol=1e-15)
    assert np.allclose(pm.matmul(m, m), m @ m, rtol=0, atol=1e-15)
    assert np.allclose(pm.dot3(a, b), (a * b).sum(axis=1), rtol=0, atol=1e-15)
    assert np.allclose(pm.dot3(a, b[0]), a @ b[0], rtol=0, atol=1e-15)
    assert np.allclose(pm.length(a), np.linalg.norm(a, axis=1), rtol=1e-15, atol=0)
    assert np.array_equal(pm.cross(a, b), np.cross(a, b))
    assert np.allclose(pm.normalize(a), a / np.linalg.norm(a, axis=1, keepdims=True), rtol=0, atol=1e-15)
    assert np.array_equal(pm.normalize(np.zeros((1, 3)), 1e-9), np.zeros((1, 3)))


def test_portable_vertex_normals_match_trimesh():
    for mesh in (trimesh.creation.icosphere(subdivisions=3), trimesh.creation.box(extents=(1.0, 2.0, 3.0)),
                 trimesh.creation.cylinder(radius=0.3, height=1.0, sections=17)):
        n = pm.vertex_normals(mesh.vertices, mesh.faces)
        assert np.abs(n - mesh.vertex_normals).max() < 1e-12
