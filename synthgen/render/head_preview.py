"""Contact sheet of procedural heads rendered with Cycles under one HDRI.

Each GLB is imported with its role materials (role_materials), framed from the
landmarks recorded in the GLB, rendered front-on or in three-quarter view
(alternating), and the tiles are laid out in a labelled grid with Pillow
on a neutral background (the film is transparent, the HDRI only lights).
"""

from __future__ import annotations

import math
import os
import tempfile

import bpy
from mathutils import Vector
from PIL import Image, ImageDraw, ImageFont

from assets_manifest.heads.export import read_head_record

from .head_materials import import_head_glb

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


def _clear_head(objects: dict) -> None:
    meshes = [o.data for o in objects.values()]
    for obj in objects.values():
        bpy.data.objects.remove(obj, do_unlink=True)
    for mesh in meshes:
        if mesh.users == 0:
            bpy.data.meshes.remove(mesh)
    for mat in list(bpy.data.materials):
        if mat.users == 0:
            bpy.data.materials.remove(mat)


def render_head(glb_path: str, out_png: str, yaw_deg: float = 0.0) -> str:
    """Render one head into the current (prepared) scene's camera; returns out_png."""
    scene = bpy.context.scene
    objects = import_head_glb(glb_path)
    try:
        _frame(scene.camera, read_head_record(glb_path), yaw_deg)
        scene.render.filepath = out_png
        bpy.ops.render.render(write_still=True)
    finally:
        _clear_head(objects)
    return out_png


def _label(record: dict, view: str) -> str:
    p = record["params"]
    ft = "I II III IV V VI".split()[record["materials"]["fitzpatrick_type"] - 1]
    return f"seed {p['seed']}  type {ft}  {view}"


def render_head_sheet(glb_paths: list[str], hdri_path: str, out_png: str, resolution: int = 192,
                      samples: int = 16, columns: int = 4, exposure: float = 0.0) -> str:
    """Render every GLB (even index: front, odd: three-quarter) and tile a labelled sheet.

    `exposure` is in stops (Standard view transform, as the dataset renders use).
    """
    if not glb_paths:
        raise ValueError("render_head_sheet: no GLB paths given")
    scene = _reset_scene(hdri_path, resolution, samples, exposure)
    rows = math.ceil(len(glb_paths) / columns)
    sheet = Image.new("RGB", (columns * resolution, rows * (resolution + LABEL_H)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(glb_paths):
            three_quarter = i % 2 == 1
            yaw = (35.0 if (i // 2) % 2 == 0 else -35.0) if three_quarter else 0.0
            tile_path = render_head(path, os.path.join(tmp, f"tile_{i:03d}.png"), yaw)
            with Image.open(tile_path) as tile:
                tile = tile.convert("RGBA")
                bg = Image.new("RGBA", tile.size, BACKGROUND + (255,))
                bg.alpha_composite(tile)
                x, y = (i % columns) * resolution, (i // columns) * (resolution + LABEL_H)
                sheet.paste(bg.convert("RGB"), (x, y))
            view = "3/4" if three_quarter else "front"
            draw.text((x + 4, y + resolution + 2), _label(read_head_record(path), view),
                      fill=(225, 225, 225), font=font)
    del scene
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    sheet.save(out_png)
    return out_png
