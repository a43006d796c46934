"""synthgen end to end with real Blender: shards, env convention, determinism, failures, inspect."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

pytest.importorskip("bpy")

from assets_manifest import hdri_io  # noqa: E402
from synthgen import dataset  # noqa: E402
from synthgen.format import codecs, shard as shard_format  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = os.path.join(ROOT, "jobs", "quickstart.toml")
TINY = ["render.resolution=48", "render.samples=4", "render.passes=[\"albedo\", \"normal\", \"depth\"]",
        "splits.train=3", "splits.val=1", "splits.test=1", "job.shard_size=2",
        "lighting.hdris_per_group=2", "lighting.rotations_per_hdri=1", "lighting.env_width=32"]


def synthgen(*args: str) -> subprocess.CompletedProcess:
    if args[0] == "render":
        args = (*args, "--local")  # the renderer in one process; tests/test_farm.py runs the Ray path
    return subprocess.run([sys.executable, "-m", "synthgen.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900)


def sets(catalog: str, extra=()) -> list[str]:
    out = []
    for s in [f'job.catalogs=["{catalog}"]', *TINY, *extra]:
        out += ["--set", s]
    return out


@pytest.fixture(scope="module")
def rendered(catalog, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("render") / "ds")
    r = synthgen("render", QUICK, "--out", out, "-q", *sets(catalog))
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_dataset_layout_and_format(rendered):
    meta = json.load(open(os.path.join(rendered, "dataset.json")))
    assert meta["format"] == "relight-wds/2"
    assert meta["counts"] == {"planned": 5, "written": 5, "failed": 0, "lightings_per_group": 2, "images": 10}
    assert meta["splits"]["train"]["pattern"] == "shards/train-{000000..000001}.tar"
    assert [s["groups"] for s in meta["splits"]["train"]["shards"]] == [2, 1]
    wids = json.load(open(os.path.join(rendered, "train.wids.json")))
    assert wids["__kind__"] == "wids-shard-index-v1" and sum(s["nsamples"] for s in wids["shardlist"]) == 3
    index = pq.read_table(os.path.join(rendered, "index.parquet")).to_pandas()
    assert len(index) == 5 and set(index.split) == {"train", "val", "test"}
    assert pq.read_table(os.path.join(rendered, "failures.parquet")).num_rows == 0
    samples = list(dataset.iter_samples(rendered))
    assert len(samples) == 5
    s = samples[0]
    fields = {k for k in s if not k.startswith("__")}
    assert shard_format.check_fields(s["__key__"], fields) == 2
    assert {"albedo.png", "normal.exr", "depth.exr"} <= fields
    rgb = np.asarray(Image.open(io.BytesIO(s["rgb_00.png"])))
    mask = np.asarray(Image.open(io.BytesIO(s["mask.png"])))
    env = np.asarray(Image.open(io.BytesIO(s["env_00.png"])))
    assert rgb.shape == (48, 48, 3) and mask.shape == (48, 48) and env.shape == (16, 32, 3)
    assert 0.1 < (mask > 128).mean() < 0.95  # the head is in the frame, not filling it
    env_hdr = codecs.exr_from_bytes(s["env_00.exr"])
    # env png is exactly the LDR encoding of the HDR env (DESIGN.md), up to half-float rounding
    assert np.abs(np.round(np.clip(env_hdr, 0, 1) ** (1 / 2.2) * 255) - env).max() <= 1
    meta = json.loads(s["json"])
    assert meta["seeds"]["seed_sequence"] == [meta["seeds"]["job_seed"], meta["group_index"]]
    assert len(meta["lightings"]) == 2 and all("cycles_seed" in lt for lt in meta["lightings"])
    assert np.asarray(meta["camera"]["intrinsics"]).shape == (3, 3)
    plan_rows = {r["key"]: r for r in pq.read_table(os.path.join(rendered, "plan.parquet")).to_pylist()}
    for smp in samples:  # each sample records the hair its plan row resolved (style, length, colour, beard)
        m = json.loads(smp["json"])
        spec = json.loads(plan_rows[smp["__key__"]]["hair"])
        assert m["hair"] == {"style": spec["style"], "length_mm": spec["length_mm"], "melanin": spec["melanin"],
                             "redness": spec["redness"], "greying": spec["greying"], "beard": spec["beard"]["style"]}
    depth = codecs.exr_from_bytes(s["depth.exr"])
    assert 0.2 < np.median(depth[mask > 250]) < 3.0 and (depth[mask == 0] == 0).all()
    normal = codecs.exr_from_bytes(s["normal.exr"])
    assert np.median(normal[mask > 250][:, 2]) > 0.5  # camera frame: visible surfaces face the camera (+z)
    assert os.path.getsize(os.path.join(rendered, "preview.png")) > 5000


def test_inspect_validates_and_catches_damage(rendered, tmp_path):
    r = synthgen("inspect", rendered)
    assert r.returncode == 0, r.stderr
    assert "planned 5, written 5, failed 0" in r.stdout and "train" in r.stdout
    import shutil

    copy = str(tmp_path / "copy")
    shutil.copytree(rendered, copy)
    tar = os.path.join(copy, "shards", "val-000000.tar")
    with open(tar, "r+b") as f:
        f.truncate(os.path.getsize(tar) // 2)
    r = synthgen("inspect", copy)
    assert r.returncode == 1 and "val-000000.tar: sha256 differs" in r.stderr


def test_same_job_twice_gives_identical_dataset(rendered, catalog, tmp_path):
    out = str(tmp_path / "again")
    r = synthgen("render", QUICK, "--out", out, "-q", *sets(catalog))
    assert r.returncode == 0, r.stderr[-3000:]
    a = json.load(open(os.path.join(rendered, "dataset.json")))
    b = json.load(open(os.path.join(out, "dataset.json")))
    assert a == b  # same shard sha256s: same pixels and metadata, byte for byte
    assert pq.read_table(os.path.join(rendered, "plan.parquet")).equals(pq.read_table(os.path.join(out, "plan.parquet")))
    # and re-running the same command renders nothing: every shard verifies
    r = synthgen("render", QUICK, "--out", out, "-q", *sets(catalog))
    assert r.returncode == 0 and "planned 5, written 5, failed 0" in r.stdout


BLENDER_LINE = re.compile(r"^\s*(\d\d:\d\d[.:]\d+\s+\S+\s+\||\d\d:\d\d:\d\d \| INFO:|Fra:|Read blend|Info:|Saved:)")


def test_local_render_keeps_blenders_console_output_in_logs(catalog, tmp_path):
    """bpy runs in the CLI process with --local: its console output goes to logs/, the progress bar and summary
    to the terminal."""
    out = str(tmp_path / "ds")
    r = synthgen("render", QUICK, "--out", out, *sets(catalog, ["splits.train=2", "splits.val=0", "splits.test=0",
                                                              "hair.enabled=false"]))
    assert r.returncode == 0, r.stderr[-3000:]
    assert [json.loads(s["json"])["hair"] for s in dataset.iter_samples(out)] == [None, None]  # hair off: null
    terminal = (r.stdout + r.stderr).replace("\r", "\n").splitlines()
    assert [line for line in terminal if BLENDER_LINE.match(line)] == []
    assert f"{out}: planned 2, written 2, failed 0" in r.stdout and "render: 100%" in r.stderr
    (log,) = os.listdir(os.path.join(out, "logs"))
    with open(os.path.join(out, "logs", log)) as f:
        logged = f.read().splitlines()
    assert sum(bool(BLENDER_LINE.match(line)) for line in logged) >= 2, logged  # the renders' "Saved:" at least
    if shutil.which("nvidia-smi"):  # a GPU Cycles may use: no error to see
        return
    # an error raised while bpy's output is redirected still reaches the terminal, in one line
    r = synthgen("render", QUICK, "--out", str(tmp_path / "gpu"), "-q",
                 *sets(catalog, ["splits.train=2", "splits.val=0", "splits.test=0", "render.device='gpu'"]))
    assert r.returncode == 1 and r.stdout == "", (r.stdout, r.stderr)
    (line,) = r.stderr.splitlines()
    assert line.startswith("error: RuntimeError: render.device = 'gpu' but Cycles found no "), line


def test_broken_asset_goes_to_failures(catalog, tmp_path):
    import shutil

    root = tmp_path / "cat"
    shutil.copytree(os.path.dirname(catalog), root)
    victim = root / "heads" / "ball2.glb"  # the only val head
    victim.write_bytes(victim.read_bytes()[:200])  # catalogued fine, broken since
    out = str(tmp_path / "ds")
    r = synthgen("render", QUICK, "--out", out, "-q", *sets(str(root / "manifest.parquet")))
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.load(open(os.path.join(out, "dataset.json")))
    assert meta["counts"]["planned"] == 5 and meta["counts"]["failed"] == 1 and meta["counts"]["written"] == 4
    fails = pq.read_table(os.path.join(out, "failures.parquet")).to_pylist()
    assert len(fails) == 1 and fails[0]["split"] == "val" and fails[0]["head_asset_id"].startswith("head-")
    assert fails[0]["error"]
    assert meta["splits"]["val"]["groups"] == 0  # the shard is published (empty), the task is done
    assert "failed 1" in r.stdout


def _light_map(path: str, azimuth_deg: float) -> None:
    """A dim room with one small bright light at ``azimuth_deg`` (map frame), 20 degrees up."""
    from assets_manifest import envmap

    h, w = 64, 128
    d = envmap.directions(h, w)
    centre = envmap.direction_from_angles(azimuth_deg, 20.0)
    ang = np.degrees(np.arccos(np.clip(d @ centre, -1, 1)))
    rgb = 0.01 + 400.0 * np.exp(-0.5 * (ang / 4.0) ** 2)[..., None] * np.ones(3)
    hdri_io.write_exr(path, rgb.astype(np.float32))


def test_env_map_convention_matches_the_renders(tmp_path):
    """Under one dominant light, the lit side of the head and the bright side of env_XX agree."""
    import trimesh

    root = tmp_path / "cat"
    (root / "heads").mkdir(parents=True)
    (root / "hdri").mkdir()
    trimesh.creation.icosphere(subdivisions=4, radius=0.1).export(str(root / "heads" / "ball.glb"))
    _light_map(str(root / "hdri" / "key.exr"), 30.0)
    (root / "_catalog.json").write_text(json.dumps({"license": "CC0-1.0", "split": "train"}))
    manifest = str(root / "manifest.parquet")
    assert synthgen("assets", "scan", str(root), "--out", manifest, "-q").returncode == 0
    extra = ["splits.train=2", "splits.val=0", "splits.test=0", "lighting.hdris_per_group=1",
             "lighting.rotations_per_hdri=8", "lighting.rotation=\"even\"", "lighting.exposure_ev=[0.0, 0.0]",
             "background.modes=[\"transparent\"]", "background.weights=[1.0]", "render.resolution=64",
             "render.samples=8", "camera.yaw_deg=[-30.0, 30.0]", "lighting.env_width=64",
             "hair.enabled=false"]  # strands on a ball would shade it unevenly
    out = str(tmp_path / "ds")
    r = synthgen("render", QUICK, "--out", out, "-q", *sets(manifest, extra))
    assert r.returncode == 0, r.stderr[-3000:]
    checked = {"left": 0, "right": 0, "front": 0, "back": 0}
    for s in dataset.iter_samples(out):
        mask = np.asarray(Image.open(io.BytesIO(s["mask.png"]))) > 200
        ys, xs = np.nonzero(mask)
        cx = xs.mean()
        brightness = []
        for i in range(8):
            env = codecs.exr_from_bytes(s[f"env_{i:02d}.exr"])
            v, u = np.unravel_index(np.argmax(env.sum(-1)), env.shape[:2])
            phi = 2 * np.pi * ((u + 0.5) / env.shape[1] - 0.5)
            dx, dz = np.sin(phi), np.cos(phi)  # light direction in the camera frame (DESIGN.md)
            lum = np.asarray(Image.open(io.BytesIO(s[f"rgb_{i:02d}.png"]))).astype(float).mean(-1)
            weights = lum[mask]
            brightness.append((dz, weights.mean()))
            if abs(dx) > 0.5 and weights.sum() > 0:
                lit_x = (xs * weights).sum() / weights.sum()
                side = "right" if dx > 0 else "left"
                assert (lit_x - cx) * dx > 0, f"{s['__key__']} lighting {i}: light from {side}, lit side disagrees"
                checked[side] += 1
        brightness.sort()
        assert brightness[-1][1] > 2 * brightness[0][1], "front light must light the visible side more than back light"
        checked["front"] += 1
        checked["back"] += 1
    assert all(v > 0 for v in checked.values()), checked


_HISTORY = r"""
import json, sys
import numpy as np
from synthgen import job as jobs, plan
from synthgen.locate import AssetPaths
from synthgen.render import scene
job = jobs.load(sys.argv[1], json.loads(sys.argv[2]))
assets = AssetPaths.from_catalogs(job.job.catalogs)
rows, cfg = [assets.locate(r) for r in plan.make_plan(job).to_pylist()], job.to_dict()["render"]
out = {}
r = scene.GroupRenderer(cfg, tmp_dir=sys.argv[3])
for g in json.loads(sys.argv[4]):  # groups rendered in this order in one Blender session
    out[f"group{g}"] = np.stack(r.render_group(rows[g])[0].rgba)
lt = rows[g]["lightings"][0]
out["reseeded"] = r.render_lighting(dict(lt, cycles_seed=lt["cycles_seed"] + 1), False)[0]
world = r.world["world"].cycles
out["world"] = np.array([world.sampling_method == "MANUAL", world.sample_map_resolution, r.world["env"].image.size[0]])
np.savez(sys.argv[5], **out)
"""


def test_renders_follow_the_planned_seed_not_the_sessions_history(catalog, tmp_path):
    """A group's pixels depend on its plan row only: rendering another group first changes nothing, and the
    planned Cycles seed is applied on every render (bpy does not tag the scene when a Cycles property changes,
    so with persistent data Cycles kept the first render's seed until this was fixed)."""
    overrides = json.dumps([s for s in [f'job.catalogs=["{catalog}"]', *TINY, "render.denoise=false"]])
    runs = {}
    for name, order in (("after", [0, 1]), ("fresh", [1])):
        path = str(tmp_path / f"{name}.npz")
        r = subprocess.run([sys.executable, "-c", _HISTORY, QUICK, overrides, str(tmp_path), json.dumps(order), path],
                           capture_output=True, text=True, cwd=ROOT, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        runs[name] = np.load(path)
    after, fresh = runs["after"]["group1"], runs["fresh"]["group1"]
    assert after.shape == fresh.shape and after[..., 3].max() > 0.5  # the head is in the picture
    np.testing.assert_array_equal(after, fresh)
    # a different seed gives different noise (4 samples, no denoising): the seed reaches Cycles
    assert np.abs(runs["fresh"]["reseeded"] - fresh[0]).max() > 1e-3
    manual, resolution, map_width = runs["fresh"]["world"]
    assert manual and map_width == 256 and resolution == 512  # importance map at twice the map's width


def test_world_map_resolution_rule():
    from synthgen.render.scene import world_map_resolution

    assert [world_map_resolution(w) for w in (16, 256, 1024, 2048, 4096, 8192)] == [64, 512, 2048, 4096, 4096, 8192]
    assert world_map_resolution(1024, configured=700) == 700


def _fake_distribution(root, version: str) -> str:
    """A folder whose dist-info shadows the installed synthlight-toolkit when put first on PYTHONPATH."""
    info = root / f"synthlight_toolkit-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: synthlight-toolkit\nVersion: {version}\n")
    return os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])


def test_samples_record_the_installed_synthgen_version(catalog, tmp_path, monkeypatch):
    """software.synthgen is the distribution's version, in-process (--local) and in a farm worker's Blender child."""
    from synthgen import job as jobs
    from synthgen.render_process import BlenderProcess

    pythonpath = _fake_distribution(tmp_path / "site", "9.8.7.dev13")
    # not from the checkout: `python -m` puts the working folder first on sys.path, and an editable
    # install leaves synthlight_toolkit.egg-info (the real version) there, ahead of the fake one
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / "ds")
    extra = ["splits.train=1", "splits.val=0", "splits.test=0", "render.resolution=32", "render.samples=4",
             "render.passes=[]", "lighting.hdris_per_group=1", "lighting.rotations_per_hdri=2"]
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", "render", QUICK, "--out", out, "--local", "-q",
                        *sets(catalog, extra)], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                       env={**os.environ, "PYTHONPATH": pythonpath})
    assert r.returncode == 0, r.stderr[-3000:]
    (sample,) = dataset.iter_samples(out)
    software = json.loads(sample["json"])["software"]
    assert software["synthgen"] == "9.8.7.dev13", software  # was the literal "0.1.0"
    assert software["blender"].startswith("5.")
    cfg = jobs.load(QUICK, [*TINY, "render.resolution=32"]).to_dict()["render"]
    blender = BlenderProcess(cfg, threads=1, env={"PYTHONPATH": pythonpath})
    try:
        assert blender.software == software  # the child reports what the in-process renderer records
    finally:
        blender.close()


def test_version_is_unknown_only_when_not_installed(monkeypatch):
    import importlib.metadata

    import synthgen

    assert synthgen.version() == importlib.metadata.version("synthlight-toolkit")

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert synthgen.version() == "unknown"
