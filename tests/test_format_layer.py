"""The format layer (issue 13, "One format layer"): one shard format, EXR reader, dataset.json reader,
atomic write and config loader, imported downward only.

Real files throughout: EXRs written with OpenEXR, Parquet with pyarrow, a
synthgen dataset of numpy spheres (tests/relight_fixtures.py) read by
`synthgen inspect` and by relight's loader.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import OpenEXR
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets_manifest import hdri_io, schema
from assets_manifest.scan import record_for
from synthgen import dataset, job as jobs, plan
from synthgen.format import atomic, codecs, config, dataset_index
from tests.relight_fixtures import make_sphere_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------- layering


def test_the_format_layer_imports_no_heavy_or_upper_module():
    code = ("import sys, synthgen.format.shard, synthgen.format.codecs, synthgen.format.atomic, "
            "synthgen.format.config, synthgen.format.dataset_index\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('bpy', 'ray', 'torch', 'webdataset', 'diffusers', 'assets_manifest', 'relight')))\n"
            "print(sorted(m for m in sys.modules if m.startswith('synthgen') and not m.startswith('synthgen.format')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["[]", "['synthgen']"]


def _imports(package: str) -> list[tuple[str, int, str]]:
    """(file, line, imported name) for every import in ``package``, names fully qualified (``from a import b`` -> a.b)."""
    out = []
    for folder, _, files in os.walk(os.path.join(ROOT, package)):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            for node in ast.walk(ast.parse(open(path).read(), path)):
                rel = os.path.relpath(path, ROOT)
                if isinstance(node, ast.Import):
                    out += [(rel, node.lineno, a.name) for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    out += [(rel, node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def _allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_imports_go_downward_only():
    bad = []
    # the catalog uses the format layer and nothing else of synthgen (never the renderer)
    bad += [i for i in _imports("assets_manifest") if i[2].startswith("synthgen")
            and not _allowed(i[2], ("synthgen.format",))]
    # relight reads through the format layer (and the camera-frame env code); never synthgen's private names
    bad += [i for i in _imports("relight") if i[2].startswith("synthgen")
            and (not _allowed(i[2], ("synthgen.format", "synthgen.camera_env"))
                 or any(part.startswith("_") for part in i[2].split(".")))]
    # the format layer itself: standard library, core dependencies, itself
    core = ("numpy", "pyarrow", "OpenEXR", "PIL", "fsspec", "synthgen.format", "__future__")
    bad += [i for i in _imports("synthgen/format") if not _allowed(i[2], core)
            and i[2].split(".")[0] not in sys.stdlib_module_names]
    assert bad == []


def test_one_config_error_class():
    from relight import config as relight_config

    assert jobs.JobError is config.ConfigError and relight_config.ConfigError is config.ConfigError
    with pytest.raises(config.ConfigError, match=r"^--set 'x': expected key=value, e.g. train.max_steps=16$"):
        relight_config.load(None, ["x"])
    with pytest.raises(jobs.JobError, match=r"train.max_step: unknown key; did you mean train.max_steps\?"):
        relight_config.load(None, ["train.max_step=3"])


# ---------------------------------------------------------------- one EXR reader


def _multipart_exr(path: str) -> dict[str, np.ndarray]:
    """A multi-part EXR laid out as Blender 5.x writes its passes: one part per pass."""
    rng = np.random.default_rng(0)
    combined = {c: rng.random((6, 8), dtype=np.float32) for c in "RGBA"}
    depth = rng.random((6, 8), dtype=np.float32) * 10
    def header(name):
        return {"compression": OpenEXR.NO_COMPRESSION, "type": OpenEXR.scanlineimage, "name": name}

    # the colour layer in a later part: a reader of the first part alone would miss it
    parts = [OpenEXR.Part(header("ViewLayer.Depth"), {"ViewLayer.Depth.Z": depth}),
             OpenEXR.Part(header("ViewLayer.Combined"), {f"ViewLayer.Combined.{c}": v for c, v in combined.items()})]
    with OpenEXR.File(parts) as f:
        f.write(path)
    return {**{f"ViewLayer.Combined.{c}": v for c, v in combined.items()}, "ViewLayer.Depth.Z": depth}


def test_one_exr_reader_for_passes_catalog_maps_and_members(tmp_path):
    path = str(tmp_path / "passes.exr")
    expected = _multipart_exr(path)
    channels = codecs.read_exr_channels(path)  # what synthgen.render.passes reads Blender's output with
    assert sorted(channels) == sorted(expected)
    for name, v in expected.items():
        assert np.array_equal(channels[name], v)
    # the catalog reads the same file through the same reader (all parts, first RGB layer)
    rgb = hdri_io.read_hdri(path)
    assert np.array_equal(rgb, np.stack([expected[f"ViewLayer.Combined.{c}"] for c in "RGB"], axis=-1))
    # a shard member: the bytes synthgen writes, read back by relight's decoder
    env = np.linspace(0, 70000, 6 * 8 * 3, dtype=np.float32).reshape(6, 8, 3)
    back = codecs.exr_from_bytes(codecs.exr_bytes(env))
    assert back.max() == codecs.HALF_MAX and np.allclose(back[env < 60000], env[env < 60000], rtol=1e-3)
    hdri_io.write_exr(str(tmp_path / "f32.exr"), env, half=False)
    assert np.array_equal(hdri_io.read_hdri(str(tmp_path / "f32.exr")), env)


def test_a_damaged_exr_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "bad.exr"
    bad.write_bytes(b"\x76\x2f\x31\x01" + b"\0" * 64)
    with pytest.raises(codecs.DecodeError) as e:
        codecs.read_exr(str(bad))
    assert str(e.value).startswith(f"{bad}: unreadable OpenEXR (") and "\n" not in str(e.value)
    with pytest.raises(codecs.DecodeError, match=r"^x\.depth\.exr: unreadable OpenEXR"):
        codecs.exr_from_bytes(bad.read_bytes(), "x.depth.exr")
    with pytest.raises(schema.AssetError, match="unreadable OpenEXR"):
        hdri_io.read_hdri(str(bad))


# ---------------------------------------------------------------- one atomic write


def _plan_table(n: int) -> pa.Table:
    return pa.table({"key": [f"k{i}" for i in range(n)]})


def _failing_write_table(table, where, **kw):
    with open(where, "wb") as f:
        f.write(b"PAR1 half a file")
    raise OSError(28, "No space left on device")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    out = tmp_path / "out"
    plan_path, manifest = str(out / "plan.parquet"), str(out / "manifest.parquet")
    plan.write_plan(_plan_table(3), jobs.Job(), plan_path)
    row = record_for(hdri_io.write_exr(str(tmp_path / "m.exr"), np.ones((4, 8, 3), np.float32)), manifest,
                     "CC0-1.0", "test")[0]
    schema.write_manifest([row], manifest)
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    monkeypatch.setattr(pq, "write_table", _failing_write_table)  # writes half a file, then the disk is full
    with pytest.raises(OSError, match="No space left"):
        plan.write_plan(_plan_table(5), jobs.Job(), plan_path)
    with pytest.raises(OSError, match="No space left"):
        schema.write_manifest([dict(row, license="MIT")], manifest)
    monkeypatch.undo()
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before  # no temp file, old bytes
    # the same for bytes: an exception while writing leaves the old content
    atomic.write_text(str(out / "a.json"), "old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(str(out / "a.json")) as tmp, open(tmp, "w") as f:
            f.write("new, half written")
            raise RuntimeError("writer died")
    assert (out / "a.json").read_text() == "old" and sorted(os.listdir(out)) == sorted([*before, "a.json"])


def test_a_failed_folder_write_keeps_the_old_folder(tmp_path):
    final = tmp_path / "checkpoint-000010"
    with atomic.atomic_dir(str(final)) as tmp:
        open(os.path.join(tmp, "weights"), "w").write("v1")
    with pytest.raises(RuntimeError):
        with atomic.atomic_dir(str(final)) as tmp:
            open(os.path.join(tmp, "weights"), "w").write("v2, half")
            raise RuntimeError("saving died")
    assert os.listdir(tmp_path) == ["checkpoint-000010"] and (final / "weights").read_text() == "v1"
    with atomic.atomic_dir(str(final)) as tmp:
        open(os.path.join(tmp, "weights"), "w").write("v2")
    assert os.listdir(tmp_path) == ["checkpoint-000010"] and (final / "weights").read_text() == "v2"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name fsynced descriptors")
@pytest.mark.parametrize("site", ["plan", "manifest", "exr", "hdr", "dataset_json"])
def test_every_site_fsyncs_the_file_and_its_folder_and_publishes_0666_minus_umask(tmp_path, monkeypatch, site):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    folder = tmp_path / "out"
    folder.mkdir()
    rgb = np.full((4, 8, 3), 0.5, np.float32)
    writers = {
        "plan": ("plan.parquet", lambda p: plan.write_plan(_plan_table(2), jobs.Job(), p)),
        "manifest": ("manifest.parquet", lambda p: schema.write_manifest(
            [record_for(hdri_io.write_exr(str(tmp_path / "m.exr"), rgb), p, "CC0-1.0", "test")[0]], p)),
        "exr": ("map.exr", lambda p: hdri_io.write_exr(p, rgb)),
        "hdr": ("map.hdr", lambda p: hdri_io.write_radiance_hdr(p, rgb)),
        "dataset_json": ("dataset.json", lambda p: atomic.write_json(p, {"a": 1}, indent=1)),
    }
    name, write = writers[site]
    old = os.umask(0o002)
    try:
        monkeypatch.setattr(os, "fsync", fsync)
        write(str(folder / name))
    finally:
        os.umask(old)
        monkeypatch.undo()
    final = os.path.realpath(folder / name)
    assert any(s.startswith(final + ".") and s.endswith(".tmp") for s in synced), synced  # the file, before rename
    assert os.path.realpath(folder) in synced, synced  # the folder, after it
    assert sorted(os.listdir(folder)) == [name]
    assert oct(os.stat(final).st_mode & 0o777) == oct(0o664)


# ---------------------------------------------------------------- one dataset.json reader


@pytest.fixture(scope="module")
def spheres(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("index") / "ds")
    make_sphere_dataset(out, groups={"train": 2, "val": 1, "test": 1}, k=2, res=16, env_width=16, shard_size=1)
    return out


def _corrupt(meta: dict, how: str) -> dict:
    meta = json.loads(json.dumps(meta))
    if how == "format":
        meta["format"] = "relight-wds/0"
    elif how == "counts":
        meta["counts"]["written"] += 1
        meta["counts"]["planned"] += 1
    elif how == "split_groups":
        meta["splits"]["val"]["groups"] = 7
    elif how == "no_splits":
        del meta["splits"]
    elif how == "escape":
        meta["splits"]["train"]["shards"][0]["path"] = "../elsewhere.tar"
    elif how == "entry":
        meta["splits"]["train"]["shards"][0] = "shards/train-000000.tar"
    return meta


@pytest.mark.parametrize("how", ["format", "counts", "split_groups", "no_splits", "escape", "entry"])
def test_inspect_and_the_loader_read_dataset_json_with_the_same_checks(spheres, tmp_path, how):
    data = pytest.importorskip("relight.data")
    copy = str(tmp_path / "ds")
    shutil.copytree(spheres, copy)
    where = os.path.join(copy, "dataset.json")
    meta = _corrupt(json.load(open(where)), how)
    json.dump(meta, open(where, "w"))
    lines, problems = dataset.inspect(copy)
    with pytest.raises(data.DataError) as e:
        data.resolve_shards(copy, "train")
    assert str(e.value) in problems and str(e.value).startswith(f"{where}: ") and "\n" not in str(e.value)
    with pytest.raises(dataset_index.DatasetError) as e2:
        list(dataset.iter_samples(copy, "train"))
    assert str(e2.value) == str(e.value)


def test_the_reader_resolves_shards_inside_the_folder(spheres):
    index = dataset_index.read_index(spheres)
    assert index.split_names() == ["train", "val", "test"] and index.job_id == "spheres"
    urls = index.shard_urls("train")
    assert urls == [os.path.join(spheres, "shards", f"train-{i:06d}.tar") for i in range(2)]
    assert dataset_index.read_index(os.path.join(spheres, "dataset.json")).shard_urls("train") == urls
    assert [s["__key__"] for s in dataset.iter_samples(spheres, "val")] == ["spheres-00000002"]
    with pytest.raises(dataset_index.UnknownSplitError, match=r"no 'holdout' split \(has: test, train, val\)") as e:
        index.shard_urls("holdout")
    assert e.value.exit_code == 2


# ---------------------------------------------------------------- the catalog takes Blender as an argument


def test_the_catalog_reads_fbx_and_blend_only_through_the_reader_passed_in(tmp_path):
    from assets_manifest import scan

    root = tmp_path / "heads"
    root.mkdir()
    fbx = root / "head.fbx"
    fbx.write_bytes(b"Kaydara FBX Binary  \x00\x1a\x00")
    manifest = str(tmp_path / "manifest.parquet")
    with pytest.raises(schema.AssetError) as e:
        record_for(str(fbx), manifest, "MIT", "test")
    msg = str(e.value)
    assert msg.startswith(f"{fbx}: reading .fbx needs Blender") and "render" in msg and "synthgen assets" in msg
    assert "\n" not in msg
    assert scan.scan(str(root), manifest, license="MIT", progress=False).problems == [msg]
    seen = []

    def probe_blender(path: str) -> dict:
        seen.append(path)
        return {"vertices": 4, "faces": 4, "bbox_min": [-0.1, -0.1, 0.0], "bbox_max": [0.1, 0.1, 0.25],
                "parts": ["head"], "textures": []}

    result = scan.scan(str(root), manifest, license="MIT", progress=False, probe_blender=probe_blender)
    assert seen == [str(fbx)] and not any("needs Blender" in p for p in result.problems)
