"""Bring a head file's stored coordinates into Blender and apply its units and axes.

Blender's importers each convert axes their own way (OBJ: +Y up by default,
PLY: none, FBX: its header's axes and ``UnitScaleFactor``, glTF: +Y up by
specification, always). Here every importer is called so that its conversion
is known (:data:`IMPORTER_FRAME`): OBJ, PLY and FBX without any, glTF with
its fixed one, which is undone. Then the head's placement (the manifest's
``unit_scale``, ``up_axis``, ``forward_axis``; :mod:`assets_manifest.axes`)
puts it in the scene frame: metres, +Z up, the face looking toward -Y. The
renderer, the catalog preview and the Blender probe all go through here.
"""

from __future__ import annotations

import os
from typing import Any

import bpy
import mathutils
import numpy as np

from assets_manifest import axes

# (up, forward) of the stored coordinates in the frame each importer call below leaves them in
IMPORTER_FRAME = {".glb": ("+Y", "+Z"), ".gltf": ("+Y", "+Z")}  # all others: identity (+Z, -Y)


def fbx_header(path: str) -> dict[str, Any]:
    """The units and axes an FBX file's GlobalSettings declare, in catalog terms (the format's default)."""
    from io_scene_fbx import parse_fbx
    from io_scene_fbx.fbx_utils import RIGHT_HAND_AXES
    from io_scene_fbx.import_fbx import elem_find_first, elem_props_get_integer, elem_props_get_number

    root, _version = parse_fbx.parse(path)
    props = elem_find_first(elem_find_first(root, b"GlobalSettings"), b"Properties70")
    if props is None:
        return {}
    unit_cm = elem_props_get_number(props, b"UnitScaleFactor", 1.0)
    key = tuple((elem_props_get_integer(props, name, axis), elem_props_get_integer(props, name + b"Sign", 1))
                for name, axis in ((b"UpAxis", 1), (b"FrontAxis", 2), (b"CoordAxis", 0)))
    found = {v: k for k, v in RIGHT_HAND_AXES.items()}.get(key)
    out: dict[str, Any] = {"unit_scale": unit_cm / 100.0}
    if found:
        up, blender_forward = found  # Blender's "forward" is the file axis that becomes +Y; the face looks -Y
        sign = lambda a: a if a.startswith("-") else "+" + a  # noqa: E731
        out["up_axis"] = sign(up)
        out["forward_axis"] = sign(blender_forward[1:] if blender_forward.startswith("-") else "-" + blender_forward)
    return out


def import_stored(path: str) -> None:
    """Import ``path`` into the current scene, its coordinates as stored up to :data:`IMPORTER_FRAME`."""
    ext = os.path.splitext(path)[1].lower()
    if ext in (".glb", ".gltf"):
        bpy.ops.import_scene.gltf(filepath=path)
    elif ext == ".obj":
        bpy.ops.wm.obj_import(filepath=path, forward_axis="Y", up_axis="Z")
    elif ext == ".ply":
        bpy.ops.wm.ply_import(filepath=path, forward_axis="Y", up_axis="Z")
    elif ext == ".fbx":
        # the importer always multiplies by UnitScaleFactor / 100: cancel it, and no axis conversion
        unit_cm = fbx_header(path).get("unit_scale", 0.01) * 100.0
        bpy.ops.import_scene.fbx(filepath=path, use_manual_orientation=True, axis_forward="Y", axis_up="Z",
                                 global_scale=100.0 / unit_cm)
    elif ext == ".blend":
        with bpy.data.libraries.load(path) as (src, dst):
            dst.objects = src.objects
        for obj in dst.objects:
            if obj is not None:
                bpy.context.scene.collection.objects.link(obj)
    else:
        raise ValueError(f"{path}: cannot import {ext} heads")


def default_placement(path: str) -> dict[str, Any]:
    """The file's own units and axes (its format's convention, an FBX's header), for catalogs without them."""
    ext = os.path.splitext(path)[1].lower()
    native = fbx_header(path) if ext == ".fbx" else None
    return axes.placement({}, ext.lstrip("."), path, native=native)


def scene_matrix(path: str, place: dict[str, Any]) -> np.ndarray:
    """4x4 taking what :func:`import_stored` left in the scene to the scene frame."""
    up0, fwd0 = IMPORTER_FRAME.get(os.path.splitext(path)[1].lower(), (axes.SCENE_UP, axes.SCENE_FORWARD))
    m = np.eye(4)
    m[:3, :3] = place["unit_scale"] * axes.to_scene(place["up_axis"], place["forward_axis"]) @ axes.to_scene(up0, fwd0).T
    return m


def place_objects(objs: list, path: str, place: dict[str, Any] | None) -> None:
    """Apply ``place`` (None: the file's own convention) to the newly imported ``objs``' roots."""
    m = scene_matrix(path, place or default_placement(path))
    if np.allclose(m, np.eye(4)):
        return
    mm = mathutils.Matrix(m.tolist())
    for o in objs:
        if o.parent is None:
            o.matrix_world = mm @ o.matrix_world
    bpy.context.view_layer.update()
