"""Strands into Blender: polylines -> a hair-curves object, and the Principled Hair material.

The thin layer every strand generator (scalp hair, brows, lashes, beards) goes through, so
that they share one way of building curves and one hair shader. Positions are computed by the
callers in numpy (deterministically: element-wise maths and `portable_math` only, no BLAS);
this module only hands them to Blender.

Per-curve attributes read by the shader:
- ``grey`` (0/1): a grey/white strand (the head's greying fraction);
- ``tint`` (0..1): a small per-strand melanin jitter (real hair is never one colour).
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np


@dataclass
class HairShade:
    """Principled Hair BSDF (Chiang model, melanin parametrization) settings."""
    melanin: float = 0.7           # 0 white/blond .. 1 black
    redness: float = 0.1           # pheomelanin share
    roughness: float = 0.3
    radial_roughness: float = 0.3
    coat: float = 0.1
    random_color: float = 0.1      # per-strand melanin variation
    random_roughness: float = 0.1
    grey_melanin: float = 0.08     # melanin of a grey strand


def add_curves(name: str, points: np.ndarray, counts: np.ndarray, radius: np.ndarray,
               material: bpy.types.Material, grey: np.ndarray | None = None,
               tint: np.ndarray | None = None, parent=None) -> bpy.types.Object:
    """A hair-curves object from ``points`` (N, 3) in the scene frame (metres).

    ``counts`` (C,) points per curve (each >= 2), summing to N; ``radius`` (N,) metres per point;
    ``grey``/``tint`` (C,) per-curve attributes (see the module docstring).
    """
    points = np.ascontiguousarray(points, dtype=np.float32).reshape(-1, 3)
    counts = np.asarray(counts, dtype=np.int64)
    if counts.size == 0:
        raise ValueError(f"{name}: no strands")
    if int(counts.sum()) != len(points) or (counts < 2).any():
        raise ValueError(f"{name}: curve point counts {int(counts.sum())} do not match {len(points)} points")
    data = bpy.data.hair_curves.new(name)
    data.add_curves(counts.tolist())
    data.position_data.foreach_set("vector", points.ravel())
    rad = data.attributes.get("radius") or data.attributes.new("radius", "FLOAT", "POINT")
    rad.data.foreach_set("value", np.ascontiguousarray(radius, dtype=np.float32).ravel())
    for attr_name, values in (("grey", grey), ("tint", tint)):
        vals = np.zeros(len(counts), np.float32) if values is None else np.asarray(values, np.float32)
        attr = data.attributes.new(attr_name, "FLOAT", "CURVE")
        attr.data.foreach_set("value", np.ascontiguousarray(vals).ravel())
    data.materials.append(material)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    if parent is not None:
        obj.parent = parent
    return obj


def hair_material(name: str, shade: HairShade) -> bpy.types.Material:
    """Principled Hair BSDF, melanin from the shade, grey strands and a per-strand jitter."""
    mat = bpy.data.materials.new(name)
    nt = mat.node_tree
    nt.nodes.clear()
    out = nt.nodes.new("ShaderNodeOutputMaterial")
    bsdf = nt.nodes.new("ShaderNodeBsdfHairPrincipled")
    bsdf.model = "CHIANG"
    bsdf.parametrization = "MELANIN"
    grey = nt.nodes.new("ShaderNodeAttribute")
    grey.attribute_name = "grey"
    tint = nt.nodes.new("ShaderNodeAttribute")
    tint.attribute_name = "tint"
    # melanin = mix(base + jitter, grey_melanin, grey)
    jitter = nt.nodes.new("ShaderNodeMath")
    jitter.operation = "MULTIPLY_ADD"
    jitter.use_clamp = True
    nt.links.new(tint.outputs["Fac"], jitter.inputs[0])
    jitter.inputs[1].default_value = 0.1 * (1.0 - shade.melanin) + 0.02
    jitter.inputs[2].default_value = shade.melanin
    mix = nt.nodes.new("ShaderNodeMix")
    mix.data_type = "FLOAT"
    nt.links.new(grey.outputs["Fac"], mix.inputs["Factor"])
    nt.links.new(jitter.outputs[0], mix.inputs["A"])
    mix.inputs["B"].default_value = shade.grey_melanin
    nt.links.new(mix.outputs["Result"], bsdf.inputs["Melanin"])
    bsdf.inputs["Melanin Redness"].default_value = shade.redness
    bsdf.inputs["Roughness"].default_value = shade.roughness
    bsdf.inputs["Radial Roughness"].default_value = shade.radial_roughness
    bsdf.inputs["Coat"].default_value = shade.coat
    bsdf.inputs["Random Color"].default_value = shade.random_color
    bsdf.inputs["Random Roughness"].default_value = shade.random_roughness
    nt.links.new(bsdf.outputs[0], out.inputs["Surface"])
    mat["synthgen_role"] = "hair"
    return mat


def use_curve_shape(scene, shape: str = "THICK", subdivisions: int = 2) -> None:
    """Cycles' curve geometry for the whole scene (``THICK`` round tubes or flat ``RIBBONS``)."""
    scene.cycles_curves.shape = shape
    scene.cycles_curves.subdivisions = subdivisions
