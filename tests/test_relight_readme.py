"""The README's relight code blocks run as written, against a fixture dataset at ``out/quickstart``.

Each block is taken from README.md itself (the ```python block that holds a
marker line) and run in a fresh Python process whose working folder holds
``out/quickstart`` (the numpy sphere dataset of tests/relight_fixtures.py),
so the README cannot drift from what works.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("webdataset")

from PIL import Image  # noqa: E402

from tests.relight_fixtures import make_sphere_dataset  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}


def readme_block(marker: str) -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"README: {len(found)} python blocks hold {marker!r}"
    return found[0]


def _run(code: str, cwd) -> subprocess.CompletedProcess:
    script = os.path.join(cwd, "readme_block.py")
    with open(script, "w") as f:
        f.write(code)
    r = subprocess.run([sys.executable, script], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    make_sphere_dataset(str(root / "out" / "quickstart"), groups={"train": 4, "val": 1, "test": 2}, k=3, res=32)
    return root


def test_loader_snippet_runs_as_written_with_and_without_a_photos_folder(quickstart):
    code = readme_block("make_loader(")
    assert 'real_portraits=photos' in code
    r = _run(code, quickstart)  # no photos/: synthetic pairs only
    first = r.stdout.splitlines()[0]
    assert first.startswith("torch.Size([8, 3, 64, 64]) [0, 0, 0, 0, 0, 0, 0, 0]")
    assert r.stdout.splitlines()[1].startswith("12 ")  # 2 test groups x 3 x 2 ordered pairs
    photos = quickstart / "photos"
    photos.mkdir()
    for k in range(3):
        Image.new("RGB", (48, 40), (40 * k, 90, 160)).save(photos / f"me_{k}.png")
    try:
        r = _run(code, quickstart)  # with photos/: real portraits mixed in (task 1), at a seeded 30%
        assert "1" in r.stdout.splitlines()[0].split("]")[1]  # seeded: this batch holds real portraits
    finally:
        for p in photos.iterdir():
            p.unlink()
        photos.rmdir()


def test_plain_webdataset_exr_snippet_decodes_the_env_members(quickstart):
    code = readme_block("exr_from_bytes")
    r = _run(code + "\nprint(env.shape, env.dtype, float(env.max()) > 0)\n", quickstart)
    assert r.stdout.strip() == "(16, 32, 3) float32 True"  # the fixture's env_width is 32
