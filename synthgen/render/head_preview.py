"""Contact sheet of a catalog's heads rendered with Cycles under one HDRI.

Every head goes through the renderer's import (:func:`synthgen.render.scene.import_asset`):
Blender's importers with the catalog's units and axes applied, then each material
slot's role shader (role_materials), so the sheet shows heads as the dataset
renders them. Procedural heads are framed from the landmarks recorded in the
GLB, others from their geometry (the top 0.25 m, as the renderer frames a
bust). Tiles alternate front-on and three-quarter views and are laid out in a
labelled grid with Pillow on a neutral background (the film is transparent,
the HDRI only lights).
"""

from __future__ import annotations

import json
import math
import os
import tempfile

import bpy
from mathutils import Vector
from PIL import Image, ImageDraw, ImageFont

from assets_manifest.heads.export import read_head_record

from . import hair as render_hair
from . import scene as render_scene
from . import strands

BACKGROUND = (58, 60, 64)
LABEL_H = 16
FOCAL_MM = 85.0


def builtin_hdri(name: str = "studio.exr") -> str:
    """Path of one of Blender's bundled studio-light HDRIs (studio, courtyard, forest, ...)."""
    return os.path.join(bpy.utils.resource_path("LOCAL"), "datafiles", "studiolights", "world", name)


def _has_oidn() -> bool:
    try:
        import _cycles
        return bool(getattr(_cycles, "with_openimagedenoise", False))
    except ImportError:
        return False


def _reset_scene(hdri_path: str, resolution: int, samples: int, exposure: float = 0.0) -> bpy.types.Scene:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_adaptive_sampling = True
    scene.cycles.max_bounces = 8
    scene.cycles.transparent_max_bounces = 8
    scene.cycles.use_denoising = _has_oidn()
    if scene.cycles.use_denoising:
        scene.cycles.denoiser = "OPENIMAGEDENOISE"
    scene.render.resolution_x = scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = exposure
    world = bpy.data.worlds.new("hdri")
    scene.world = world  # comes with a node tree (World.use_nodes is deprecated)
    nodes = world.node_tree.nodes
    nodes.clear()
    env = nodes.new("ShaderNodeTexEnvironment")
    env.image = bpy.data.images.load(hdri_path, check_existing=True)
    bg = nodes.new("ShaderNodeBackground")
    out = nodes.new("ShaderNodeOutputWorld")
    world.node_tree.links.new(env.outputs["Color"], bg.inputs["Color"])
    world.node_tree.links.new(bg.outputs["Background"], out.inputs["Surface"])
    strands.use_curve_shape(scene)
    cam = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    cam.data.lens = FOCAL_MM
    cam.data.clip_start = 0.05
    scene.collection.objects.link(cam)
    scene.camera = cam
    return scene


def _frame(cam: bpy.types.Object, record: dict, yaw_deg: float) -> None:
    """Aim at the face: chin-to-crown plus the neck fills ~85% of the frame height."""
    lm = record["landmarks"]
    top = lm["head_top"][2]
    bottom = lm["chin"][2] - 0.075 * record["params"]["head_scale"]
    target = Vector((0.0, lm["eye_L"][1] * 0.3, 0.5 * (top + bottom)))
    half_fov = math.atan(0.5 * cam.data.sensor_width / cam.data.lens)
    dist = 0.5 * (top - bottom) / 0.85 / math.tan(half_fov)
    yaw = math.radians(yaw_deg)
    cam.location = target + Vector((math.sin(yaw) * dist, -math.cos(yaw) * dist, 0.08 * dist))
    cam.rotation_euler = (target - cam.location).to_track_quat("-Z", "Y").to_euler()


def _frame_geometry(cam: bpy.types.Object, objects: list, yaw_deg: float) -> None:
    """Aim at the top ``HEAD_REGION_M`` of an imported head (face toward -Y), filling ~85% of the frame."""
    co = render_scene._world_coords(objects)
    top = co[:, 2].max()
    region = min(top - co[:, 2].min(), render_scene.HEAD_REGION_M)
    sel = co[co[:, 2] >= top - region]
    target = Vector((float(sel[:, 0].min() + sel[:, 0].max()) / 2, float(sel[:, 1].min() + sel[:, 1].max()) / 2,
                     float(top - region / 2)))
    half_fov = math.atan(0.5 * cam.data.sensor_width / cam.data.lens)
    dist = 0.5 * region / 0.85 / math.tan(half_fov)
    yaw = math.radians(yaw_deg)
    cam.location = target + Vector((math.sin(yaw) * dist, -math.cos(yaw) * dist, 0.08 * dist))
    cam.rotation_euler = (target - cam.location).to_track_quat("-Z", "Y").to_euler()


def _procedural_record(path: str) -> dict | None:
    try:
        return read_head_record(path)
    except (ValueError, OSError):
        return None


def _clear_head(objects: list) -> None:
    data = [o.data for o in objects if o.type in ("MESH", "CURVES")]
    for obj in objects:
        bpy.data.objects.remove(obj, do_unlink=True)
    for block in data:
        if block.users == 0:
            (bpy.data.meshes if isinstance(block, bpy.types.Mesh) else bpy.data.hair_curves).remove(block)
    for mat in list(bpy.data.materials):
        if mat.users == 0:
            bpy.data.materials.remove(mat)


def hair_spec(options: dict | None) -> dict | None:
    """The hair spec in the catalog's ``generator_params`` (``hair``), None without one."""
    gp = (options or {}).get("generator_params")
    if isinstance(gp, str):
        try:
            gp = json.loads(gp)
        except json.JSONDecodeError:
            return None
    spec = gp.get("hair") if isinstance(gp, dict) else None
    return spec if isinstance(spec, dict) else None


def render_head(path: str, out_png: str, yaw_deg: float = 0.0, options: dict | None = None) -> str:
    """Render one head file into the current (prepared) scene's camera; returns out_png.

    ``options``: :func:`synthgen.render.scene.import_asset`'s keyword arguments from the catalog
    (``placement``: units and axes; ``material_roles``, ``textures``, ``generator_params``); None: the
    file's own convention and materials from the file and the presets. A hair spec in
    ``generator_params`` grows its strands (:func:`synthgen.render.hair.grow`)."""
    scene = bpy.context.scene
    objects = render_scene.import_asset(path, **(options or {}))
    made: list = []
    try:
        spec = hair_spec(options)
        if spec is not None:
            bpy.context.view_layer.update()
            made = render_hair.grow(spec, objects, None)
        record = _procedural_record(path) if path.lower().endswith(".glb") else None
        if record is not None:
            _frame(scene.camera, record, yaw_deg)
        else:
            _frame_geometry(scene.camera, objects, yaw_deg)
        scene.render.filepath = out_png
        bpy.ops.render.render(write_still=True)
    finally:
        _clear_head(objects + made)
    return out_png


def _label(path: str, view: str) -> str:
    record = _procedural_record(path) if path.lower().endswith(".glb") else None
    if record is None:
        return f"{os.path.basename(path)}  {view}"
    p = record["params"]
    ft = "I II III IV V VI".split()[record["materials"]["fitzpatrick_type"] - 1]
    return f"seed {p['seed']}  type {ft}  {view}"


def render_head_sheet(heads: list, hdri_path: str, out_png: str, resolution: int = 192,
                      samples: int = 16, columns: int = 4, exposure: float = 0.0) -> str:
    """Render every head (even index: front, odd: three-quarter) and tile a labelled sheet.

    ``heads``: paths, or ``(path, options)`` pairs (:func:`render_head`'s import options, or None).
    `exposure` is in stops (Standard view transform, as the dataset renders use).
    """
    if not heads:
        raise ValueError("render_head_sheet: no heads given")
    heads = [(h, None) if isinstance(h, str) else tuple(h) for h in heads]
    scene = _reset_scene(hdri_path, resolution, samples, exposure)
    rows = math.ceil(len(heads) / columns)
    sheet = Image.new("RGB", (columns * resolution, rows * (resolution + LABEL_H)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    with tempfile.TemporaryDirectory() as tmp:
        for i, (path, options) in enumerate(heads):
            three_quarter = i % 2 == 1
            yaw = (35.0 if (i // 2) % 2 == 0 else -35.0) if three_quarter else 0.0
            tile_path = render_head(path, os.path.join(tmp, f"tile_{i:03d}.png"), yaw, options)
            with Image.open(tile_path) as tile:
                tile = tile.convert("RGBA")
                bg = Image.new("RGBA", tile.size, BACKGROUND + (255,))
                bg.alpha_composite(tile)
                x, y = (i % columns) * resolution, (i // columns) * (resolution + LABEL_H)
                sheet.paste(bg.convert("RGB"), (x, y))
            view = "3/4" if three_quarter else "front"
            draw.text((x + 4, y + resolution + 2), _label(path, view),
                      fill=(225, 225, 225), font=font)
    del scene
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    sheet.save(out_png)
    return out_png
