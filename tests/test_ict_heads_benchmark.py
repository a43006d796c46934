"""Smoke test of benchmarks/ict_heads.py at a tiny size: sheet, before/after and timing all run and write PNGs.

The benchmark's figures and full-size pictures come from the real ICT-FaceKit (BENCHMARKS.md); here a
miniature FaceKit-layout catalog (tests/test_ict_facekit.py) and two procedural heads, 32 px, 1 sample.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import ROOT, run_cli
from tests.test_ict_facekit import make_mini_facekit

pytest.importorskip("bpy")


def test_ict_heads_benchmark_smoke(tmp_path):
    ict, proc = str(tmp_path / "ict"), str(tmp_path / "proc")
    r = run_cli("assets", "ict-facekit", make_mini_facekit(str(tmp_path / "fk")), "--heads", "2", "--out", ict, "-q")
    assert r.returncode == 0, r.stderr
    r = run_cli("assets", "builtin", "--out", proc, "--heads", "2", "--hdris", "0", "--no-blender-hdris", "-q")
    assert r.returncode == 0, r.stderr
    sheet, ba = str(tmp_path / "sheet.png"), str(tmp_path / "ba.png")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "ict_heads.py"),
                        "--catalog", os.path.join(ict, "manifest.parquet"),
                        "--procedural", os.path.join(proc, "manifest.parquet"),
                        "--sheet", sheet, "--before-after", ba, "--timing", "--timing-heads", "1",
                        "--timing-sizes", "32:1", "--resolution", "32", "--samples", "1"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "ICT-FaceKit (OBJ)" in r.stdout and "group" in r.stdout
    with Image.open(sheet) as im:
        assert im.size[0] == 2 * 4 * 32 + 8  # 2 heads x 4 HDRIs per row, a gap between the heads
    with Image.open(ba) as im:
        assert im.size[0] == 2 * 32 + 4
