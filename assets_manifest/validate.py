"""Check a manifest against the files it lists.

Every asset is re-read: hashes and sizes must match (the file is the one that
was catalogued), licences must be known, and the same rules as ``scan``
apply (:mod:`assets_manifest.checks`), with the units and axes the manifest
records (size after scaling, the face looking along ``forward_axis``). Split hygiene is checked too: a
content hash may appear in one split only.
"""

from __future__ import annotations

from typing import Any, Callable

import fsspec
from tqdm import tqdm

from assets_manifest import axes, checks, hdri_io, licenses, mesh_probe
from assets_manifest.mesh_probe import BlenderProbe
from assets_manifest.schema import AssetError, read_rows, resolve_uri, sha256_file


def _check_row(row: dict[str, Any], manifest_path: str, probe_blender: BlenderProbe | None) -> list[str]:
    uri = resolve_uri(row["uri"], manifest_path)
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        return [f"{uri}: file not found (asset {row['asset_id']})"]
    problems = []
    try:
        licenses.normalize(row["license"], uri)
    except AssetError as e:
        problems.append(str(e))
    size = fs.size(path)
    if size != row["bytes"]:
        problems.append(f"{uri}: {size} bytes, manifest says {row['bytes']} (file changed or truncated)")
    digest = sha256_file(uri)
    if digest != row["sha256"]:
        problems.append(f"{uri}: sha256 {digest[:12]}... does not match the manifest's {row['sha256'][:12]}...")
    try:
        if row["kind"] == "hdri":
            problems += checks.check_hdri(uri, hdri_io.read_hdri(uri))
        else:
            with hdri_io.local_path(uri, "." + row["format"]) as local:
                info = mesh_probe.probe_mesh(local, probe_blender)
            place = axes.from_row(row["head"], row["format"], uri)
            if place is None:  # a manifest from before units and axes: the file's own
                place = axes.placement({}, row["format"], uri, native=info.get("_native"))
            problems += checks.check_head(uri, info, place)
            for tex in (row["head"] or {}).get("textures") or []:
                if tex["sha256"] and not tex["uri"].startswith("embedded:"):
                    t_uri = resolve_uri(tex["uri"], manifest_path)
                    tfs, tpath = fsspec.core.url_to_fs(t_uri)
                    if not tfs.exists(tpath):
                        problems.append(f"{uri}: {tex['role']} texture {t_uri} is missing")
                    elif sha256_file(t_uri) != tex["sha256"]:
                        problems.append(f"{uri}: {tex['role']} texture {t_uri} changed since it was catalogued")
    except AssetError as e:
        problems.append(str(e))
    return sorted(set(problems), key=problems.index)


def validate(
    manifest_path: str,
    progress: bool = True,
    on_problem: Callable[[str], None] | None = None,
    probe_blender: BlenderProbe | None = None,
) -> list[str]:
    """All problems found, one line each; empty means the manifest is good.

    ``probe_blender`` reads FBX/.blend heads (:func:`assets_manifest.mesh_probe.probe_mesh`)."""
    rows = read_rows(manifest_path)
    problems: list[str] = []
    split_of: dict[str, str] = {}
    for row in tqdm(rows, desc="validate", unit="asset", disable=not progress):
        found = _check_row(row, manifest_path, probe_blender)
        prev = split_of.setdefault(row["sha256"], row["split"])
        if prev != row["split"]:
            found.append(f"{row['uri']}: the same content is in splits {prev} and {row['split']} (leak)")
        for p in found:
            if on_problem:
                on_problem(p)
        problems += found
    return problems
