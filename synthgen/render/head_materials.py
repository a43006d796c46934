"""The Cycles shaders of the head material roles that need the skin and eye models.

Each builder takes a plain parameter dict (the procedural GLB's material
extras, or values derived from an ``appearance`` object; see
``synthgen.render.role_materials``, which picks the builder for a slot's
role) and optional image textures. Nothing here reads the head generator.

- skin (and lips): Principled BSDF with random-walk (skin) subsurface
  scattering. The base colour is the melanin/haemoglobin albedo, or the
  asset's albedo texture; optional region masks (ellipsoids in object space,
  metres, +Z up) tint toward the lip colour. Skin detail
  (:mod:`synthgen.render.skin_detail`): mottling, redness over the nose and
  cheeks and freckles (not over an albedo texture), a glossier T-zone and
  rougher cheeks (unless a roughness texture gives the roughness), pores and
  fine skin texture as a bump of strength ``micro_detail`` on top of any
  normal map. Noise runs in the head frame (metres) whatever the file's units.
- iris: with ``uv_bands`` (the procedural eyeball, v = angle from the gaze
  axis / pi) sclera, a radially streaked iris with a dark limbal ring and the
  pupil; without, a streaked iris colour (or its texture) under a wet coat.
- sclera: off-white, slightly veined toward the back, wet coat.
- cornea: clear refracting shell (IOR 1.376); shadow and diffuse rays pass
  through it, so the iris is lit without caustic noise.
- hair: Principled BSDF in the hair colour with strand-like bump (a cap).
"""

from __future__ import annotations

import bpy

from synthgen.render import skin_detail

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

    def mix(self, fac, first, second):
        """Mix Shader: ``first`` where ``fac`` is 0, ``second`` where it is 1; returns its output."""
        n = self.node("ShaderNodeMixShader")
        self.set(n, "Fac", fac)
        self.tree.links.new(first, n.inputs[1])
        self.tree.links.new(second, n.inputs[2])
        return n.outputs[0]

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


def image_node(g: _Graph, image, colour: bool = True, channel: str | None = None):
    """An image texture on the slot's UVs; returns its colour (or one channel / alpha) socket."""
    img = g.node("ShaderNodeTexImage")
    img.image = image
    if not colour:
        image.colorspace_settings.name = "Non-Color"
    if channel == "Alpha":
        return img.outputs["Alpha"]
    if channel:
        sep = g.node("ShaderNodeSeparateColor")
        g.set(sep, "Color", img.outputs["Color"])
        return sep.outputs[channel]
    return img.outputs["Color"]


def texture(g: _Graph, textures: dict, role: str):
    """The socket of the slot's ``role`` texture; ``textures``: role -> (image, channel or None)."""
    image, channel = textures[role]
    return image_node(g, image, colour=role == "albedo", channel=channel)


def _head_coords(g: _Graph, to_head):
    """Object coordinates in the head frame (metres, +Z up, face toward -Y).

    ``to_head``: the 3x4 (rows) object-to-head transform recorded at import (the placement's unit
    scale and axes); None: the object's own coordinates already are the head frame.
    """
    coords = g.node("ShaderNodeTexCoord").outputs["Object"]
    if to_head is None:
        return coords
    rows = [g.vmath("DOT_PRODUCT", coords, tuple(row[:3])) for row in to_head]
    xyz = g.node("ShaderNodeCombineXYZ")
    for axis, value in zip(("X", "Y", "Z"), rows):
        g.set(xyz, axis, value)
    return g.vmath("ADD", xyz.outputs[0], tuple(row[3] for row in to_head))


def _max_mask(g: _Graph, masks: dict, names) -> object | None:
    """The maximum of the named masks (None when none of them is known)."""
    out = None
    for name in names:
        if name in masks:
            out = masks[name] if out is None else g.math("MAXIMUM", out, masks[name])
    return out


def _freckles(g: _Graph, coords, d: dict, density, s: float, offset):
    """Freckle coverage 0..1: Voronoi cells, each a dot of its own size and depth, present where
    the cell's random value is under the local density."""
    cells = g.node("ShaderNodeTexVoronoi", Scale=1000.0 / (2.0 * d["freckle_mm"] * s), Randomness=1.0)
    g.set(cells, "Vector", g.vmath("ADD", coords, offset))
    rand = g.node("ShaderNodeSeparateColor")
    g.set(rand, "Color", cells.outputs["Color"])
    radius = g.math("MULTIPLY_ADD", rand.outputs["Red"], 0.22, 0.16)   # dot radius, in cells
    dot = g.math("SUBTRACT", 1.0, g.smoothstep(g.math("DIVIDE", cells.outputs["Distance"], radius), 0.55, 1.0))
    present = g.math("GREATER_THAN", density, rand.outputs["Green"])
    depth = g.math("MULTIPLY_ADD", rand.outputs["Blue"], 0.6, 0.4)
    return g.math("MULTIPLY", g.math("MULTIPLY", dot, present), depth)


def skin_material(p: dict, textures: dict | None = None, subsurface_method: str = DEFAULT_SUBSURFACE_METHOD,
                  name: str = "head_skin") -> bpy.types.Material:
    """Skin (or lips: ``p["lips"]``) from the parameters; ``textures``: role -> (image, channel).

    Detail (:mod:`synthgen.render.skin_detail`): mottling, redness over the nose and cheeks and
    freckles on the albedo (not over an albedo texture), a glossier T-zone and rougher cheeks
    (unless a roughness texture gives the roughness), pores and fine skin texture as a bump whose
    strength follows ``micro_detail``. Face regions hang on ``p["face"]`` (eye midpoint and
    distance, head frame); sizes are metres through ``p["to_head"]`` (see :func:`_head_coords`).
    """
    textures = textures or {}
    s = p.get("scale", 1.0)
    d = skin_detail.detail_params(p)
    lips_role = bool(p.get("lips"))
    mat = bpy.data.materials.new(name)
    g = _Graph(mat)
    coords = _head_coords(g, p.get("to_head"))
    o = (p.get("seed", 0) % 997) * 0.0103  # metres: small, so float32 noise inputs keep sub-pore precision
    offset = (o, 0.37 * o, 0.61 * o)  # the seed moves every pattern (3D noise: cheaper than 4D)
    regions = p.get("regions", {})
    face = {} if lips_role else skin_detail.face_regions(p.get("face"))
    masks = {name: _ellipsoid_mask(g, coords, centre, radii, 0.3) for name, (centre, radii) in face.items()}
    tzone = _max_mask(g, masks, skin_detail.T_ZONE)
    cheeks = _max_mask(g, masks, skin_detail.CHEEKS)
    nose_cheeks = _max_mask(g, masks, ("nose",) + skin_detail.CHEEKS)  # redder, more freckled

    # one low-frequency noise (~2 cm blotches), four decorrelated channels: brightness, redness,
    # freckle density and roughness variation
    blotch = g.node("ShaderNodeTexNoise", Scale=45.0 / s, Detail=2.0, Roughness=0.5)
    g.set(blotch, "Vector", g.vmath("ADD", coords, offset))
    chan = g.node("ShaderNodeSeparateColor")
    g.set(chan, "Color", blotch.outputs["Color"])
    lips = None
    if "lips" in regions:
        r = regions["lips"]
        lips = _ellipsoid_mask(g, coords, r["centre"], r["radii"], r.get("inner", 0.55))
    if "albedo" in textures:
        base = texture(g, textures, "albedo")  # the asset's own colour: only roughness and bump added
    else:
        base = p["albedo"]
        amount = 0.5 * d["mottle"] if lips_role else d["mottle"]
        shade = g.math("MULTIPLY_ADD", g.math("SUBTRACT", blotch.outputs["Fac"], 0.5), 2.0 * amount, 1.0)
        base = g.mix_rgb(1.0, base, g.gray(shade), blend="MULTIPLY")
        if not lips_role:
            red_where = g.smoothstep(chan.outputs["Green"], 0.35, 0.75)  # blotchy, everywhere a little
            if nose_cheeks is not None:
                red_where = g.math("MULTIPLY_ADD", nose_cheeks, 0.75, g.math("MULTIPLY", red_where, 0.3))
            else:
                red_where = g.math("MULTIPLY", red_where, 0.45)
            base = g.mix_rgb(g.math("MULTIPLY", red_where, 0.45 * d["redness"]), base, (1.0, 0.68, 0.7),
                             blend="MULTIPLY")
            if d["freckles"] > 0:
                # denser over the nose and cheeks (sun-exposed), patchy everywhere
                density = g.math("MULTIPLY", g.smoothstep(chan.outputs["Blue"], 0.3, 0.7), 0.9 * d["freckles"])
                if nose_cheeks is not None:
                    density = g.math("MULTIPLY", density, g.math("MULTIPLY_ADD", nose_cheeks, 1.2, 0.4))
                spots = _freckles(g, coords, d, density, s, offset)
                base = g.mix_rgb(g.math("MULTIPLY", spots, 0.55), base, (0.7, 0.52, 0.4), blend="MULTIPLY")
        if lips is not None:
            base = g.mix_rgb(lips, base, p["lip_albedo"])

    # roughness: mean +- variation (or the texture), a glossier T-zone and lips, rougher cheeks
    specular = 0.4
    if "roughness" in textures:
        rough = texture(g, textures, "roughness")
    else:
        var = g.math("MULTIPLY", g.math("SUBTRACT", chan.outputs["Red"], 0.5), 0.8 * p["roughness_variation"])
        rough = g.math("ADD", p["roughness"], var)
        if tzone is not None:
            rough = g.math("MULTIPLY_ADD", tzone, -d["tzone_shine"], rough)
            specular = g.math("MULTIPLY_ADD", tzone, d["tzone_specular"], 0.4)
        if cheeks is not None:
            rough = g.math("MULTIPLY_ADD", cheeks, d["cheek_rough"], rough)
        if lips is not None:
            rough = g.math("MULTIPLY_ADD", lips, -0.15, rough)
        rough = g.math("MAXIMUM", rough, 0.15)

    # micro detail: pores (pits ~pore_mm wide) over a finer-than-mm skin texture, on any normal map
    moved = g.vmath("ADD", coords, offset)
    pores = g.node("ShaderNodeTexNoise", Scale=1000.0 / (4.0 * d["pore_mm"] * s), Detail=0.0)
    g.set(pores, "Vector", moved)
    fine = g.node("ShaderNodeTexNoise", Scale=1000.0 / (3.0 * s), Detail=2.0, Roughness=0.6)
    g.set(fine, "Vector", moved)
    pits = g.smoothstep(pores.outputs["Fac"], 0.58, 0.7)
    height = g.math("MULTIPLY_ADD", fine.outputs["Fac"], 0.6, g.math("MULTIPLY", pits, -1.0))
    strength = 0.35 * d["micro"]
    if cheeks is not None:  # pores show most on the nose and cheeks
        strength = g.math("MULTIPLY", g.math("MULTIPLY_ADD", g.math("MAXIMUM", cheeks, tzone), 0.5, 0.8), strength)
    bump = g.node("ShaderNodeBump", Distance=0.0004 * s)
    g.set(bump, "Strength", strength)
    g.set(bump, "Height", height)
    if "normal" in textures:
        nmap = g.node("ShaderNodeNormalMap")
        g.set(nmap, "Color", texture(g, textures, "normal"))
        g.set(bump, "Normal", nmap.outputs["Normal"])

    radius = [c / p["subsurface_radius_mm"] for c in p["subsurface_radius_rgb_mm"]]
    bsdf = g.node("ShaderNodeBsdfPrincipled", _subsurface_method=subsurface_method)
    g.set(bsdf, "Base Color", base)
    g.set(bsdf, "Roughness", rough)
    g.set(bsdf, "Normal", bump.outputs["Normal"])
    g.set(bsdf, "Subsurface Weight", p["subsurface_weight"])
    g.set(bsdf, "Subsurface Radius", tuple(radius))
    g.set(bsdf, "Subsurface Scale", p["subsurface_radius_mm"] * 0.001 * s)
    g.set(bsdf, "Subsurface IOR", 1.4)
    g.set(bsdf, "IOR", 1.4)
    g.set(bsdf, "Specular IOR Level", specular)
    g.set(bsdf, "Sheen Weight", 0.08)
    g.output(bsdf.outputs[0])
    return mat


def _streaked_iris(g: _Graph, u, v, colour, seed: int):
    """Iris colour with radial streaks: fast noise around the pupil (u), slow along the radius (v)."""
    streak_vec = g.node("ShaderNodeCombineXYZ", Z=(seed % 101) * 0.37)
    g.set(streak_vec, "X", g.math("MULTIPLY", u, 90.0))
    g.set(streak_vec, "Y", g.math("MULTIPLY", v, 25.0))
    streak = g.node("ShaderNodeTexNoise", Scale=1.0, Detail=4.0, Roughness=0.6)
    g.set(streak, "Vector", streak_vec.outputs[0])
    shade = g.math("MULTIPLY_ADD", streak.outputs["Fac"], 1.3, 0.35)
    return g.mix_rgb(1.0, colour, g.gray(shade), blend="MULTIPLY")


def iris_material(p: dict, textures: dict | None = None, name: str = "head_iris") -> bpy.types.Material:
    """The iris; with ``p["uv_bands"]`` the whole procedural eyeball (sclera, iris, pupil by UV v)."""
    textures = textures or {}
    mat = bpy.data.materials.new(name)
    g = _Graph(mat)
    uv = g.node("ShaderNodeUVMap", _uv_map="UVMap").outputs["UV"]
    sep = g.node("ShaderNodeSeparateXYZ")
    g.set(sep, "Vector", uv)
    u, v = sep.outputs["X"], sep.outputs["Y"]
    bands = p.get("uv_bands")
    disk = p.get("uv_disk")
    if "albedo" in textures:
        col = texture(g, textures, "albedo")
    elif disk:
        # UVs laid out as a disk centred on the pupil (ICT-FaceKit): radius r = 1 at the limbus
        cu, cv = disk["centre"]
        du, dv = g.math("SUBTRACT", u, cu), g.math("SUBTRACT", v, cv)
        r = g.math("DIVIDE", g.math("SQRT", g.math("ADD", g.math("MULTIPLY", du, du), g.math("MULTIPLY", dv, dv))),
                   disk["radius"])
        angle = g.math("ARCTAN2", dv, du)
        iris_col = _streaked_iris(g, g.math("MULTIPLY", angle, 0.5), g.math("MULTIPLY", r, 0.3), p["color"],
                                  p.get("seed", 0))
        ring = g.smoothstep(r, 0.78, 0.95)  # the darker limbal ring
        col = g.mix_rgb(g.math("MULTIPLY", ring, 0.85), iris_col, (0.01, 0.008, 0.006))
        col = g.mix_rgb(g.smoothstep(r, disk.get("pupil", 0.4) - 0.03, disk.get("pupil", 0.4) + 0.03), PUPIL, col)
    elif bands:
        iris_v, pupil_v, limbus = bands["iris_v"], bands["pupil_v"], bands["limbus_width_v"]
        iris_col = _streaked_iris(g, u, v, p["color"], p.get("seed", 0))
        # darker collarette around the pupil and limbal ring at the iris edge
        ring = g.smoothstep(v, iris_v - limbus, iris_v)
        col = g.mix_rgb(g.math("MULTIPLY", ring, 0.85), iris_col, (0.01, 0.008, 0.006))
        col = g.mix_rgb(g.smoothstep(v, pupil_v, pupil_v + 0.004), PUPIL, col)
        sclera = g.mix_rgb(g.smoothstep(v, 0.3, 0.55), SCLERA, (0.7, 0.45, 0.4))
        col = g.mix_rgb(g.smoothstep(v, iris_v, iris_v + 0.004), col, sclera)
    else:
        col = _streaked_iris(g, u, v, p["color"], p.get("seed", 0))
    bsdf = g.node("ShaderNodeBsdfPrincipled", Roughness=0.35)
    g.set(bsdf, "Base Color", col)
    if p.get("coat", 0.0):  # an eye without a cornea part: the tear film's glint
        g.set(bsdf, "Coat Weight", p["coat"])
        g.set(bsdf, "Coat Roughness", 0.03)
    g.output(bsdf.outputs[0])
    return mat


def sclera_material(p: dict, textures: dict | None = None, name: str = "head_sclera") -> bpy.types.Material:
    """Off-white sclera (or its texture, which may hold the iris too) under a wet coat."""
    textures = textures or {}
    mat = bpy.data.materials.new(name)
    g = _Graph(mat)
    if "albedo" in textures:
        col = texture(g, textures, "albedo")
    else:
        coords = g.node("ShaderNodeTexCoord").outputs["Object"]
        veins = g.node("ShaderNodeTexNoise", Scale=900.0, Detail=6.0, Roughness=0.7)
        g.set(veins, "Vector", coords)
        col = g.mix_rgb(g.math("MULTIPLY", g.smoothstep(veins.outputs["Fac"], 0.55, 0.75), 0.5),
                        p.get("color", SCLERA), (0.6, 0.3, 0.28))
    bsdf = g.node("ShaderNodeBsdfPrincipled", Roughness=0.3)
    g.set(bsdf, "Base Color", col)
    g.set(bsdf, "Subsurface Weight", 0.2)
    g.set(bsdf, "Subsurface Radius", (1.0, 0.5, 0.4))
    g.set(bsdf, "Subsurface Scale", 0.001)
    g.set(bsdf, "Coat Weight", p.get("coat", 1.0))
    g.set(bsdf, "Coat Roughness", 0.03)
    g.output(bsdf.outputs[0])
    return mat


def cornea_material(p: dict | None = None, textures: dict | None = None,
                    name: str = "head_cornea") -> bpy.types.Material:
    mat = bpy.data.materials.new(name)
    g = _Graph(mat)
    glass = g.node("ShaderNodeBsdfPrincipled", Roughness=0.0, IOR=1.376)
    g.set(glass, "Transmission Weight", 1.0)
    g.set(glass, "Base Color", (1.0, 1.0, 1.0))
    path = g.node("ShaderNodeLightPath")
    see_through = g.math("MAXIMUM", path.outputs["Is Shadow Ray"], path.outputs["Is Diffuse Ray"])
    clear = g.node("ShaderNodeBsdfTransparent")
    g.output(g.mix(see_through, glass.outputs[0], clear.outputs[0]))
    return mat


def hair_material(p: dict, textures: dict | None = None, name: str = "head_hair") -> bpy.types.Material:
    """A hair mass (cap or clumps): hair colour with strand-like noise, bump and sheen."""
    s = p.get("scale", 1.0)
    mat = bpy.data.materials.new(name)
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
    colour = texture(g, textures, "albedo") if textures and "albedo" in textures else p["color"]
    col = g.mix_rgb(1.0, colour, g.gray(tone), blend="MULTIPLY")
    bump = g.node("ShaderNodeBump", Strength=0.5, Distance=0.0006 * s)
    g.set(bump, "Height", strands.outputs["Fac"])
    bsdf = g.node("ShaderNodeBsdfPrincipled", Roughness=0.45)
    g.set(bsdf, "Base Color", col)
    g.set(bsdf, "Normal", bump.outputs["Normal"])
    g.set(bsdf, "Sheen Weight", 0.4)
    g.set(bsdf, "Sheen Tint", tuple(min(1.0, c * 2.0 + 0.2) for c in p["color"]))
    g.set(bsdf, "Anisotropic", 0.5)
    g.output(bsdf.outputs[0])
    return mat


def import_head_glb(path: str, subsurface_method: str = DEFAULT_SUBSURFACE_METHOD) -> dict[str, bpy.types.Object]:
    """Import a head GLB with its role materials; returns {part name: object}.

    The same path as every head (``role_materials``); kept for the preview and benchmarks.
    """
    from synthgen.render.scene import import_asset

    objects = import_asset(path, subsurface_method)
    return {o.get("synthgen_part") or o.name.split(".")[0]: o for o in objects if o.type == "MESH"}
