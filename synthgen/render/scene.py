"""The Blender side of a group: build the scene once, render it under K lightings.

``GroupRenderer`` owns one Blender session (one per worker process). For
each group it swaps the head and moves the camera; persistent data is on,
so the BVH and kernels are reused across the K renders of a group.

Lightings are applied without touching the world shader unless the HDR map
itself changes, because any world-shader update makes Cycles rebuild the
world's importance map, which would dominate small renders:

* azimuth rotation: the head and camera sit under a rig that turns about Z
  (:func:`synthgen.camera_env.scene_turn_deg`) instead of turning the world
  the other way; the picture is the same (only relative orientation
  matters), and an object transform is a BVH refit, not a world rebuild;
* exposure and white balance: light transport is linear per RGB channel,
  so the render under ``gain * E`` is ``gain *`` the render under ``E``.
  They are applied to the linear result; Cycles' light clamping is turned
  off so that this stays exact;
* lightings are rendered grouped by HDR map, so a map is loaded into the
  world once per run of lightings that use it.

A map change still pays for that rebuild. Left on "Automatic", Cycles
evaluates the world at 4096 x 2048 whatever the map's size (0.7-0.8 s on 2
cores); :func:`world_map_resolution` uses twice the map's width instead (2048
for the 1K maps), measured as noisy as 4096 after denoising at about a
quarter of the cost (``benchmarks/world_importance.py``).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import bpy
import mathutils
import numpy as np

from synthgen import camera_env
from synthgen.render import hair as render_hair
from synthgen.render import importers
from synthgen.render import passes as render_passes
from synthgen.render import role_materials
from synthgen.render import strands
from synthgen.render.blender_log import redirect_fd1
from synthgen.samples import CameraInfo, GroupRenders

GPU_BACKENDS = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")
HEAD_REGION_M = 0.25  # crown to chin of an adult head; the camera frames this much of a bust


@dataclass
class RenderTimings:
    setup_s: float = 0.0
    render_s: list[float] = field(default_factory=list)


def configure_device(scene, want: str) -> str:
    """Pick Cycles' device: a GPU backend when asked/available, else CPU. Returns what was chosen."""
    if want in ("auto", "gpu"):
        prefs = bpy.context.preferences.addons["cycles"].preferences
        for backend in GPU_BACKENDS:
            try:
                prefs.compute_device_type = backend
            except TypeError:
                continue  # backend not compiled into this Blender
            prefs.get_devices()
            gpus = [d for d in prefs.devices if d.type == backend]
            if gpus:
                for d in prefs.devices:
                    d.use = d.type == backend  # CUDA_VISIBLE_DEVICES (set by Ray) limits what is listed
                scene.cycles.device = "GPU"
                return backend
        if want == "gpu":
            raise RuntimeError("render.device = 'gpu' but Cycles found no OptiX/CUDA/HIP/oneAPI/Metal device")
    scene.cycles.device = "CPU"
    return "CPU"


def world_map_resolution(map_width: int, configured: int = 0) -> int:
    """Width of Cycles' importance map for an HDR map ``map_width`` pixels wide.

    ``configured`` > 0 wins. Otherwise twice the map's width, but never less than
    the map itself nor more than 4096 unless the map is wider (what Cycles'
    "Automatic" uses for any map without a sky-texture sun).
    """
    if configured > 0:
        return configured
    return max(min(2 * map_width, 4096), map_width, 64)


def _world_nodes(scene):
    """Environment texture -> Background. Rotation, exposure and white balance are not in the
    shader (see the module docstring): every extra node is evaluated 8 M times per importance map."""
    world = bpy.data.worlds.new("synthgen_world")  # comes with a node tree (World.use_nodes is deprecated)
    scene.world = world
    world.cycles.sampling_method = "MANUAL"  # resolution set per map in GroupRenderer.render_lighting
    nt = world.node_tree
    nt.nodes.clear()
    coord = nt.nodes.new("ShaderNodeTexCoord")
    env = nt.nodes.new("ShaderNodeTexEnvironment")
    bg = nt.nodes.new("ShaderNodeBackground")
    out = nt.nodes.new("ShaderNodeOutputWorld")
    nt.links.new(coord.outputs["Generated"], env.inputs["Vector"])
    nt.links.new(env.outputs["Color"], bg.inputs["Color"])
    nt.links.new(bg.outputs["Background"], out.inputs["Surface"])
    return {"world": world, "coord": coord, "env": env, "background": bg}


def import_asset(path: str, subsurface_method: str = "RANDOM_WALK_SKIN", material_roles: list | None = None,
                 textures: list | None = None, generator_params: str | None = None,
                 placement: dict[str, Any] | None = None) -> list:
    """Import a head file with its role materials (:mod:`synthgen.render.role_materials`); return its objects.

    Every format, procedural GLBs included, takes the same path: Blender's importer with no unit or
    axis conversion of its own, then ``placement`` (the manifest's ``unit_scale``, ``up_axis``,
    ``forward_axis``; None: the file's own convention) puts it in the scene frame: metres, +Z up,
    face toward -Y (:mod:`synthgen.render.importers`), then each material slot's role gets its shader.
    ``material_roles``, ``textures`` and ``generator_params`` are the manifest's (a located plan row's);
    without roles they come from the file and the presets. `subsurface_method` is the skin's.
    """
    if not os.path.isfile(path):  # e.g. a catalog path not mounted on this node; Blender would only say "select a file"
        raise FileNotFoundError(f"{path}: no such head file on this node")
    before = set(bpy.data.objects)
    importers.import_stored(path)
    objs = [o for o in bpy.data.objects if o not in before]
    meshes = [o for o in objs if o.type == "MESH"]
    if not meshes:
        raise ValueError(f"{path}: no mesh objects after import")
    importers.place_objects(objs, path, placement)
    role_materials.apply_roles(objs, path, material_roles, textures or (), generator_params, subsurface_method)
    return objs


def head_placement(row: dict[str, Any]) -> dict[str, Any] | None:
    """The located row's units and axes (:meth:`synthgen.locate.AssetPaths.locate`), None when unknown."""
    if row.get("head_unit_scale") is None:
        return None
    return {"unit_scale": row["head_unit_scale"], "up_axis": row["head_up_axis"],
            "forward_axis": row["head_forward_axis"]}


def _world_coords(objs) -> np.ndarray:
    pts = []
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for o in objs:
        if o.type != "MESH":
            continue
        mesh = o.evaluated_get(depsgraph).data
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", co)
        m = np.array(o.matrix_world)
        pts.append(co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3])
    return np.concatenate(pts)


def look_at(position: np.ndarray, target: np.ndarray, roll_deg: float) -> np.ndarray:
    """4x4 world-from-camera for a Blender camera (looks down -z) at ``position`` aimed at ``target``."""
    f = target - position
    f = f / np.linalg.norm(f)
    x = np.cross(f, [0.0, 0.0, 1.0])
    x = x / np.linalg.norm(x)
    y = np.cross(x, f)
    r = math.radians(roll_deg)
    x, y = x * math.cos(r) + y * math.sin(r), -x * math.sin(r) + y * math.cos(r)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, -f, position
    return m


def frame_head(coords: np.ndarray, row: dict[str, Any]) -> np.ndarray:
    """Camera pose framing the top ``HEAD_REGION_M`` of the asset (the head of a bust)."""
    top = coords[:, 2].max()
    region = min(top - coords[:, 2].min(), HEAD_REGION_M)
    sel = coords[coords[:, 2] >= top - region]
    aim = np.array([(sel[:, 0].min() + sel[:, 0].max()) / 2, (sel[:, 1].min() + sel[:, 1].max()) / 2,
                    top - region / 2])
    tan_half = row["sensor_mm"] / 2 / row["focal_mm"]
    dist = region / (row["framing"] * 2 * tan_half)
    yaw, pitch = math.radians(row["yaw_deg"]), math.radians(row["pitch_deg"])
    # yaw 0, pitch 0: in front of the face, which looks toward -Y
    offset = np.array([math.sin(yaw) * math.cos(pitch), -math.cos(yaw) * math.cos(pitch), math.sin(pitch)])
    return look_at(aim + dist * offset, aim, row["roll_deg"])


class GroupRenderer:
    def __init__(self, render_cfg: dict[str, Any], resolution: int | None = None, threads: int = 0,
                 tmp_dir: str = "/tmp", log_path: str | None = None):
        self.cfg = render_cfg
        self.tmp_dir = tmp_dir
        self.log_path = log_path  # Blender's console output goes here (None: leave it on stdout)
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = self.scene = bpy.context.scene
        scene.render.engine = "CYCLES"
        self.device = configure_device(scene, render_cfg["device"])
        res = resolution or render_cfg["resolution"]
        scene.render.resolution_x = scene.render.resolution_y = res
        scene.render.resolution_percentage = 100
        scene.render.film_transparent = True
        scene.render.use_persistent_data = True
        threads = threads or render_cfg.get("threads", 0)
        scene.render.threads_mode = "FIXED" if threads else "AUTO"
        if threads:
            scene.render.threads = threads
        c = scene.cycles
        c.samples = render_cfg["samples"]
        c.use_adaptive_sampling = render_cfg["adaptive_threshold"] > 0
        if c.use_adaptive_sampling:
            c.adaptive_threshold = render_cfg["adaptive_threshold"]
        c.use_denoising = render_cfg["denoise"]
        if c.use_denoising:
            c.denoiser = "OPENIMAGEDENOISE"
        c.max_bounces = render_cfg["max_bounces"]
        c.sample_clamp_direct = c.sample_clamp_indirect = 0.0  # keeps exposure/white balance exact (linear)
        c.use_animated_seed = False
        render_passes.enable_passes(scene, set(render_cfg["passes"]))
        cam_data = bpy.data.cameras.new("synthgen_camera")
        cam_data.sensor_fit = "HORIZONTAL"
        cam_data.clip_start, cam_data.clip_end = 0.01, 100.0
        self.camera = bpy.data.objects.new("synthgen_camera", cam_data)
        scene.collection.objects.link(self.camera)
        scene.camera = self.camera
        self.rig = bpy.data.objects.new("synthgen_rig", None)  # turns head + camera instead of the world
        scene.collection.objects.link(self.rig)
        self.camera.parent = self.rig
        self.world = _world_nodes(scene)
        strands.use_curve_shape(scene)
        self.current_hdri: str | None = None
        self.head_objects: list = []
        self.images: dict[str, Any] = {}

    def _clear_head(self) -> None:
        for o in self.head_objects:
            bpy.data.objects.remove(o, do_unlink=True)
        self.head_objects = []
        keep = {img.name for img in self.images.values()}  # cached env maps stay loaded
        for coll in (bpy.data.meshes, bpy.data.hair_curves, bpy.data.materials, bpy.data.images):
            for block in list(coll):
                if block.users == 0 and block.name not in keep:
                    coll.remove(block)

    def load_group(self, row: dict[str, Any]) -> CameraInfo:
        self._clear_head()
        self.rig.rotation_euler = (0.0, 0.0, 0.0)
        bpy.context.view_layer.update()
        with redirect_fd1(self.log_path):
            self.head_objects = import_asset(row["head_path"],
                                             self.cfg.get("subsurface_method", "RANDOM_WALK_SKIN"),
                                             row.get("material_roles"), row.get("head_textures"),
                                             row.get("head_generator_params"), head_placement(row))
        for o in self.head_objects:
            if o.parent is None:
                o.parent = self.rig
        bpy.context.view_layer.update()
        pose = frame_head(_world_coords(self.head_objects), row)  # the head, not its hair
        spec = row.get("hair")
        if spec:
            with redirect_fd1(self.log_path):
                # planning folded the job's `facial` and `density_scale` into the resolved spec
                self.head_objects += render_hair.grow(json.loads(spec) if isinstance(spec, str) else spec,
                                                      self.head_objects, self.rig)
        cam = self.camera.data
        cam.lens, cam.sensor_width = row["focal_mm"], row["sensor_mm"]
        self.camera.matrix_world = mathutils.Matrix(pose.tolist())  # rows; a plain nested list is read as columns
        bpy.context.view_layer.update()
        return CameraInfo(world_from_camera=np.array(self.camera.matrix_world), focal_mm=row["focal_mm"],
                          sensor_mm=row["sensor_mm"], resolution=self.scene.render.resolution_x)

    def _image(self, uri: str):
        if uri not in self.images:
            img = bpy.data.images.load(uri, check_existing=True)
            img.colorspace_settings.name = "Linear Rec.709"
            self.images[uri] = img
        return self.images[uri]

    def render_lighting(self, lighting: dict[str, Any], want_passes: bool) -> tuple[np.ndarray, dict, float]:
        """Linear premultiplied RGBA under ``lighting`` (+ passes), and Cycles' render-call seconds."""
        if lighting["hdri_asset_id"] != self.current_hdri:
            image = self._image(lighting["hdri_path"])
            self.world["env"].image = image
            world = self.world["world"]
            world.cycles.sample_map_resolution = world_map_resolution(image.size[0],
                                                                      self.cfg.get("world_map_resolution", 0))
            world.update_tag()  # as for the seed below: a Python-side Cycles setting is not seen otherwise
            self.current_hdri = lighting["hdri_asset_id"]
        self.rig.rotation_euler = (0.0, 0.0, math.radians(camera_env.scene_turn_deg(lighting["rotation_deg"])))
        self.scene.cycles.seed = lighting["cycles_seed"]
        # Setting a Cycles property from Python does not tag the scene for an update, and with
        # persistent data Cycles would keep rendering with the first render's seed (a test checks).
        self.scene.update_tag()
        with redirect_fd1(self.log_path):
            out = render_passes.render_to_arrays(self.scene, self.tmp_dir)
        rgba = out["rgba"]
        gain = np.asarray(lighting["white_balance_rgb"], dtype=np.float32) * np.float32(lighting["exposure"])
        rgba[..., :3] *= gain
        extra = {}
        if want_passes:
            extra = {k: v for k, v in out.items() if k != "rgba"}
            if "normal" in extra:  # world-space normals of the turned rig -> camera frame
                rot = np.array(self.camera.matrix_world)[:3, :3]
                extra["normal"] = extra["normal"] @ rot
        return rgba, extra, render_passes.last_render_call_s

    def render_group(self, row: dict[str, Any]) -> tuple[GroupRenders, RenderTimings]:
        """Render a located plan row (:meth:`synthgen.locate.AssetPaths.locate`: ``head_path``, ``hdri_path``)."""
        timings = RenderTimings()
        t = time.perf_counter()
        camera = self.load_group(row)
        timings.setup_s = time.perf_counter() - t
        lightings = row["lightings"]
        rgba: list = [None] * len(lightings)
        extra: dict = {}
        timings.render_s = [0.0] * len(lightings)
        # the map already in the world first, then by map: each map is loaded once
        order = sorted(range(len(lightings)),
                       key=lambda i: (lightings[i]["hdri_asset_id"] != self.current_hdri,
                                      lightings[i]["hdri_asset_id"], i))
        for i in order:
            rgba[i], p, timings.render_s[i] = self.render_lighting(lightings[i], want_passes=i == 0)
            if i == 0:
                extra = p
        return GroupRenders(camera=camera, rgba=rgba, passes=extra), timings


def software_versions() -> dict[str, str]:
    """What every sample records as ``software``: here in-process, and in the Blender child of a farm worker."""
    import synthgen

    return {"blender": bpy.app.version_string, "synthgen": synthgen.version()}
