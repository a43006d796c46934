"""Render Cycles data passes (albedo, normal, depth) next to the beauty image, as numpy arrays.

What it is for: each lighting of a scene is rendered once with Cycles, and the
caller wants the beauty image together with the Cycles data passes for the same
render. :func:`enable_passes` switches the passes and the output format on once
per scene; :func:`render_to_arrays` renders once per call and returns float32
arrays, top row first.

Mechanism: the render is written as one multi-layer OpenEXR file, using the
scene's own output (``bpy.ops.render.render(write_still=True)``, format
``MULTI_LAYER_IMAGE`` / ``OPEN_EXR_MULTILAYER``, 32-bit float). The file is read
back with the toolkit's one EXR reader
(:func:`synthgen.format.codecs.read_exr_channels`) and then deleted. The compositor is not used
(``render.use_compositing`` is switched off), so a scene compositor cannot
change the beauty image, and no compositor pass runs per render.

Why this mechanism:

* In the ``bpy`` module (background mode) a render's pixels cannot be read
  directly: ``Image('Render Result').pixels`` is empty, and the compositor
  Viewer node creates no image. So the render has to go through a file.
* The compositor File Output node (Blender 5.x: ``CompositorNodeOutputFile``
  with ``file_output_items``, inside ``scene.compositing_node_group``) also
  works, but it needs the compositor on and extra nodes, and it was no faster
  in a timing test (128 px, 16 samples). The plain scene output gives every enabled pass without any node setup.
* The "passes are missing" symptom seen at first was not a Blender problem.
  Blender 5.x writes multi-layer EXRs as **multi-part** files by default (one
  part per pass; ``image_settings.use_exr_interleave`` is False).
  ``OpenEXR.File(...).channels()`` only returns the first part, which is
  ``<ViewLayer>.Combined``. The depth, normal and diffuse-colour passes are in
  the other parts, so :func:`~synthgen.format.codecs.read_exr_channels` reads
  ``File.parts``.
* The Diffuse Color pass of a Principled BSDF is the base colour times the
  part of the light the specular layer lets through: about 0.963 x base colour
  at normal incidence for IOR 1.5, falling to about 0.87 near the silhouette.
  It equals the base colour exactly only when "Specular IOR Level" is 0.

Channel names in the file: ``<view layer>.Combined.{R,G,B,A}``,
``<view layer>.Depth.Z``, ``<view layer>.Normal.{X,Y,Z}``,
``<view layer>.Diffuse Color.{R,G,B}``, and ``<view layer>.Noisy Image.*`` when
denoising is on.
"""

from __future__ import annotations

import os
import time

import bpy
import numpy as np

from synthgen.format.codecs import read_exr_channels

last_render_call_s = 0.0  # wall time of the latest bpy.ops.render.render call

PASS_NAMES = frozenset({"albedo", "normal", "depth"})

# view-layer flag, EXR pass name, channel ids in output order
_PASS_INFO = {
    "albedo": ("use_pass_diffuse_color", "Diffuse Color", "RGB"),
    "normal": ("use_pass_normal", "Normal", "XYZ"),
    "depth": ("use_pass_z", "Depth", "Z"),
}


def _render_layer(scene):
    """The view layer whose passes are returned: the first one that renders."""
    for view_layer in scene.view_layers:
        if view_layer.use:
            return view_layer
    raise RuntimeError(f"scene {scene.name!r} has no view layer enabled for rendering")


def enable_passes(scene, passes) -> None:
    """Set up ``scene`` so that :func:`render_to_arrays` returns ``passes``.

    ``passes`` is a subset of {"albedo", "normal", "depth"}; passes left out are
    switched off. This also sets the output to a 32-bit float multi-layer EXR,
    switches the compositor and sequencer off, and makes the output overwrite
    an existing file. Call it once per scene, not per render: changing these
    settings between renders can make Cycles resync data that persistent data
    would otherwise keep.
    """
    passes = set(passes)
    unknown = passes - PASS_NAMES
    if unknown:
        raise ValueError(f"unknown passes {sorted(unknown)}; expected a subset of {sorted(PASS_NAMES)}")

    for view_layer in scene.view_layers:
        if not view_layer.use:
            continue
        view_layer.use_pass_combined = True
        for name, (flag, _, _) in _PASS_INFO.items():
            setattr(view_layer, flag, name in passes)

    render = scene.render
    settings = render.image_settings
    settings.media_type = "MULTI_LAYER_IMAGE"
    settings.file_format = "OPEN_EXR_MULTILAYER"
    settings.color_depth = "32"
    settings.exr_codec = "NONE"  # renders are small; skip compression work
    settings.color_management = "FOLLOW_SCENE"  # EXR keeps scene-linear data
    render.use_compositing = False  # the beauty image is the raw render
    render.use_sequencer = False
    render.use_overwrite = True  # otherwise a stale file would be read back
    render.use_placeholder = False
    render.use_file_extension = True


def _stack(channels: dict[str, np.ndarray], layer: str, pass_name: str, chan_ids: str) -> np.ndarray:
    keys = [f"{layer}.{pass_name}.{c}" for c in chan_ids]
    missing = [k for k in keys if k not in channels]
    if missing:
        raise RuntimeError(f"render output lacks channels {missing}; has {sorted(channels)}")
    if len(keys) == 1:
        return np.ascontiguousarray(channels[keys[0]], dtype=np.float32)
    return np.ascontiguousarray(np.stack([channels[k] for k in keys], axis=-1), dtype=np.float32)


def render_to_arrays(scene, tmp_dir: str) -> dict[str, np.ndarray]:
    """Render ``scene`` once with its current camera and settings; return the pixels.

    Returns float32 arrays, top row first:

    * ``"rgba"`` (H, W, 4): the Combined pass, scene-linear and premultiplied,
      with alpha from ``film_transparent`` (denoised if Cycles denoising is on).
    * ``"albedo"`` (H, W, 3): Cycles Diffuse Color pass (if enabled).
    * ``"normal"`` (H, W, 3): Cycles Normal pass, world-space shading normals
      (if enabled).
    * ``"depth"`` (H, W): Cycles Depth pass, the distance along the camera's
      viewing axis in scene units (metres); background pixels hold 1e10
      (if enabled).

    Data passes are not denoised, and are averaged over the pixel filter like
    the beauty image, so they blend at silhouettes (depth there is a mix of the
    surface and 1e10). ``tmp_dir`` holds the EXR file while it is read; the file
    is deleted afterwards. :func:`enable_passes` must have been called first.
    """
    if scene.render.engine != "CYCLES":
        raise RuntimeError(f"render_to_arrays expects Cycles; the scene uses {scene.render.engine}")
    settings = scene.render.image_settings
    if settings.file_format != "OPEN_EXR_MULTILAYER":
        raise RuntimeError("call enable_passes(scene, ...) before render_to_arrays")

    if scene.render.use_multiview:
        raise RuntimeError("render_to_arrays does not handle multi-view (stereo) renders")

    view_layer = _render_layer(scene)
    os.makedirs(tmp_dir, exist_ok=True)
    path = os.path.join(os.path.abspath(tmp_dir), f"synthgen_passes_{os.getpid()}.exr")
    if "#" in path:
        raise ValueError(f"tmp_dir must not contain '#' (Blender puts the frame number there): {tmp_dir!r}")
    # Assign only when it changes: every RNA write tags the scene for an update.
    if scene.render.filepath != path:
        scene.render.filepath = path
    if os.path.exists(path):
        os.remove(path)

    global last_render_call_s
    t = time.perf_counter()
    bpy.ops.render.render(write_still=True, scene=scene.name)
    last_render_call_s = time.perf_counter() - t  # Cycles' own time, for pipeline-overhead stats
    if not os.path.exists(path):
        raise RuntimeError(f"render wrote no file at {path}")
    try:
        channels = read_exr_channels(path)
    finally:
        os.remove(path)

    out = {"rgba": _stack(channels, view_layer.name, "Combined", "RGBA")}
    for name, (flag, pass_name, chan_ids) in _PASS_INFO.items():
        if getattr(view_layer, flag):
            out[name] = _stack(channels, view_layer.name, pass_name, chan_ids)
    return out
