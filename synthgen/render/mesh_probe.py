"""Geometry statistics of FBX and .blend heads, read with Blender (the catalog's bpy half).

``synthgen assets scan/validate`` pass :func:`probe` to
:func:`assets_manifest.mesh_probe.probe_mesh` (the catalog never imports the
renderer); it returns the same dict shape as the trimesh reader. Counts are of triangles, so they compare
with OBJ/GLB assets; image textures are found from the materials' node trees
by the Principled BSDF input they feed, and the material slots' names are
returned for material roles. Coordinates are the file's stored ones
(:func:`synthgen.render.importers.import_stored`: no unit or axis conversion);
an FBX header's units and axes come back as ``_native``, a vertex sample as
``_points`` (the catalog's defaults and facing check, :mod:`assets_manifest.axes`).
"""

from __future__ import annotations

import os
from typing import Any

import bpy
import numpy as np

from assets_manifest.mesh_probe import sample_points
from assets_manifest.schema import AssetError
from synthgen.render import importers

_INPUT_ROLES = {
    "Base Color": "albedo",
    "Normal": "normal",
    "Roughness": "roughness",
    "Specular IOR Level": "specular",
    "Subsurface Weight": "subsurface",
    "Subsurface Radius": "subsurface",
}


def _load(path: str) -> None:
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".blend":
        bpy.ops.wm.open_mainfile(filepath=path, load_ui=False)
        return
    bpy.ops.wm.read_factory_settings(use_empty=True)
    importers.import_stored(path)


def _texture_role(link_to_node, socket_name: str) -> str | None:
    if link_to_node.type == "BSDF_PRINCIPLED":
        return _INPUT_ROLES.get(socket_name)
    if link_to_node.type in ("NORMAL_MAP", "BUMP"):
        return "normal"
    return None


def probe(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        raise AssetError(f"{path}: file not found")
    try:
        _load(path)
    except RuntimeError as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else "RuntimeError"
        raise AssetError(f"{path}: Blender could not read it ({msg})") from None
    depsgraph = bpy.context.evaluated_depsgraph_get()
    verts = tris = 0
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    parts, textures, materials, points = [], [], set(), []
    for obj in bpy.context.scene.objects:
        if obj.type != "MESH":
            continue
        mesh = obj.evaluated_get(depsgraph).to_mesh()
        mesh.calc_loop_triangles()
        verts += len(mesh.vertices)
        tris += len(mesh.loop_triangles)
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", co)
        if co.size:
            m = np.array(obj.matrix_world)
            world = co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
            lo, hi = np.minimum(lo, world.min(axis=0)), np.maximum(hi, world.max(axis=0))
            points.append(world)
        obj.evaluated_get(depsgraph).to_mesh_clear()
        parts.append(obj.name)
        for slot in obj.material_slots:
            mat = slot.material
            if mat:
                materials.add(mat.name)  # for material roles
            if not mat or not mat.node_tree:
                continue
            for link in mat.node_tree.links:
                node = link.from_node
                if node.type != "TEX_IMAGE" or node.image is None:
                    continue
                role = _texture_role(link.to_node, link.to_socket.name)
                if role:
                    uri = bpy.path.abspath(node.image.filepath) if node.image.filepath else f"embedded:{node.image.name}"
                    if node.image.packed_file is not None:
                        uri = f"embedded:{node.image.name}"
                    textures.append({"role": role, "uri": uri, "sha256": None})
    if tris == 0:
        lo = hi = np.zeros(3)
    return {
        "vertices": verts,
        "faces": tris,
        "bbox_min": [float(x) for x in lo],
        "bbox_max": [float(x) for x in hi],
        "parts": sorted(parts),
        "textures": textures,
        "materials": sorted(materials),
        "_points": sample_points(np.concatenate(points)) if points else np.zeros((0, 3)),
        "_native": importers.fbx_header(path) if path.lower().endswith(".fbx") else None,
    }
