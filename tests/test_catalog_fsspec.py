"""Manifests and assets behind fsspec URLs (memory:// stands in for s3:// or gs://)."""

from __future__ import annotations

import fsspec
import numpy as np

from assets_manifest import validate
from assets_manifest.schema import read_manifest, read_rows, write_manifest
from assets_manifest.scan import record_for
from assets_manifest import hdri_io
from conftest import sky


def test_remote_manifest_and_assets_validate(tmp_path):
    local = str(tmp_path / "sky.exr")
    hdri_io.write_exr(local, sky())
    fs = fsspec.filesystem("memory")
    fs.put_file(local, "/catalog/hdri/sky.exr")
    row, problems = record_for(local, str(tmp_path / "m.parquet"), "CC0-1.0", "test")
    assert problems == []
    row.update(uri="hdri/sky.exr", split="train")  # relative to the remote manifest
    write_manifest([row], "memory://catalog/manifest.parquet")
    assert read_manifest("memory://catalog/manifest.parquet").num_rows == 1
    assert validate.validate("memory://catalog/manifest.parquet", progress=False) == []
    with fs.open("/catalog/hdri/sky.exr", "wb") as f:  # replace with a different map
        buf = tmp_path / "other.exr"
        hdri_io.write_exr(str(buf), sky() * 2)
        f.write(buf.read_bytes())
    problems = validate.validate("memory://catalog/manifest.parquet", progress=False)
    assert any(p.startswith("memory://catalog/hdri/sky.exr: sha256") for p in problems), problems
    assert read_rows("memory://catalog/manifest.parquet")[0]["hdri"]["width"] == 64
