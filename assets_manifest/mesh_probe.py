"""Read a head asset's geometry statistics and find its texture maps.

OBJ, PLY, GLB and glTF are read with trimesh. FBX and .blend need Blender,
which the catalog does not import: the caller passes a Blender probe
(``probe_blender``, a function path -> the same dict), and ``synthgen assets
scan/validate`` pass :func:`synthgen.render.mesh_probe.probe`. Without one, such
a head is a one-line error saying what to install and which command to use.

Texture maps are found three ways: the OBJ's MTL ``map_*`` statements, the
glTF material slots, and sibling files named ``<stem>_<role>.<ext>`` (how
head packs usually ship, e.g. ``head01_albedo.png``). A referenced map whose
file does not exist is reported as missing, never silently dropped.

Coordinates are the file's *stored* ones (no axis or unit conversion; see
:mod:`assets_manifest.axes`). Besides the manifest's ``head`` fields the
probe returns two private keys the catalog reads and drops: ``_points`` (a
deterministic sample of the vertices, for the facing check) and, for FBX,
``_native`` (the header's units and axes).
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any, Callable

import numpy as np
import trimesh

from assets_manifest.schema import TEXTURE_ROLES, AssetError

TRIMESH_SUFFIXES = (".obj", ".ply", ".glb", ".gltf")
BPY_SUFFIXES = (".fbx", ".blend")
MESH_SUFFIXES = TRIMESH_SUFFIXES + BPY_SUFFIXES
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".exr", ".tif", ".tiff", ".tga")
ROLE_SYNONYMS = {
    "albedo": ("albedo", "basecolor", "base_color", "diffuse", "color", "col"),
    "normal": ("normal", "nrm", "norm"),
    "roughness": ("roughness", "rough"),
    "specular": ("specular", "spec"),
    "subsurface": ("subsurface", "sss", "scatter"),
}
BlenderProbe = Callable[[str], dict[str, Any]]  # path -> vertices, faces, bbox_min/max, parts, textures, _points
MAX_POINTS = 20_000
_MTL_ROLES = {
    "map_kd": "albedo",
    "map_bump": "normal",
    "bump": "normal",
    "norm": "normal",
    "map_pr": "roughness",
    "map_ks": "specular",
}


def probe_mesh(path: str, probe_blender: BlenderProbe | None = None) -> dict[str, Any]:
    """Geometry stats and textures: the ``head`` struct of the manifest (without generator fields).

    ``probe_blender`` reads FBX and .blend files (they need Blender); without it they are refused.
    """
    suffix = os.path.splitext(path)[1].lower()
    if suffix in BPY_SUFFIXES:
        if probe_blender is None:
            raise AssetError(f"{path}: reading {suffix} needs Blender: install the render extra "
                             "(pip install '.[render]') and use `synthgen assets scan`/`validate`")
        info = probe_blender(path)
    elif suffix in TRIMESH_SUFFIXES:
        info = _probe_trimesh(path)
    else:
        raise AssetError(f"{path}: not a mesh format we read ({', '.join(MESH_SUFFIXES)})")
    info["textures"] = _merge_textures(info.get("textures", []), _sibling_textures(path))
    return info


def _probe_trimesh(path: str) -> dict[str, Any]:
    try:
        scene = trimesh.load(path, force="scene", process=False)
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AssetError(f"{path}: unreadable mesh ({msg})") from None
    meshes = [g for g in scene.dump() if isinstance(g, trimesh.Trimesh)] if scene.geometry else []
    faces = sum(len(m.faces) for m in meshes)
    verts = sum(len(m.vertices) for m in meshes)
    if faces:
        allv = np.concatenate([m.vertices for m in meshes])
        bbox_min, bbox_max = allv.min(axis=0), allv.max(axis=0)
    else:
        bbox_min = bbox_max = np.zeros(3)
    suffix = os.path.splitext(path)[1].lower()
    textures: list[dict[str, Any]] = []
    materials: list[str] = []
    declared: dict[str, str] = {}
    if suffix == ".obj":
        textures = _obj_textures(path)
        materials = _obj_materials(path)
    elif suffix in (".glb", ".gltf"):
        textures = _gltf_textures(path)
        materials, declared = gltf_materials(path)
    return {
        "vertices": int(verts),
        "faces": int(faces),
        "bbox_min": [float(x) for x in bbox_min],
        "bbox_max": [float(x) for x in bbox_max],
        "parts": sorted(scene.geometry.keys()),
        "textures": textures,
        "materials": materials,  # slot names, for material roles (not a manifest field)
        "declared_roles": declared,
        "_points": sample_points(allv) if faces else np.zeros((0, 3)),
    }


def sample_points(vertices: np.ndarray) -> np.ndarray:
    """At most ``MAX_POINTS`` vertices, every k-th (deterministic)."""
    step = max(1, -(-len(vertices) // MAX_POINTS))
    return np.asarray(vertices, dtype=np.float64)[::step]


def _obj_materials(path: str) -> list[str]:
    """The material names an OBJ's faces use (``usemtl``), in first-use order."""
    seen: dict[str, None] = {}
    with open(path, "r", errors="replace") as f:
        for line in f:
            if line.startswith("usemtl"):
                parts = line.split(None, 1)
                if len(parts) == 2 and parts[0] == "usemtl":
                    seen.setdefault(parts[1].strip(), None)
    return list(seen)


def gltf_materials(path: str) -> tuple[list[str], dict[str, str]]:
    """A glTF's material names, and the roles its materials declare in ``extras.synthgen_role``."""
    names, declared = [], {}
    for i, mat in enumerate(_gltf_json(path).get("materials", [])):
        name = mat.get("name") or f"material_{i}"
        names.append(name)
        role = (mat.get("extras") or {}).get("synthgen_role")
        if isinstance(role, str):
            declared[name] = role
    return names, declared


def gltf_material_extras(path: str) -> dict[str, dict[str, Any]]:
    """``{material name: extras}`` of a glTF/GLB (the procedural heads' role parameters live there)."""
    out = {}
    for i, mat in enumerate(_gltf_json(path).get("materials", [])):
        if isinstance(mat.get("extras"), dict):
            out[mat.get("name") or f"material_{i}"] = mat["extras"]
    return out


def _obj_textures(path: str) -> list[dict[str, Any]]:
    folder = os.path.dirname(path)
    out = []
    with open(path, "r", errors="replace") as f:
        mtllibs = [line.split(None, 1)[1].strip() for line in f if line.startswith("mtllib ")]
    for lib in mtllibs:
        mtl = os.path.join(folder, lib)
        if not os.path.exists(mtl):
            out.append({"role": "material", "uri": mtl, "sha256": None})
            continue
        with open(mtl, "r", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].lower() in _MTL_ROLES:
                    # options like "-bm 1.0" precede the file name; the name is last
                    out.append({"role": _MTL_ROLES[parts[0].lower()],
                                "uri": os.path.join(os.path.dirname(mtl), parts[-1]), "sha256": None})
    return out


def _gltf_json(path: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        data = f.read()
    if path.lower().endswith(".gltf"):
        return json.loads(data)
    if len(data) < 20 or data[:4] != b"glTF":
        raise AssetError(f"{path}: not a binary glTF (bad magic)")
    length, ctype = struct.unpack_from("<II", data, 12)
    if ctype != 0x4E4F534A:
        raise AssetError(f"{path}: binary glTF without a JSON chunk")
    return json.loads(data[20 : 20 + length])


def _gltf_textures(path: str) -> list[dict[str, Any]]:
    doc = _gltf_json(path)
    images, textures = doc.get("images", []), doc.get("textures", [])
    folder = os.path.dirname(path)

    def image_uri(tex_index: int) -> str:
        src = textures[tex_index].get("source") if tex_index < len(textures) else None
        if src is None or src >= len(images):
            return f"embedded:missing-texture-{tex_index}"
        img = images[src]
        if "uri" in img and not img["uri"].startswith("data:"):
            return os.path.join(folder, img["uri"])
        return f"embedded:image{src}"

    out = []
    for mat in doc.get("materials", []):
        slots = {
            "albedo": mat.get("pbrMetallicRoughness", {}).get("baseColorTexture"),
            "roughness": mat.get("pbrMetallicRoughness", {}).get("metallicRoughnessTexture"),
            "normal": mat.get("normalTexture"),
            "specular": mat.get("extensions", {}).get("KHR_materials_specular", {}).get("specularTexture"),
            "subsurface": mat.get("extensions", {}).get("KHR_materials_volume", {}).get("thicknessTexture"),
        }
        for role, ref in slots.items():
            if ref is not None:
                out.append({"role": role, "uri": image_uri(ref["index"]), "sha256": None})
    return out


def _sibling_textures(path: str) -> list[dict[str, Any]]:
    folder, stem = os.path.dirname(path), os.path.splitext(os.path.basename(path))[0]
    out = []
    try:
        names = sorted(os.listdir(folder or "."))
    except OSError:
        return out
    for name in names:
        base, ext = os.path.splitext(name)
        if ext.lower() not in IMAGE_SUFFIXES or not base.lower().startswith(stem.lower() + "_"):
            continue
        tag = base[len(stem) + 1 :].lower()
        for role, synonyms in ROLE_SYNONYMS.items():
            if tag in synonyms:
                out.append({"role": role, "uri": os.path.join(folder, name), "sha256": None})
    return out


def _merge_textures(*groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for group in groups:
        for t in group:
            key = (t["role"], os.path.normpath(t["uri"]) if not t["uri"].startswith("embedded:") else t["uri"])
            if key not in seen:
                seen.add(key)
                out.append(t)
    return sorted(out, key=lambda t: (TEXTURE_ROLES.index(t["role"]) if t["role"] in TEXTURE_ROLES else 99, t["uri"]))
