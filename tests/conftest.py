"""Fixtures that make real asset files: EXR/HDR maps and meshes with textures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from PIL import Image

from assets_manifest import hdri_io

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args: str, module: str = "synthgen.cli") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT)


def sky(h: int = 32, w: int = 64) -> np.ndarray:
    rgb = np.full((h, w, 3), 0.2, dtype=np.float32)
    rgb[: h // 2] += np.array([0.1, 0.2, 0.6], dtype=np.float32)
    rgb[h // 4, w // 2] = 500.0
    return rgb


def head_mesh() -> trimesh.Trimesh:
    """A 0.22 m 'head' (an icosphere): geometry content is irrelevant to the catalog."""
    m = trimesh.creation.icosphere(subdivisions=3, radius=0.11)
    m.visual = trimesh.visual.TextureVisuals(uv=(m.vertices[:, :2] / 0.22 + 0.5))
    return m


def write_png(path: str, colour=(180, 140, 120)) -> str:
    Image.new("RGB", (8, 8), colour).save(path)
    return path


def write_obj_with_textures(folder: str, stem: str = "head01", missing: str | None = None) -> str:
    """OBJ + MTL referencing albedo/normal/roughness maps; ``missing`` names a role left out on disk."""
    os.makedirs(folder, exist_ok=True)
    obj = os.path.join(folder, f"{stem}.obj")
    head_mesh().export(obj, include_texture=False)
    with open(obj) as f:
        body = f.read()
    with open(obj, "w") as f:
        f.write(f"mtllib {stem}.mtl\nusemtl skin\n" + body)
    maps = {"albedo": "map_Kd", "normal": "map_Bump", "roughness": "map_Pr"}
    with open(os.path.join(folder, f"{stem}.mtl"), "w") as f:
        f.write("newmtl skin\nKd 0.8 0.6 0.5\n")
        for role, stmt in maps.items():
            name = f"{stem}_{role}.png"
            f.write(f"{stmt} {name}\n")
            if role != missing:
                write_png(os.path.join(folder, name))
    return obj


@pytest.fixture
def good_assets(tmp_path) -> str:
    root = tmp_path / "assets"
    (root / "hdri").mkdir(parents=True)
    hdri_io.write_exr(str(root / "hdri" / "sky.exr"), sky())
    hdri_io.write_radiance_hdr(str(root / "hdri" / "sky2.hdr"), sky() * 0.5)
    heads = root / "heads"
    write_obj_with_textures(str(heads))
    head_mesh().export(str(heads / "head02.ply"))
    head_mesh().export(str(heads / "head03.glb"))
    write_png(str(heads / "head03_subsurface.png"))
    with open(root / "_catalog.json", "w") as f:
        json.dump({"license": "CC0-1.0", "source": "test fixtures"}, f)
    with open(heads / "head02.ply.asset.json", "w") as f:
        json.dump({"license": "CC-BY-4.0", "split": "test"}, f)
    return str(root)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> str:
    """The tests' small catalog (tests/make_catalog.py: sphere heads, tiny HDRIs), one per test module."""
    root = tmp_path_factory.mktemp("catalog")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "make_catalog.py"), str(root)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return str(root / "manifest.parquet")


@pytest.fixture(scope="session")
def blender_dataset(tmp_path_factory) -> str:
    """A tiny dataset synthgen renders with Blender (2 train groups, 1 test group, K = 4, 32 px), made once."""
    pytest.importorskip("bpy")
    cat = tmp_path_factory.mktemp("blender_catalog")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "make_catalog.py"), str(cat)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = str(tmp_path_factory.mktemp("blender_render") / "ds")
    sets = [f'job.catalogs=["{cat}/manifest.parquet"]', "render.resolution=32", "render.samples=2",
            "render.passes=[]", "splits.train=2", "splits.val=0", "splits.test=1", "job.shard_size=2",
            "lighting.hdris_per_group=2", "lighting.rotations_per_hdri=2", "lighting.env_width=32"]
    args = [a for s in sets for a in ("--set", s)]
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", "render", os.path.join(ROOT, "jobs", "quickstart.toml"),
                        "--out", out, "--local", "-q", *args], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out
