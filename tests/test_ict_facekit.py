"""synthgen assets ict-facekit on a miniature FaceKit-layout folder the test writes (nothing downloaded)."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import trimesh

from assets_manifest import hair, ict_facekit
from assets_manifest.schema import read_rows
from tests.conftest import ROOT, run_cli

ICT_MATERIALS = ["M_Face", "M_BackHead", "M_GumsTongue", "M_Teeth", "M_ScleraLeft", "M_IrisLeft",
                 "M_ScleraRight", "M_IrisRight", "M_LacrimalFluid", "M_EyeBlend", "M_EyeOcclusion", "M_EyeLashes"]
EXPRESSIONS = ["eyeBlink_L", "eyeBlink_R", "jawOpen"]
HEADER = "# ICT FaceKit (miniature test model)\n"


def _mini_arrays(identities: int = 3):
    """Neutral sphere (cm, Y up, face toward +Z), identity (3 smooth, then noisy) and 3 expression shapes."""
    m = trimesh.creation.icosphere(subdivisions=3, radius=11.0)
    v, f = np.asarray(m.vertices), np.asarray(m.faces)
    x, y, z = v.T
    ids = [v * [1.08, 1.0, 1.0], v + np.stack([0 * x, 0.1 * z, 0 * z], 1), v * [1.0, 1.0, 0.93]]
    ids += [v + np.random.default_rng(i).normal(0, 0.05, v.shape) for i in range(3, identities)]
    lid = np.exp(-((y - 4.0) ** 2 + (z - 9.0) ** 2) / 8.0)
    blink_l = v + np.stack([0 * x, -1.5 * lid * (x > 0), 0 * z], 1)
    blink_r = v + np.stack([0 * x, -1.5 * lid * (x < 0), 0 * z], 1)
    jaw = v + np.stack([0 * x, -2.0 * np.clip(-y / 11.0, 0, 1), -0.5 * np.clip(-y / 11.0, 0, 1)], 1)
    return v, f, ids[:identities], [blink_l, blink_r, jaw]


def _write_obj(path: str, v: np.ndarray, f: np.ndarray) -> None:
    """An OBJ in ICT's layout: licence header, mtllib, v, vt, then usemtl groups of quads/triangles."""
    uv = (v[:, :2] / 22.0 + 0.5)
    lines = [HEADER, "mtllib ICTFaceModelMaterial.mtl\n"]
    lines += [f"v {a:.6g} {b:.6g} {c:.6g}\n" for a, b, c in v]
    lines += [f"vt {a:.6g} {b:.6g}\n" for a, b in uv]
    for k, chunk in enumerate(np.array_split(f, len(ICT_MATERIALS))):
        lines.append(f"usemtl {ICT_MATERIALS[k]}\n")
        lines += ["f " + " ".join(f"{i + 1}/{i + 1}" for i in tri) + "\n" for tri in chunk]
    with open(path, "w") as fh:
        fh.writelines(lines)


def make_mini_facekit(root: str, identities: int = 3) -> str:
    """A FaceKit-layout clone at ``root`` (with FaceXModel/); returns ``root``."""
    folder = os.path.join(root, "FaceXModel")
    os.makedirs(folder)
    v, f, ids, exps = _mini_arrays(identities)
    _write_obj(os.path.join(folder, "generic_neutral_mesh.obj"), v, f)
    for i, s in enumerate(ids):
        _write_obj(os.path.join(folder, f"identity{i:03d}.obj"), s, f)
    for name, s in zip(EXPRESSIONS, exps):
        _write_obj(os.path.join(folder, f"{name}.obj"), s, f)
    with open(os.path.join(folder, "ICTFaceModelMaterial.mtl"), "w") as fh:
        fh.writelines(f"newmtl {m}\nKd 0.6 0.6 0.6\n" for m in ICT_MATERIALS)
    with open(os.path.join(folder, "vertex_indices.json"), "w") as fh:
        json.dump({"expressions": ["browDown_L"] + EXPRESSIONS}, fh)  # a listed shape this clone lacks
    return root


@pytest.fixture
def mini(tmp_path) -> str:
    return make_mini_facekit(str(tmp_path / "ICT-FaceKit"))


def _obj_vertices(path: str) -> np.ndarray:
    with open(path) as fh:
        return np.array([line.split()[1:4] for line in fh if line.startswith("v ")], dtype=float)


def _files(folder: str) -> dict[str, bytes]:
    out = {}
    for p in sorted(glob.glob(os.path.join(folder, "**", "*"), recursive=True)):
        if os.path.isfile(p):
            out[os.path.relpath(p, folder)] = open(p, "rb").read()
    return out


def test_command_writes_a_catalog_that_validates(mini, tmp_path):
    out = str(tmp_path / "cat")
    r = run_cli("assets", "ict-facekit", mini, "--heads", "3", "--out", out, "--seed", "5", "-q")
    assert r.returncode == 0, r.stderr
    names = sorted(os.listdir(os.path.join(out, "heads")))
    assert names == sorted(f"ict_5_{i:04d}{ext}" for i in range(3) for ext in (".obj", ".mtl", ".obj.asset.json"))
    r = run_cli("assets", "validate", os.path.join(out, "manifest.parquet"), "-q")
    assert r.returncode == 0, r.stderr
    rows = read_rows(os.path.join(out, "manifest.parquet"))
    assert len(rows) == 3 and {r["license"] for r in rows} == {"MIT"}
    model = os.path.join(mini, "FaceXModel")
    v0 = _obj_vertices(os.path.join(model, "generic_neutral_mesh.obj"))
    ids = [_obj_vertices(os.path.join(model, f"identity{i:03d}.obj")) for i in range(3)]
    exps = [_obj_vertices(os.path.join(model, f"{n}.obj")) for n in EXPRESSIONS]
    for row in rows:
        head = row["head"]
        assert head["generator"] == "ict-facekit" and "github.com/ICT-VGL/ICT-FaceKit" in row["source"]
        # every part, by its ICT material name, plus the cornea split off each sclera shell over its iris
        assert sorted(head["parts"]) == sorted(ICT_MATERIALS + ["M_CorneaLeft", "M_CorneaRight"])
        p = json.loads(head["generator_params"])
        assert list(p["identity_weights"]) == ["identity000", "identity001", "identity002"]
        assert set(p["expression_weights"]) <= set(EXPRESSIONS)
        assert p["scalp_materials"] == ["M_BackHead"] and 1 <= p["fitzpatrick_type"] <= 6
        assert 0.005 <= p["appearance"]["melanin"] <= 0.5
        # hair from the catalog seed and head index, in the appearance's hair colour (issue 15)
        assert p["hair"]["seed"] == hair.derive_seed(p["seed"], p["head_index"])
        assert p["hair"]["melanin"] == round(p["appearance"]["hair_melanin"], 6) and p["hair"]["style"] in hair.STYLES
        # the mesh is exactly neutral + weighted deltas, in metres
        want = v0.copy()
        for w, s in zip(p["identity_weights"].values(), ids):
            want += w * (s - v0)
        for name, s in zip(EXPRESSIONS, exps):
            want += p["expression_weights"].get(name, 0.0) * (s - v0)
        got = _obj_vertices(os.path.join(out, row["uri"]))
        assert np.abs(got - want / 100.0).max() < 1e-7
        assert 0.2 < np.linalg.norm(np.subtract(head["bbox_max"], head["bbox_min"])) < 0.6  # metres, not cm
        side = json.load(open(os.path.join(out, row["uri"] + ".asset.json")))
        assert (side["units"], side["up_axis"], side["forward_axis"], side["license"]) == ("m", "+Y", "+Z", "MIT")
        assert side["material_roles"] == {m: ict_facekit.MATERIAL_ROLES[m]
                                          for m in ICT_MATERIALS + ["M_CorneaLeft", "M_CorneaRight"]}
        assert side["material_roles"]["M_CorneaLeft"] == "cornea"
        with open(os.path.join(out, row["uri"])) as fh:
            text = fh.read()
        assert text.startswith(HEADER) and f"mtllib {row['name']}.mtl" in text  # licence header and own MTL kept
    # the sidecars scan: `synthgen assets scan` of the folder accepts them
    r = run_cli("assets", "scan", out, "--out", str(tmp_path / "rescan.parquet"), "-q")
    assert r.returncode == 0, r.stderr


def test_same_seed_same_bytes_other_seed_other_heads(mini, tmp_path):
    a = ict_facekit.build(mini, str(tmp_path / "a"), 3, seed=11, progress=False)
    b = ict_facekit.build(mini, str(tmp_path / "b"), 3, seed=11, progress=False)
    c = ict_facekit.build(mini, str(tmp_path / "c"), 3, seed=12, progress=False)
    fa, fb = _files(os.path.dirname(a)), _files(os.path.dirname(b))
    assert fa == fb and len(fa) == 10
    oa = [v for k, v in fa.items() if k.endswith(".obj")]
    oc = [v for k, v in _files(os.path.dirname(c)).items() if k.endswith(".obj")]
    assert len(set(oa)) == 3 and not set(oa) & set(oc)
    ids = [json.loads(r["head"]["generator_params"])["identity_weights"] for r in read_rows(c)]
    assert len({json.dumps(i) for i in ids}) == 3


def test_bytes_do_not_depend_on_the_blas_kernel(tmp_path):
    # 100 identity modes, as the real model: a BLAS product over them rounds differently per kernel
    mini = make_mini_facekit(str(tmp_path / "ict100"), identities=100)
    # the files (7 decimals) and the float64 blend itself, whose last bits the decimals could hide
    code = ("import sys, hashlib; from assets_manifest import ict_facekit as k; "
            "k.build(sys.argv[1], sys.argv[2], 2, seed=3, identity_sigma=1.7, progress=False); kit = k.load(sys.argv[1]); "
            "print(hashlib.sha256(b''.join(k.blend(kit, k.sample_head(kit, 3, i, 1.7)).tobytes() "
            "for i in range(4))).hexdigest())")
    outs, blends = {}, {}
    for name, extra in {"default": {}, "prescott": {"OPENBLAS_CORETYPE": "Prescott"}}.items():
        env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE",)}
        env.update(PYTHONPATH=ROOT, **extra)
        r = subprocess.run([sys.executable, "-c", code, mini, str(tmp_path / name)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outs[name], blends[name] = _files(str(tmp_path / name)), r.stdout.split()[-1]
    assert outs["default"] == outs["prescott"] and len(outs["default"]) == 7
    assert blends["default"] == blends["prescott"]


def _no_neutral(root):
    os.remove(os.path.join(root, "FaceXModel", "generic_neutral_mesh.obj"))
    return "generic_neutral_mesh.obj"


def _mismatch(root):
    v, f, _, _ = _mini_arrays()
    _write_obj(os.path.join(root, "FaceXModel", "identity001.obj"), v[:-3], f[:-40])
    return "identity001.obj"


def _no_mtl(root):
    os.remove(os.path.join(root, "FaceXModel", "ICTFaceModelMaterial.mtl"))
    return "ICTFaceModelMaterial.mtl"


def _empty(root):
    for p in glob.glob(os.path.join(root, "FaceXModel", "*")):
        os.remove(p)
    return "FaceXModel"


def _missing(root):
    return "does-not-exist"


@pytest.mark.parametrize("breaks", [_no_neutral, _mismatch, _no_mtl, _empty, _missing])
def test_bad_input_is_one_line_naming_the_file_and_writes_nothing(mini, tmp_path, breaks):
    named = breaks(mini)
    path = os.path.join(tmp_path, named) if breaks is _missing else mini
    out = tmp_path / "out" / "cat"
    r = run_cli("assets", "ict-facekit", path, "--heads", "2", "--out", str(out), "-q")
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], r.stderr
    assert not out.exists() and (not out.parent.exists() or not os.listdir(out.parent))


def test_an_existing_folder_is_kept_unless_overwrite_names_a_catalog(mini, tmp_path):
    out = tmp_path / "cat"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    r = run_cli("assets", "ict-facekit", mini, "--heads", "1", "--out", str(out), "--overwrite", "-q")
    assert r.returncode == 1 and "not a catalog" in r.stderr and (out / "notes.txt").read_text() == "mine"
    ict_facekit.build(mini, str(tmp_path / "cat2"), 1, progress=False)
    r = run_cli("assets", "ict-facekit", mini, "--heads", "2", "--out", str(tmp_path / "cat2"), "-q")
    assert r.returncode == 1 and "--overwrite" in r.stderr
    r = run_cli("assets", "ict-facekit", mini, "--heads", "2", "--out", str(tmp_path / "cat2"), "--overwrite", "-q")
    assert r.returncode == 0, r.stderr
    assert len(read_rows(str(tmp_path / "cat2" / "manifest.parquet"))) == 2


def test_ctrl_c_leaves_no_catalog(mini, tmp_path, monkeypatch):
    from synthgen import cli

    real, calls = ict_facekit.write_head, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ict_facekit, "write_head", interrupted)
    out = tmp_path / "cat"
    assert cli.main(["assets", "ict-facekit", mini, "--heads", "3", "--out", str(out), "-q"]) == 130
    assert len(calls) == 2 and os.listdir(tmp_path) == ["ICT-FaceKit"]  # no DIR, no temporary folder


def test_fewer_identity_modes_work(tmp_path):
    root = make_mini_facekit(str(tmp_path / "ict"), identities=1)
    m = ict_facekit.build(root, str(tmp_path / "cat"), 2, progress=False)
    p = [json.loads(r["head"]["generator_params"]) for r in read_rows(m)]
    assert [list(x["identity_weights"]) for x in p] == [["identity000"]] * 2
    assert all(x["identity_modes"] == 1 for x in p)


def test_expression_mixes_are_sparse_and_never_oppose():
    rng = np.random.default_rng(0)
    seen: dict[str, int] = {}
    sizes = []
    for _ in range(3000):
        w = ict_facekit.sample_expression(rng)
        assert ict_facekit.opposing_pairs(w) == [], w
        assert all(0 < x <= 1 for x in w.values())
        sizes.append(len(w))
        for k in w:
            seen[k] = seen.get(k, 0) + 1
    assert max(sizes) <= 13 and np.mean(sizes) < 5 and sizes.count(0) > 100  # sparse: a few of 53 shapes
    for shape in ("eyeBlink_L", "eyeBlink_R", "mouthSmile_L", "jawOpen", "eyeWide_L", "browInnerUp_L"):
        assert seen.get(shape, 0) > 50, (shape, seen)
    assert ict_facekit.opposing_pairs({"jawLeft": 0.5, "jawRight": 0.2}) == [("jawLeft", "jawRight")]


def test_identity_sigma_scales_the_weights(mini):
    kit = ict_facekit.load(mini)
    a = ict_facekit.sample_head(kit, 4, 0, 1.0).identity
    b = ict_facekit.sample_head(kit, 4, 0, 0.5).identity
    assert all(abs(b[k] - 0.5 * a[k]) < 2e-6 for k in a) and any(abs(x) > 0.05 for x in a.values())


def test_a_generated_head_renders_and_its_weights_reach_the_sample(mini, tmp_path):
    """End to end with real Blender: the ICT catalog in job.catalogs, one 32 px group rendered --local."""
    pytest.importorskip("bpy")
    import tarfile

    from assets_manifest import hdri_io
    from tests.conftest import sky

    heads = ict_facekit.build(mini, str(tmp_path / "ict"), 1, seed=2, fractions="1,0,0", progress=False)
    hd = tmp_path / "hdri"
    hd.mkdir()
    for i in range(2):
        hdri_io.write_exr(str(hd / f"sky{i}.exr"), sky() * (1 + i))
    (hd / "_catalog.json").write_text(json.dumps({"license": "CC0-1.0", "source": "test", "split": "train"}))
    r = run_cli("assets", "scan", str(hd), "--out", str(hd / "manifest.parquet"), "-q")
    assert r.returncode == 0, r.stderr
    sets = [f'job.catalogs=["{heads}", "{hd / "manifest.parquet"}"]', "render.resolution=32", "render.samples=2",
            "render.passes=[]", "splits.train=1", "splits.val=0", "splits.test=0", "job.shard_size=1",
            "lighting.hdris_per_group=2", "lighting.rotations_per_hdri=1", "lighting.env_width=32"]
    out = tmp_path / "ds"
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", "render", os.path.join(ROOT, "jobs", "quickstart.toml"),
                        "--out", str(out), "--local", "-q", *[a for s in sets for a in ("--set", s)]],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    with tarfile.open(out / "shards" / "train-000000.tar") as tar:
        members = {m.name.split(".", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers()}
    meta = json.loads(members["json"])
    row = read_rows(heads)[0]
    assert meta["head"]["asset_id"] == row["asset_id"]
    params = json.loads(meta["head"]["params"])
    assert params == json.loads(row["head"]["generator_params"]) and len(params["identity_weights"]) == 3
    from PIL import Image
    import io
    mask = np.asarray(Image.open(io.BytesIO(members["mask.png"])))
    assert 0.05 < (mask > 127).mean() < 0.95  # the head is in the frame at metre scale


def test_preview_draws_a_heads_only_catalog(mini, tmp_path):
    """`synthgen assets preview` on an ICT catalog (heads, no HDRIs) draws the heads instead of refusing."""
    pytest.importorskip("bpy")
    out = tmp_path / "ict"
    assert run_cli("assets", "ict-facekit", mini, "--heads", "2", "--out", str(out), "-q").returncode == 0
    r = run_cli("assets", "preview", str(out / "manifest.parquet"), "--out", str(tmp_path / "p" / "sheet.png"),
                "--heads", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    assert not (tmp_path / "p" / "sheet.png").exists()  # no HDRIs: no HDRI sheet
    from PIL import Image
    heads = np.asarray(Image.open(tmp_path / "p" / "sheet_heads.png").convert("L"), dtype=np.float64)
    assert heads.std() > 5  # heads drawn over the flat background, not an empty sheet


def _eye_kit(tmp_path) -> str:
    """A FaceKit whose left eye is ICT's shape: a closed sclera shell (r 1.2 cm, looking +Z) around an iris
    disk (r 0.6 cm) 0.9 cm in front of the eye's centre; the face is a sphere behind it."""
    face = trimesh.creation.icosphere(subdivisions=2, radius=9.0)
    shell = trimesh.creation.icosphere(subdivisions=3, radius=1.2)
    disk = trimesh.creation.cylinder(radius=0.6, height=0.05, sections=24)
    centre = np.array([3.0, 4.0, 9.5])
    parts = [("M_Face", face.vertices, face.faces), ("M_ScleraLeft", shell.vertices + centre, shell.faces),
             ("M_IrisLeft", disk.vertices + centre + [0, 0, 0.9], disk.faces)]
    folder = tmp_path / "eye" / "FaceXModel"
    folder.mkdir(parents=True)
    lines, base = [HEADER, "mtllib ICTFaceModelMaterial.mtl\n"], 0
    lines += [f"v {a:.6g} {b:.6g} {c:.6g}\n" for _, v, _ in parts for a, b, c in v]
    for name, v, f in parts:
        lines.append(f"usemtl {name}\n")
        lines += ["f " + " ".join(str(base + i + 1) for i in tri) + "\n" for tri in f]
        base += len(v)
    text = "".join(lines)
    for name in ("generic_neutral_mesh", "identity000", "jawOpen"):
        (folder / f"{name}.obj").write_text(text)
    (folder / "ICTFaceModelMaterial.mtl").write_text("".join(f"newmtl {n}\nKd 0.6 0.6 0.6\n" for n, _, _ in parts))
    return str(folder.parent)


def test_the_cornea_is_the_shell_in_front_of_the_iris(tmp_path):
    """ICT's sclera shell covers the iris; the importer moves the shell's faces in front of the iris disk (and
    only those) to a cornea group, so the eye shows its iris through a clear cornea instead of a white ball."""
    kit = ict_facekit.load(_eye_kit(tmp_path))
    faces, eyes = ict_facekit.eye_split(kit)
    chosen = faces["M_ScleraLeft"]
    assert chosen, "no cornea faces"
    centre = np.array([3.0, 4.0, 9.5])
    for line in chosen:  # every cornea face is on the front cap, over the iris
        c = np.mean([kit.neutral[int(t.split("/")[0]) - 1] for t in kit.lines[line].split()[1:]], axis=0) - centre
        assert c[2] > 0.85 and np.hypot(c[0], c[1]) < 1.1 * 0.6 + 0.05
    shell_lines = [i for i, ln in enumerate(kit.lines) if ln.startswith("f ")][len(trimesh.creation.icosphere(2).faces):]
    front = [i for i in shell_lines[:len(trimesh.creation.icosphere(3).faces)]
             if (np.mean([kit.neutral[int(t) - 1] for t in kit.lines[i].split()[1:]], axis=0) - centre)[2] > 1.0]
    assert set(front) <= set(chosen)  # the cap right over the iris is all cornea
    assert len(chosen) < 0.3 * len(trimesh.creation.icosphere(3).faces)  # and the rest of the ball stays sclera
    out = tmp_path / "cat"
    assert run_cli("assets", "ict-facekit", str(tmp_path / "eye"), "--heads", "1", "--out", str(out), "-q").returncode == 0
    obj = next(p for p in glob.glob(str(out / "heads" / "*.obj")))
    assert "usemtl M_CorneaLeft" in open(obj).read()
    side = json.load(open(obj + ".asset.json"))
    assert side["material_roles"]["M_CorneaLeft"] == "cornea"
