"""One material path for every head: each material slot's role gets its Cycles shader.

After a head is imported (any format, procedural GLBs included), every slot
whose material has a role (``assets_manifest.material_roles``: the manifest's
``head.material_roles``, else the file's declared roles and the presets) gets
a new material for that role; slots without a role keep the asset's own.

Parameters of a role's shader come from, in order of precedence:

1. the glTF material's ``extras.synthgen_material`` (the procedural heads
   record every part's parameters there: skin albedo, lip colour and region
   masks, iris colour and UV bands, hair colour);
2. an ``appearance`` object in the head's ``generator_params`` (the
   procedural heads' appearance parameters: melanin, haemoglobin, roughness,
   subsurface, iris and hair melanin), turned into colours with the same
   model (``assets_manifest.heads.appearance``, imported only then);
3. defaults (a Fitzpatrick II skin, brown eyes, dark brown hair).

Skin-role slots (skin, lips, scalp) also get ``face`` (the eyes' midpoint and
distance, from the eye-role parts after placement: where the skin shader's
T-zone and cheeks are) and ``to_head`` (the object's import transform, so the
shader's noise is sized in metres whatever the file's units).

Textures: a slot's own images (found upstream of its Principled BSDF's
Base Color, Roughness and Normal inputs) are used by the shader; a skin slot
without its own also takes the manifest's albedo/normal/roughness maps.

Roles (shaders in :mod:`synthgen.render.head_materials` and here):
skin and lips (subsurface skin model), sclera, iris, cornea, teeth and gums
(subsurface), eyelashes and eyebrows (dark, partly transparent hair-like
cards), hair, eye_occlusion (a mostly transparent layer that darkens the
eye's corners toward its rim), tear_film (clear, glossy, nearly invisible)
and hidden (transparent to every ray; an object whose slots are all hidden
is not rendered).
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable

import bpy
import numpy as np

from assets_manifest import material_roles as roles_mod
from assets_manifest.mesh_probe import gltf_material_extras
from synthgen.render import head_materials as hm
from synthgen.render import skin_detail
from synthgen.render.head_materials import DEFAULT_SUBSURFACE_METHOD, _Graph

# Defaults: HeadParams() of the procedural generator (melanin 0.05, haemoglobin 0.02: Fitzpatrick II)
DEFAULT_SKIN = {
    "albedo": [0.48276, 0.27088, 0.15641],
    "lip_albedo": [0.40552, 0.12515, 0.07883],
    "roughness": 0.45,
    "roughness_variation": 0.3,
    "micro_detail": 0.5,
    "subsurface_weight": 0.8,
    "subsurface_radius_mm": 1.5,
    "subsurface_radius_rgb_mm": [1.5, 0.555, 0.27],
    "scale": 1.0,
    "seed": 0,
}
DEFAULT_IRIS = [0.09014, 0.04335, 0.00842]
DEFAULT_HAIR = [0.14477, 0.04989, 0.01018]
LASH_COLOUR = (0.012, 0.009, 0.007)
EYE_ROLES = ("iris", "sclera", "cornea")
SKIN_ROLES = ("skin", "lips", "scalp")  # the skin shader's roles: they get the face frame

_TEXTURE_INPUTS = (("Base Color", "albedo"), ("Roughness", "roughness"), ("Normal", "normal"))


def appearance_params(generator_params: str | dict | None) -> dict[str, Any]:
    """Shader parameters from a head's ``generator_params`` ``appearance`` object ({} without one)."""
    if isinstance(generator_params, str):
        try:
            generator_params = json.loads(generator_params)
        except json.JSONDecodeError:
            return {}
    gp = generator_params if isinstance(generator_params, dict) else {}
    disk = next((e for e in (gp.get("eyes") or {}).values()
                 if isinstance(e, dict) and "iris_uv_centre" in e and e.get("iris_uv_radius", 0) > 0), None)
    app = gp.get("appearance")
    if not isinstance(app, dict):
        return {"iris_uv_disk": {"centre": disk["iris_uv_centre"], "radius": disk["iris_uv_radius"]}} if disk else {}
    from assets_manifest.heads import appearance as model  # the skin model; only for heads that carry one

    mel, haem = app.get("melanin", 0.05), app.get("haemoglobin", 0.02)
    skin = model.skin_albedo(mel, haem)
    # blush: the procedural heads' redness amount (assets_manifest.heads.export.material_extras)
    out: dict[str, Any] = {"skin": {"albedo": skin, "lip_albedo": model.lip_albedo(skin, haem),
                                    "blush": round(0.35 * min(1.0, haem / 0.02), 6)}}
    for key in ("roughness", "roughness_variation", "micro_detail", "subsurface_weight", "subsurface_radius_mm"):
        if key in app:
            out["skin"][key] = float(app[key])
    if "subsurface_radius_mm" in app:
        out["skin"]["subsurface_radius_rgb_mm"] = [app["subsurface_radius_mm"] * c for c in (1.0, 0.37, 0.18)]
    if "seed" in app:
        out["skin"]["seed"] = int(app["seed"])
    if "iris_melanin" in app:
        out["iris"] = model.iris_albedo(app["iris_melanin"])
    if disk:  # ICT-FaceKit: the iris mesh's UVs are a disk centred on the pupil
        out["iris_uv_disk"] = {"centre": disk["iris_uv_centre"], "radius": disk["iris_uv_radius"]}
    if "hair_melanin" in app:
        out["hair"] = model.hair_albedo(app["hair_melanin"], app.get("hair_redness", 0.1))
    return out


def role_params(role: str, declared: dict | None, appearance: dict, has_cornea: bool) -> dict[str, Any]:
    """The parameters of one slot's shader: the file's own (procedural GLBs), else appearance, else defaults."""
    if declared:
        if role == "scalp":  # a scalp part declares its skin; the hair colour may come from appearance
            return {**DEFAULT_SKIN, "hair_color": appearance.get("hair", DEFAULT_HAIR), **declared}
        return dict(declared)
    if role in ("skin", "lips", "scalp"):
        p = dict(DEFAULT_SKIN, **appearance.get("skin", {}))
        if role == "scalp":
            p["hair_color"] = appearance.get("hair", DEFAULT_HAIR)
        if role == "lips":
            p.update(albedo=p["lip_albedo"], roughness=max(0.2, p["roughness"] - 0.12),
                     micro_detail=0.3 * p["micro_detail"], lips=True)
        return p
    if role == "iris":
        p = {"color": appearance.get("iris", DEFAULT_IRIS), "coat": 0.0 if has_cornea else 1.0}
        if "iris_uv_disk" in appearance:
            p["uv_disk"] = appearance["iris_uv_disk"]
        return p
    if role == "sclera":
        return {"coat": 0.5 if has_cornea else 1.0}
    if role in ("hair", "eyebrows", "eyelashes"):
        return {"color": appearance.get("hair", DEFAULT_HAIR)}
    return {}


def _world_points(obj, slots: set[int]) -> np.ndarray:
    """World positions of the vertices of ``obj``'s polygons in material slots ``slots``.

    Element-wise products and sums in a fixed order (no BLAS): the face frame reaches the pixels.
    """
    mesh = obj.data
    mesh.calc_loop_triangles()
    n = len(mesh.loop_triangles)
    index, tri = np.empty(n, dtype=np.int64), np.empty(3 * n, dtype=np.int64)
    mesh.loop_triangles.foreach_get("material_index", index)
    mesh.loop_triangles.foreach_get("vertices", tri)
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
    mesh.vertices.foreach_get("co", co)
    co = co.reshape(-1, 3)[np.unique(tri.reshape(-1, 3)[np.isin(index, sorted(slots))])]
    m = np.array(obj.matrix_world)
    return np.stack([m[i, 0] * co[:, 0] + m[i, 1] * co[:, 1] + m[i, 2] * co[:, 2] + m[i, 3] for i in range(3)], axis=1)


def face_frame(meshes: list, roles: dict[str, str]) -> dict | None:
    """The eyes' midpoint and distance (:func:`synthgen.render.skin_detail.face_frame`) from the
    eye-role parts, in the head frame: the scene frame right after import and placement."""
    pts = []
    for obj in meshes:
        slots = {i for i, s in enumerate(obj.material_slots)
                 if s.material and roles.get(roles_mod.base_name(s.material.name)) in EYE_ROLES}
        if slots and len(obj.data.polygons):
            pts.append(_world_points(obj, slots))
    return skin_detail.face_frame(np.concatenate(pts)) if pts else None


def to_head(obj) -> list[list[float]] | None:
    """``obj``'s object-to-head transform (3x4 rows; None: identity), for object-space shader detail."""
    m = np.array(obj.matrix_world)[:3]
    if np.array_equal(m, np.eye(4)[:3]):
        return None
    return [[round(float(x), 9) for x in row] for row in m]


SCALP_TINT = 0.0  # a scalp part is skin; the hair's tinted shell (render/hair.py) follows the hair spec's hairline
SCALP_TINT_NODE = "synthgen_scalp_tint"


def tint_toward_hair(mat: bpy.types.Material, colour, amount: float, fade_attribute: str | None = None) -> None:
    """Mix a skin material's base colour toward ``colour`` by ``amount`` (again: updates the mix).

    Scalp seen through hair reads dark in the hair's colour, so fewer strands read as full hair.
    ``fade_attribute``: a 0..1 mesh attribute multiplying the amount (a shell fading at the hairline).
    """
    nt = mat.node_tree
    mix = nt.nodes.get(SCALP_TINT_NODE)
    if mix is None:
        bsdf = next(n for n in nt.nodes if n.type == "BSDF_PRINCIPLED")
        sock = bsdf.inputs["Base Color"]
        mix = nt.nodes.new("ShaderNodeMix")
        mix.data_type, mix.blend_type = "RGBA", "MIX"
        mix.name = SCALP_TINT_NODE
        if sock.is_linked:
            nt.links.new(sock.links[0].from_socket, mix.inputs[6])
        else:
            mix.inputs[6].default_value = tuple(sock.default_value)
        nt.links.new(mix.outputs[2], sock)
        if fade_attribute:
            attr = nt.nodes.new("ShaderNodeAttribute")
            attr.attribute_name = fade_attribute
            amt = nt.nodes.new("ShaderNodeMath")
            amt.name = SCALP_TINT_NODE + "_amount"
            amt.operation = "MULTIPLY"
            nt.links.new(attr.outputs["Fac"], amt.inputs[0])
            nt.links.new(amt.outputs[0], mix.inputs["Factor"])
    amt = nt.nodes.get(SCALP_TINT_NODE + "_amount")
    if amt is not None:
        amt.inputs[1].default_value = float(amount)
    else:
        mix.inputs["Factor"].default_value = float(amount)
    mix.inputs[7].default_value = (*[float(c) for c in colour], 1.0)


def teeth_material(p: dict, textures: dict, name: str) -> bpy.types.Material:
    """Enamel over dentine: ivory, fairly glossy, with subsurface."""
    mat = bpy.data.materials.new(name)
    g = _Graph(mat)
    bsdf = g.node("ShaderNodeBsdfPrincipled", Roughness=0.25, IOR=1.6)
    g.set(bsdf, "Base Color", hm.texture(g, textures, "albedo") if "albedo" in textures else p.get("color", (0.78, 0.72, 0.6)))
    g.set(bsdf, "Subsurface Weight", 0.35)
    g.set(bsdf, "Subsurface Radius", (1.0, 0.85, 0.6))
    g.set(bsdf, "Subsurface Scale", 0.0015)
    g.set(bsdf, "Specular IOR Level", 0.5)
    g.output(bsdf.outputs[0])
    return mat


def gums_material(p: dict, textures: dict, name: str) -> bpy.types.Material:
    """Gums, tongue and mouth interior: wet, red mucosa with strong subsurface."""
    mat = bpy.data.materials.new(name)
    g = _Graph(mat)
    bsdf = g.node("ShaderNodeBsdfPrincipled", Roughness=0.3, IOR=1.4)
    g.set(bsdf, "Base Color", hm.texture(g, textures, "albedo") if "albedo" in textures else p.get("color", (0.42, 0.1, 0.1)))
    g.set(bsdf, "Subsurface Weight", 0.7)
    g.set(bsdf, "Subsurface Radius", (1.0, 0.3, 0.2))
    g.set(bsdf, "Subsurface Scale", 0.003)
    g.set(bsdf, "Coat Weight", 0.3)
    g.set(bsdf, "Coat Roughness", 0.1)
    g.output(bsdf.outputs[0])
    return mat


def lash_material(p: dict, textures: dict, name: str) -> bpy.types.Material:
    """Lashes and brows on mesh cards: a dark, sheeny hair colour, partly see-through.

    A card's albedo texture alpha (strands painted on a card) is its coverage; without one the card
    is 30 % covered: ICT-FaceKit's untextured lash cards are broad strips, and a denser solid card
    reads as a dark band under the lid rather than lashes.
    """
    mat = bpy.data.materials.new(name)
    g = _Graph(mat)
    colour = tuple(min(c, lc * 4) for c, lc in zip(p.get("color", DEFAULT_HAIR), LASH_COLOUR))
    bsdf = g.node("ShaderNodeBsdfPrincipled", Roughness=0.4)
    g.set(bsdf, "Base Color", colour)
    g.set(bsdf, "Sheen Weight", 0.3)
    clear = g.node("ShaderNodeBsdfTransparent")
    coverage = hm.image_node(g, textures["albedo"][0], channel="Alpha") if "albedo" in textures else 0.3
    g.output(g.mix(coverage, clear.outputs[0], bsdf.outputs[0]))
    return mat


def eye_occlusion_material(p: dict, textures: dict, name: str) -> bpy.types.Material:
    """Transparent shell over the eye that darkens toward its rim (the corners), never black.

    Camera and glossy rays see a Transparent BSDF tinted down to ``1 - darkness`` (at most 45 % at
    grazing angles, ~8 % face-on), which soft-shadows the eye's corners as the mesh's authors intend;
    shadow and diffuse rays pass unchanged, so the eye is not shadowed twice.
    """
    mat = bpy.data.materials.new(name)
    g = _Graph(mat)
    facing = g.node("ShaderNodeLayerWeight", Blend=0.5).outputs["Facing"]
    dark = g.math("MULTIPLY_ADD", g.math("POWER", facing, 2.0), p.get("rim_darkness", 0.37), p.get("darkness", 0.08))
    tint = g.gray(g.math("SUBTRACT", 1.0, dark, clamp=True))
    shade = g.node("ShaderNodeBsdfTransparent")
    g.set(shade, "Color", tint)
    path = g.node("ShaderNodeLightPath")
    pass_through = g.math("MAXIMUM", path.outputs["Is Shadow Ray"], path.outputs["Is Diffuse Ray"])
    clear = g.node("ShaderNodeBsdfTransparent")
    g.output(g.mix(pass_through, shade.outputs[0], clear.outputs[0]))
    return mat


def tear_film_material(p: dict, textures: dict, name: str) -> bpy.types.Material:
    """Clear water layer: only its Fresnel reflection shows (IOR 1.33), the rest is transparent."""
    mat = bpy.data.materials.new(name)
    g = _Graph(mat)
    fresnel = g.node("ShaderNodeFresnel", IOR=1.33).outputs["Fac"]
    path = g.node("ShaderNodeLightPath")
    glint = g.math("MULTIPLY", fresnel, g.math("SUBTRACT", 1.0, path.outputs["Is Shadow Ray"]))
    clear = g.node("ShaderNodeBsdfTransparent")
    gloss = g.node("ShaderNodeBsdfGlossy", Roughness=0.02)
    g.output(g.mix(glint, clear.outputs[0], gloss.outputs[0]))
    return mat


def hidden_material(p: dict, textures: dict, name: str) -> bpy.types.Material:
    """Not rendered: a white Transparent BSDF, which every ray passes unchanged."""
    mat = bpy.data.materials.new(name)
    g = _Graph(mat)
    g.output(g.node("ShaderNodeBsdfTransparent").outputs[0])
    return mat


def build(role: str, params: dict, textures: dict, subsurface_method: str, name: str) -> bpy.types.Material:
    """A new material for ``role``."""
    if role in ("skin", "lips"):
        mat = hm.skin_material(params, textures, subsurface_method, name=name)
    elif role == "scalp":
        mat = hm.skin_material(params, textures, subsurface_method, name=name)
        tint_toward_hair(mat, params.get("hair_color", DEFAULT_HAIR), params.get("hair_tint", SCALP_TINT))
    elif role == "iris":
        mat = hm.iris_material(params, textures, name=name)
    elif role == "sclera":
        mat = hm.sclera_material(params, textures, name=name)
    elif role == "cornea":
        mat = hm.cornea_material(params, textures, name=name)
    elif role == "hair":
        mat = hm.hair_material(params, textures, name=name)
    else:
        maker = {"teeth": teeth_material, "gums": gums_material, "eyelashes": lash_material,
                 "eyebrows": lash_material, "eye_occlusion": eye_occlusion_material,
                 "tear_film": tear_film_material, "hidden": hidden_material}[role]
        mat = maker(params, textures, name)
    mat["synthgen_role"] = role
    return mat


def _upstream_image(sock) -> tuple[Any, str | None] | None:
    """The image texture feeding ``sock`` (through a few converter nodes), and the channel taken."""
    channel = None
    for _ in range(4):
        if not sock.is_linked:
            return None
        link = sock.links[0]
        node = link.from_node
        if node.type == "TEX_IMAGE":
            return (node.image, channel) if node.image is not None else None
        if node.type == "SEPARATE_COLOR":
            channel = link.from_socket.name
        linked = [s for s in node.inputs if s.is_linked]
        if node.type == "NORMAL_MAP":
            linked = [node.inputs["Color"]]
        if not linked:
            return None
        sock = linked[0]
    return None


def slot_textures(mat: bpy.types.Material | None) -> dict[str, tuple]:
    """role -> (image, channel) of the textures an imported material feeds its Principled BSDF."""
    if mat is None or mat.node_tree is None:
        return {}
    bsdf = next((n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:
        return {}
    out = {}
    for socket, role in _TEXTURE_INPUTS:
        found = _upstream_image(_Graph._input(bsdf, socket))
        if found:
            out[role] = found
    return out


def _manifest_textures(textures: Iterable[dict]) -> dict[str, tuple]:
    out = {}
    for t in textures or ():
        path = t.get("path", "")
        if t["role"] in ("albedo", "normal", "roughness") and os.path.isfile(path) and t["role"] not in out:
            out[t["role"]] = (bpy.data.images.load(path, check_existing=True), None)
    return out


def apply_roles(objects: list, path: str, material_roles: list[dict] | None = None,
                textures: Iterable[dict] = (), generator_params: str | dict | None = None,
                subsurface_method: str = DEFAULT_SUBSURFACE_METHOD) -> dict[str, str]:
    """Replace the material of every slot that has a role; returns {material name: role} applied.

    ``material_roles``: the manifest's list (None: resolve from the file's declared roles and the
    presets); ``textures``: the manifest's (role, path) list; ``generator_params``: its JSON.
    """
    if subsurface_method not in hm.SUBSURFACE_METHODS:
        raise ValueError(f"subsurface_method {subsurface_method!r}: expected one of {', '.join(hm.SUBSURFACE_METHODS)}")
    meshes = [o for o in objects if o.type == "MESH"]
    names = {roles_mod.base_name(s.material.name) for o in meshes for s in o.material_slots if s.material}
    extras = gltf_material_extras(path) if path.lower().endswith((".glb", ".gltf")) else {}
    if material_roles is None:
        declared = {n: e["synthgen_role"] for n, e in extras.items() if isinstance(e.get("synthgen_role"), str)}
        roles = roles_mod.as_dict(roles_mod.resolve(names, declared=declared, where=path))
    else:
        roles = roles_mod.as_dict(material_roles)
    appearance = appearance_params(generator_params)
    has_cornea = "cornea" in roles.values()
    frame = face_frame(meshes, roles) if any(r in SKIN_ROLES for r in roles.values()) else None
    made: dict[str, bpy.types.Material] = {}
    applied: dict[str, str] = {}
    for obj in meshes:
        slot_roles = []
        for slot in obj.material_slots:
            base = roles_mod.base_name(slot.material.name) if slot.material else None
            role = roles.get(base) if base else None
            slot_roles.append(role)
            if role is None:
                continue
            if base not in made:
                tex = slot_textures(slot.material)
                if role == "skin" and not tex:
                    tex = _manifest_textures(textures)
                params = role_params(role, (extras.get(base) or {}).get("synthgen_material"), appearance, has_cornea)
                if role in SKIN_ROLES:  # face regions and metre-sized detail whatever the file's units
                    params.update(face=frame, to_head=to_head(obj))
                made[base] = build(role, params, tex, subsurface_method, name=f"{role}:{base}")
                applied[base] = role
            slot.material = made[base]
        if slot_roles and all(r == "hidden" for r in slot_roles):
            obj.hide_render = True
    return applied
