"""Blender materials for procedural heads, built from the params in the GLB.

`import_head_glb` imports a GLB written by assets_manifest.heads and swaps
its preview glTF materials for Cycles ones:

- skin: Principled BSDF with random-walk (skin) subsurface scattering. Base
  colour comes from the melanin/haemoglobin model (recorded in the GLB),
  tinted toward the lip colour around the mouth and gently mottled; the
  roughness varies spatially; pores and fine wrinkles are a bump map whose
  strength is `micro_detail`. Masks are in object space, which is the
  generator's space (metres, +Z up) because the importer undoes glTF's +Y up.
- eyes: sclera, iris and pupil from the eyeball's UV v (angle from the gaze
  axis / pi), a radially streaked iris with a dark limbal ring.
- cornea: clear refracting shell (IOR 1.376); shadow and diffuse rays pass
  through it, so the iris is lit without caustic noise.
- hair: Principled BSDF in the hair-melanin colour with strand-like bump.
"""

from __future__ import annotations

import bpy

from assets_manifest.heads.export import read_head_record

SCLERA = (0.56, 0.52, 0.48)
PUPIL = (0.004, 0.004, 0.004)


SUBSURFACE_METHODS = ("RANDOM_WALK_SKIN", "RANDOM_WALK", "RANDOM_WALK_LEGACY", "BURLEY")
DEFAULT_SUBSURFACE_METHOD = "RANDOM_WALK_SKIN"


class _Graph:
    """Small helper to build a node tree: nodes placed left to right as created."""

    def __init__(self, mat: bpy.types.Material):
        # Blender 5 gives every new material a node tree (Material.use_nodes is deprecated)
        self.tree = mat.node_tree
        self.tree.nodes.clear()
        self.x = -1400

    def node(self, kind: str, **inputs):
        n = self.tree.nodes.new(kind)
        n.location = (self.x, 0)
        self.x += 180
        # node properties first: they decide which sockets exist (e.g. a 4D noise's W)
        for key, value in inputs.items():
            if key.startswith("_"):
                setattr(n, key[1:], value)
        for key, value in inputs.items():
            if not key.startswith("_"):
                self.set(n, key, value)
        return n

    @staticmethod
    def _input(node, socket: str | int):
        if isinstance(socket, int):
            return node.inputs[socket]
        # by identifier over all inputs: since Blender 5.2, inputs["name"] skips sockets the node's
        # mode disables (e.g. Subsurface IOR unless the method is RANDOM_WALK_SKIN)
        for sock in node.inputs:
            if sock.identifier == socket:
                return sock
        named = sorted((sock for sock in node.inputs if sock.name == socket), key=lambda sock: not sock.enabled)
        if named:
            return named[0]
        raise KeyError(f"{node.bl_idname} has no input {socket!r}")

    def set(self, node, socket: str | int, value) -> None:
        sock = self._input(node, socket)
        if isinstance(value, bpy.types.NodeSocket):
            self.tree.links.new(value, sock)
        else:
            if hasattr(sock, "default_value") and hasattr(sock.default_value, "__len__") and not isinstance(value, str):
                if len(sock.default_value) == 4 and len(value) == 3:
                    value = (*value, 1.0)
            sock.default_value = value

    def math(self, op: str, a, b=0.0, c=0.0, clamp: bool = False):
        n = self.node("ShaderNodeMath", _operation=op, _use_clamp=clamp)
        self.set(n, 0, a)
        self.set(n, 1, b)
        self.set(n, 2, c)
        return n.outputs[0]

    def vmath(self, op: str, a, b=(0.0, 0.0, 0.0)):
        n = self.node("ShaderNodeVectorMath", _operation=op)
        self.set(n, 0, a)
        self.set(n, 1, b)
        return n.outputs["Value"] if op in ("LENGTH", "DOT_PRODUCT", "DISTANCE") else n.outputs["Vector"]

    def mix_rgb(self, fac, a, b, blend: str = "MIX"):
        n = self.node("ShaderNodeMix", _data_type="RGBA", _blend_type=blend)
        self.set(n, "Factor", fac)
        self.set(n, 6, a)  # A (colour)
        self.set(n, 7, b)  # B (colour)
        return n.outputs[2]

    def gray(self, value):
        """A colour with all three channels = value (a socket)."""
        n = self.node("ShaderNodeCombineXYZ")
        for axis in ("X", "Y", "Z"):
            self.set(n, axis, value)
        return n.outputs[0]

    def smoothstep(self, x, lo: float, hi: float):
        n = self.node("ShaderNodeMapRange", _interpolation_type="SMOOTHSTEP")
        self.set(n, "Value", x)
        self.set(n, "From Min", lo)
        self.set(n, "From Max", hi)
        return n.outputs["Result"]

    def output(self, shader) -> None:
        out = self.node("ShaderNodeOutputMaterial")
        self.tree.links.new(shader, out.inputs["Surface"])


def _ellipsoid_mask(g: _Graph, coords, centre, radii, inner: float = 0.55):
    """1 inside an ellipsoid around `centre`, fading to 0 at its surface."""
    rel = g.vmath("SUBTRACT", coords, tuple(centre))
    scaled = g.vmath("DIVIDE", rel, tuple(radii))
    dist = g.vmath("LENGTH", scaled)
    return g.math("SUBTRACT", 1.0, g.smoothstep(dist, inner, 1.0))


def skin_material(record: dict, subsurface_method: str = DEFAULT_SUBSURFACE_METHOD) -> bpy.types.Material:
    p, mats, lm = record["params"], record["materials"], record["landmarks"]
    s = p["head_scale"]
    mat = bpy.data.materials.new("head_skin")
    g = _Graph(mat)
    coords = g.node("ShaderNodeTexCoord").outputs["Object"]
    seed_offset = (p["seed"] % 997) * 0.731

    # mottling: large soft noise modulating melanin/blood slightly
    mottle = g.node("ShaderNodeTexNoise", Scale=40.0 / s, Detail=3.0, Roughness=0.5,
                    W=seed_offset, _noise_dimensions="4D")
    g.set(mottle, "Vector", coords)
    mouth = lm["mouth"]
    lip_r = (0.026 * s * p["mouth_width"], 0.02 * s, 0.0115 * s)
    lips = _ellipsoid_mask(g, coords, (mouth[0], mouth[1] - 0.004 * s, mouth[2] - 0.001 * s), lip_r)
    blush = None
    for sx in (1.0, -1.0):
        m = _ellipsoid_mask(g, coords, (sx * 0.042 * s, -0.062 * s, -0.028 * s), (0.024 * s, 0.03 * s, 0.024 * s), 0.2)
        blush = m if blush is None else g.math("MAXIMUM", blush, m)
    base = g.mix_rgb(g.math("MULTIPLY", blush, 0.35 * min(1.0, p["haemoglobin"] / 0.02)),
                     mats["skin_albedo"], mats["lip_albedo"])
    base = g.mix_rgb(lips, base, mats["lip_albedo"])
    mottle_f = g.math("MULTIPLY_ADD", mottle.outputs["Fac"], 0.16, 0.92)
    base = g.mix_rgb(1.0, base, g.gray(mottle_f), blend="MULTIPLY")

    # roughness: mean +- variation, glossier lips
    rough_noise = g.node("ShaderNodeTexNoise", Scale=120.0 / s, Detail=2.0, W=seed_offset + 5.0,
                         _noise_dimensions="4D")
    g.set(rough_noise, "Vector", coords)
    var = g.math("MULTIPLY", g.math("SUBTRACT", rough_noise.outputs["Fac"], 0.5), 0.5 * p["roughness_variation"])
    rough = g.math("ADD", p["roughness"], var)
    rough = g.math("SUBTRACT", rough, g.math("MULTIPLY", lips, 0.15), clamp=True)

    # micro detail: pores (fine) over wrinkle-scale noise
    pores = g.node("ShaderNodeTexNoise", Scale=2200.0 / s, Detail=1.0, W=seed_offset, _noise_dimensions="4D")
    g.set(pores, "Vector", coords)
    fine = g.node("ShaderNodeTexNoise", Scale=350.0 / s, Detail=4.0, W=seed_offset + 2.0, _noise_dimensions="4D")
    g.set(fine, "Vector", coords)
    height = g.math("ADD", pores.outputs["Fac"], g.math("MULTIPLY", fine.outputs["Fac"], 0.6))
    bump = g.node("ShaderNodeBump", Strength=0.35 * p["micro_detail"], Distance=0.0004 * s)
    g.set(bump, "Height", height)

    radius = [c / p["subsurface_radius_mm"] for c in mats["subsurface_radius_rgb_mm"]]
    bsdf = g.node("ShaderNodeBsdfPrincipled", _subsurface_method=subsurface_method)
    g.set(bsdf, "Base Color", base)
    g.set(bsdf, "Roughness", rough)
    g.set(bsdf, "Normal", bump.outputs["Normal"])
    g.set(bsdf, "Subsurface Weight", p["subsurface_weight"])
    g.set(bsdf, "Subsurface Radius", tuple(radius))
    g.set(bsdf, "Subsurface Scale", p["subsurface_radius_mm"] * 0.001 * s)
    g.set(bsdf, "Subsurface IOR", 1.4)
    g.set(bsdf, "IOR", 1.4)
    g.set(bsdf, "Specular IOR Level", 0.4)
    g.set(bsdf, "Sheen Weight", 0.08)
    g.output(bsdf.outputs[0])
    return mat


def eye_material(record: dict) -> bpy.types.Material:
    p, mats, uvb = record["params"], record["materials"], record["eye_uv"]
    mat = bpy.data.materials.new("head_eye")
    g = _Graph(mat)
    uv = g.node("ShaderNodeUVMap", _uv_map="UVMap").outputs["UV"]
    sep = g.node("ShaderNodeSeparateXYZ")
    g.set(sep, "Vector", uv)
    u, v = sep.outputs["X"], sep.outputs["Y"]
    iris_v, pupil_v, limbus = uvb["iris_v"], uvb["pupil_v"], uvb["limbus_width_v"]
    # radial streaks: fast noise around the pupil (u), slow along the radius (v)
    streak_vec = g.node("ShaderNodeCombineXYZ", Z=(p["seed"] % 101) * 0.37)
    g.set(streak_vec, "X", g.math("MULTIPLY", u, 90.0))
    g.set(streak_vec, "Y", g.math("MULTIPLY", v, 25.0))
    streak = g.node("ShaderNodeTexNoise", Scale=1.0, Detail=4.0, Roughness=0.6)
    g.set(streak, "Vector", streak_vec.outputs[0])
    shade = g.math("MULTIPLY_ADD", streak.outputs["Fac"], 1.3, 0.35)
    iris_col = g.mix_rgb(1.0, mats["iris_albedo"], g.gray(shade), blend="MULTIPLY")
    # darker collarette around the pupil and limbal ring at the iris edge
    ring = g.smoothstep(v, iris_v - limbus, iris_v)
    col = g.mix_rgb(g.math("MULTIPLY", ring, 0.85), iris_col, (0.01, 0.008, 0.006))
    col = g.mix_rgb(g.smoothstep(v, pupil_v, pupil_v + 0.004), PUPIL, col)
    sclera = g.mix_rgb(g.smoothstep(v, 0.3, 0.55), SCLERA, (0.7, 0.45, 0.4))
    col = g.mix_rgb(g.smoothstep(v, iris_v, iris_v + 0.004), col, sclera)
    bsdf = g.node("ShaderNodeBsdfPrincipled", Roughness=0.35)
    g.set(bsdf, "Base Color", col)
    g.output(bsdf.outputs[0])
    return mat


def cornea_material() -> bpy.types.Material:
    mat = bpy.data.materials.new("head_cornea")
    g = _Graph(mat)
    glass = g.node("ShaderNodeBsdfPrincipled", Roughness=0.0, IOR=1.376)
    g.set(glass, "Transmission Weight", 1.0)
    g.set(glass, "Base Color", (1.0, 1.0, 1.0))
    path = g.node("ShaderNodeLightPath")
    see_through = g.math("MAXIMUM", path.outputs["Is Shadow Ray"], path.outputs["Is Diffuse Ray"])
    clear = g.node("ShaderNodeBsdfTransparent")
    mix = g.node("ShaderNodeMixShader")
    g.set(mix, "Fac", see_through)
    g.tree.links.new(glass.outputs[0], mix.inputs[1])
    g.tree.links.new(clear.outputs[0], mix.inputs[2])
    g.output(mix.outputs[0])
    return mat


def hair_material(record: dict) -> bpy.types.Material:
    p, mats = record["params"], record["materials"]
    s = p["head_scale"]
    mat = bpy.data.materials.new("head_hair")
    g = _Graph(mat)
    coords = g.node("ShaderNodeTexCoord").outputs["Object"]
    # strands: noise stretched along y and z (front-back on top, downward on the sides)
    stretched = g.vmath("MULTIPLY", coords, (1.0 / s, 0.12 / s, 0.12 / s))
    strands = g.node("ShaderNodeTexNoise", Scale=900.0, Detail=4.0, Roughness=0.6)
    g.set(strands, "Vector", stretched)
    clumps = g.node("ShaderNodeTexNoise", Scale=60.0 / s, Detail=2.0)
    g.set(clumps, "Vector", coords)
    tone = g.math("MULTIPLY_ADD", strands.outputs["Fac"], 0.7, 0.55)
    tone = g.math("MULTIPLY", tone, g.math("MULTIPLY_ADD", clumps.outputs["Fac"], 0.4, 0.8))
    col = g.mix_rgb(1.0, mats["hair_albedo"], g.gray(tone), blend="MULTIPLY")
    bump = g.node("ShaderNodeBump", Strength=0.5, Distance=0.0006 * s)
    g.set(bump, "Height", strands.outputs["Fac"])
    bsdf = g.node("ShaderNodeBsdfPrincipled", Roughness=0.45)
    g.set(bsdf, "Base Color", col)
    g.set(bsdf, "Normal", bump.outputs["Normal"])
    g.set(bsdf, "Sheen Weight", 0.4)
    g.set(bsdf, "Sheen Tint", tuple(min(1.0, c * 2.0 + 0.2) for c in mats["hair_albedo"]))
    g.set(bsdf, "Anisotropic", 0.5)
    g.output(bsdf.outputs[0])
    return mat


def apply_head_materials(objects_by_part: dict[str, bpy.types.Object], params_dict: dict,
                         subsurface_method: str = DEFAULT_SUBSURFACE_METHOD) -> None:
    """Give each part its material. `params_dict` is the GLB's synthgen_head record
    (or a bare HeadParams.to_dict(), from which the record is rebuilt)."""
    if subsurface_method not in SUBSURFACE_METHODS:
        raise ValueError(f"subsurface_method {subsurface_method!r}: expected one of {', '.join(SUBSURFACE_METHODS)}")
    record = params_dict if "params" in params_dict else _record_from_params(params_dict)
    makers = {
        "skin": lambda: skin_material(record, subsurface_method),
        "eye": lambda: eye_material(record),
        "cornea": cornea_material,
        "hair": lambda: hair_material(record),
    }
    made: dict[str, bpy.types.Material] = {}
    for part, obj in objects_by_part.items():
        kind = part.split("_")[0]
        if kind not in makers:
            continue
        if kind not in made:
            made[kind] = makers[kind]()
        obj.data.materials.clear()
        obj.data.materials.append(made[kind])
        for poly in obj.data.polygons:
            poly.material_index = 0


def _record_from_params(params: dict) -> dict:
    from assets_manifest.heads import eyes
    from assets_manifest.heads.geometry import make_layout
    from assets_manifest.heads.params import HeadParams

    hp = HeadParams.from_dict(params)
    return {"params": hp.to_dict(), "materials": hp.materials(),
            "landmarks": make_layout(hp).landmarks(), "eye_uv": dict(eyes.EYE_UV)}


def import_head_glb(path: str, subsurface_method: str = DEFAULT_SUBSURFACE_METHOD) -> dict[str, bpy.types.Object]:
    """Import a head GLB into the current scene, apply its materials; returns {part: object}."""
    record = read_head_record(path)
    before = set(bpy.data.objects)
    bpy.ops.import_scene.gltf(filepath=path)
    objects = {}
    for obj in bpy.data.objects:
        if obj in before or obj.type != "MESH":
            continue
        part = obj.get("synthgen_part") or obj.name.split(".")[0]
        if part in record["parts"]:
            objects[part] = obj
    missing = [p for p in record["parts"] if p not in objects]
    if missing:
        raise ValueError(f"{path}: parts missing after import: {', '.join(missing)}")
    apply_head_materials(objects, record, subsurface_method)
    return objects
