"""Build manifest rows from files: walk a folder, probe each head and HDRI, check it.

Licence and source come, in order of precedence, from a per-file sidecar
``<file>.asset.json``, the nearest ``_catalog.json`` in the file's folder or
above it (up to the scanned root), then the ``license``/``source`` defaults
(command-line flags). A sidecar may also pin ``split``, map material slots
to roles (``material_roles``, :mod:`assets_manifest.material_roles`; the file's
and the folders' mappings are merged, the file's winning), and declare a head's
``units``, ``up_axis`` and ``forward_axis`` (:mod:`assets_manifest.axes`; the
size and facing checks apply them, and the manifest records the values in
force). A head's sidecar key ``hair`` is ``false`` (no strand hair), ``true`` (the
default: a hair spec drawn from the file's sha256, :mod:`assets_manifest.hair`) or an
object of hair keys overriding the drawn ones (``{"style": "long", "melanin": 0.9,
"beard": {"style": "none"}}``); a head with a material of role ``hair`` has hair of its
own and gets none. Unknown sidecar keys and bad values are errors naming the file and
the key, so a typo never silently drops a licence or a unit.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from tqdm import tqdm

from assets_manifest import axes, checks, hair, hdri_io, hdri_stats, licenses, material_roles, mesh_probe, splits
from assets_manifest.mesh_probe import BlenderProbe
from assets_manifest.schema import AssetError, make_asset_id, relative_uri, sha256_file

SIDECAR_SUFFIX = ".asset.json"
FOLDER_SIDECAR = "_catalog.json"
SIDECAR_KEYS = {"license", "source", "split", "material_roles", "hair", *axes.KEYS}


@dataclass
class ScanResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    pinned: set[str] = field(default_factory=set)
    skipped: list[str] = field(default_factory=list)  # files left out for their problems


def kind_of(path: str) -> str | None:
    suffix = os.path.splitext(path)[1].lower()
    if suffix in hdri_io.HDRI_SUFFIXES:
        return "hdri"
    if suffix in mesh_probe.MESH_SUFFIXES:
        return "head"
    return None


def _read_sidecar(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise AssetError(f"{path}: unreadable sidecar ({e})") from None
    if not isinstance(data, dict):
        raise AssetError(f"{path}: sidecar must be a JSON object")
    unknown = sorted(set(data) - SIDECAR_KEYS)
    if unknown:
        raise AssetError(f"{path}: unknown sidecar key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(SIDECAR_KEYS))})")
    if "material_roles" in data:
        material_roles.check_mapping(data["material_roles"], path)
    if "hair" in data and not isinstance(data["hair"], (bool, dict)):
        raise AssetError(f"{path}: sidecar hair must be true, false or an object of hair keys")
    axes.check_values(data, path)
    return data


def sidecar_for(path: str, root: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    folder = os.path.dirname(os.path.abspath(path))
    root = os.path.abspath(root)
    chain = []
    while True:
        chain.append(folder)
        if folder == root or os.path.dirname(folder) == folder:
            break
        folder = os.path.dirname(folder)
    for d in reversed(chain):  # outermost first, nearer folders override
        f = os.path.join(d, FOLDER_SIDECAR)
        if os.path.exists(f):
            _merge(merged, _read_sidecar(f))
    own = path + SIDECAR_SUFFIX
    if os.path.exists(own):
        _merge(merged, _read_sidecar(own))
    return merged


def _merge(merged: dict[str, Any], data: dict[str, Any]) -> None:
    """Nearer sidecars override; ``material_roles`` mappings are merged key by key."""
    roles = {**merged.get("material_roles", {}), **data.get("material_roles", {})}
    merged.update(data)
    if roles:
        merged["material_roles"] = roles


def own_material_roles(path: str) -> dict[str, str]:
    """The ``material_roles`` of the file's own sidecar: each key must name one of its materials."""
    own = path + SIDECAR_SUFFIX
    return _read_sidecar(own).get("material_roles", {}) if os.path.exists(own) else {}


def record_for(
    path: str,
    manifest_path: str,
    license: str,
    source: str,
    split: str = "unassigned",
    generator: str | None = None,
    generator_params: str | None = None,
    probe_blender: BlenderProbe | None = None,
    roles: dict[str, str] | None = None,
    strict_roles: dict[str, str] | None = None,
    declared: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """One manifest row for ``path`` plus the problems found; the row is None-free only if no problems.

    ``probe_blender`` reads FBX/.blend heads (:func:`assets_manifest.mesh_probe.probe_mesh`).
    ``roles`` is the sidecars' ``material_roles``; ``strict_roles`` the file's own, whose keys
    must each name a material of the head (:func:`assets_manifest.material_roles.resolve`).
    ``declared``: a head's ``units``/``up_axis``/``forward_axis`` from its sidecars, if any."""
    kind = kind_of(path)
    if kind is None:
        raise AssetError(f"{path}: not a head ({', '.join(mesh_probe.MESH_SUFFIXES)}) or HDRI ({', '.join(hdri_io.HDRI_SUFFIXES)})")
    license = licenses.normalize(license, path)
    digest = sha256_file(path)
    row: dict[str, Any] = {
        "kind": kind,
        "name": os.path.splitext(os.path.basename(path))[0],
        "uri": relative_uri(path, manifest_path),
        "format": os.path.splitext(path)[1].lower().lstrip("."),
        "sha256": digest,
        "bytes": os.path.getsize(path),
        "license": license,
        "source": source,
        "split": split,
    }
    if kind == "hdri":
        rgb = hdri_io.read_hdri(path)
        problems = checks.check_hdri(path, rgb)
        meta = hdri_stats.hdri_metadata(rgb) if not problems else None
        row["hdri"] = meta and {**meta, "generator": generator, "generator_params": generator_params}
        row["asset_id"] = make_asset_id(kind, [digest])
        return row, problems
    info = mesh_probe.probe_mesh(path, probe_blender)
    materials, declared_roles = info.pop("materials", []), info.pop("declared_roles", {})
    info["material_roles"] = material_roles.resolve(materials, roles, declared_roles, strict_roles, where=path)
    place = axes.placement({k: v for k, v in (declared or {}).items() if k in axes.KEYS}, row["format"], path,
                           native=info.pop("_native", None))
    problems = checks.check_head(path, info, place)
    info.pop("_points", None)
    info.update(place)
    for tex in info["textures"]:
        if not problems and not tex["uri"].startswith("embedded:"):
            tex["sha256"] = sha256_file(tex["uri"])
            tex["uri"] = relative_uri(tex["uri"], manifest_path)
    info.update(generator=generator, generator_params=generator_params)
    row["head"] = info
    row["asset_id"] = make_asset_id(kind, [digest] + [t["sha256"] or "" for t in info["textures"]])
    return row, problems


def add_hair(row: dict[str, Any], sidecar_hair: Any, where: str) -> None:
    """Put a hair spec in a head row's ``generator_params`` (merged into what is there), drawn from its sha256.

    None for an HDRI, a sidecar ``hair = false``, or a head that has a ``hair``-role material (its own hair);
    a sidecar object overrides drawn keys (:func:`assets_manifest.hair.apply_overrides`)."""
    head = row.get("head")
    if row["kind"] != "head" or not head or sidecar_hair is False:
        return
    if any(r["role"] == "hair" for r in head.get("material_roles") or ()):
        return
    spec = hair.draw_hair(hair.seed_from_sha256(row["sha256"]))
    if isinstance(sidecar_hair, dict):
        spec = hair.apply_overrides(spec, sidecar_hair, where)
    raw = head.get("generator_params")
    try:
        params = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        params = None
    if not isinstance(params, dict):
        raise ValueError(f"{where}: generator_params is not a JSON object; cannot add a hair spec")
    params.setdefault("hair", spec)
    head["generator_params"] = json.dumps(params, sort_keys=True, separators=(",", ":"))


def list_assets(root: str) -> list[str]:
    if not os.path.isdir(root):
        raise AssetError(f"{root}: not a folder")
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        found += [os.path.join(folder, f) for f in sorted(files) if kind_of(f) and not f.startswith(".")]
    return found


def scan(
    root: str,
    manifest_path: str,
    license: str | None = None,
    source: str | None = None,
    fractions=splits.DEFAULT_FRACTIONS,
    progress: bool = True,
    on_problem: Callable[[str], None] | None = None,
    probe_blender: BlenderProbe | None = None,
) -> ScanResult:
    result = ScanResult()
    paths = list_assets(root)
    first_with: dict[str, str] = {}  # asset_id -> the first file with that content
    for path in tqdm(paths, desc="scan", unit="asset", disable=not progress):
        try:
            meta = sidecar_for(path, root)
            lic = meta.get("license", license)
            if lic is None:
                raise AssetError(f"{path}: no licence (add {os.path.basename(path)}{SIDECAR_SUFFIX}, a {FOLDER_SIDECAR}, or --license)")
            row, problems = record_for(path, manifest_path, lic, meta.get("source", source or ""),
                                       probe_blender=probe_blender, roles=meta.get("material_roles"),
                                       strict_roles=own_material_roles(path), declared=meta)
        except AssetError as e:
            row, problems = None, [str(e)]
        if not problems and row["asset_id"] in first_with:
            # byte-identical files (and textures) share an asset_id: a manifest lists content once
            problems = [f"{path}: same content as {first_with[row['asset_id']]} ({row['asset_id']}); "
                        "remove one of them (--skip-bad keeps the first)"]
        if problems:
            result.problems += problems
            result.skipped.append(path)
            if on_problem:
                for p in problems:
                    on_problem(p)
            continue
        if "split" in meta:
            if meta["split"] not in ("train", "val", "test"):
                result.problems.append(f"{path}: sidecar split {meta['split']!r} must be train, val or test")
                result.skipped.append(path)
                continue
            row["split"] = meta["split"]
            result.pinned.add(row["asset_id"])
        else:
            row["split"] = splits.split_for(row["asset_id"], splits.parse_fractions(fractions))
        try:
            add_hair(row, meta.get("hair", True), path)
        except ValueError as e:
            result.problems.append(str(e))
            result.skipped.append(path)
            if on_problem:
                on_problem(str(e))
            continue
        first_with[row["asset_id"]] = path
        result.rows.append(row)
    return result
