"""Assemble one ``relight-wds/2`` sample from a group's plan row and its renders.

Pure numpy: the renderer hands over linear premultiplied RGBA per lighting
(plus passes for the first), this module composites the background, builds
the camera-frame env maps (:mod:`synthgen.camera_env`) and encodes every
member (:mod:`synthgen.format.codecs`).

Members (DESIGN.md): ``json``, ``rgb_XX.png``, ``env_XX.png``,
``env_XX.exr``, ``mask.png``, and when asked ``albedo.png``, ``normal.exr``
(camera-frame normals, +x right, +y up, +z toward the camera),
``depth.exr`` (distance along the camera's -z in metres, 0 on background),
``rgb_XX.exr`` (linear HDR render). ``env_XX.exr`` holds the radiance that
lit the render (white balance and exposure applied), so
``env_XX.png == clip(env_XX.exr, 0, 1) ** (1/2.2)``.

The json holds what the plan row holds (and ``hair``: a summary of the resolved hair spec, or null):
assets by ``asset_id`` and name,
never where their files are, so a sample's bytes do not depend on where
the catalogs live.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assets_manifest import envmap, hair
from synthgen import camera_env
from synthgen.format import codecs, shard as shard_format


@dataclass
class CameraInfo:
    world_from_camera: np.ndarray  # 4x4
    focal_mm: float
    sensor_mm: float
    resolution: int

    def intrinsics(self) -> list[list[float]]:
        f = self.focal_mm / self.sensor_mm * self.resolution
        c = self.resolution / 2.0
        return [[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]]


@dataclass
class GroupRenders:
    camera: CameraInfo
    rgba: list[np.ndarray]  # per lighting, (H, W, 4) linear, premultiplied alpha
    passes: dict[str, np.ndarray] = field(default_factory=dict)  # albedo, normal (camera frame), depth


def _rounded(x: float) -> float:
    return float(np.round(x, 9))


def metadata(row: dict[str, Any], renders: GroupRenders, job: dict[str, Any], software: dict[str, str]) -> dict:
    cam = renders.camera
    return {
        "format": shard_format.FORMAT,
        "job_id": job["job"]["id"],
        "group_index": row["group_index"],
        "split": row["split"],
        "seeds": {"job_seed": row["job_seed"], "seed_sequence": [row["job_seed"], row["group_index"]]},
        "head": {"asset_id": row["head_asset_id"], "name": row["head_name"], "sha256": row["head_sha256"],
                 "params": row.get("head_params")},
        "camera": {
            "focal_mm": row["focal_mm"], "sensor_mm": row["sensor_mm"], "framing": row["framing"],
            "yaw_deg": row["yaw_deg"], "pitch_deg": row["pitch_deg"], "roll_deg": row["roll_deg"],
            "resolution": cam.resolution,
            "intrinsics": cam.intrinsics(),
            "world_from_camera": [[_rounded(v) for v in r] for r in np.asarray(cam.world_from_camera).tolist()],
            "convention": "Blender world (Z up); camera +x right, +y up, looks down -z",
        },
        "background": {"mode": row["background"], "rgb": row["background_rgb"]},
        # what hair was rendered (style, length, colour, greying, beard), for filtering; None: none
        "hair": hair.summary(json.loads(row["hair"])) if row.get("hair") else None,
        "lightings": [dict(lt, index=i) for i, lt in enumerate(row["lightings"])],
        "render": {k: job["render"][k]
                   for k in ("samples", "adaptive_threshold", "denoise", "max_bounces", "world_map_resolution",
                             "subsurface_method")},
        "software": software,
    }


def build_sample(row: dict[str, Any], renders: GroupRenders, hdris: dict[str, np.ndarray],
                 job: dict[str, Any], software: dict[str, str]) -> dict[str, bytes]:
    """The sample dict for webdataset's writer: {"__key__": key, field: bytes, ...}.

    ``row`` is the plan row (not the renderer's located one), ``hdris`` the source maps by asset id.
    """
    cam = renders.camera
    rot = np.asarray(cam.world_from_camera)[:3, :3]
    env_width = job["lighting"]["env_width"]
    sample: dict[str, Any] = {"__key__": row["key"]}
    alpha = renders.rgba[0][..., 3]
    for i, (lighting, rgba) in enumerate(zip(row["lightings"], renders.rgba)):
        gain = np.asarray(lighting["white_balance_rgb"], dtype=np.float32) * lighting["exposure"]
        src = hdris[lighting["hdri_asset_id"]]
        if row["background"] == "env":
            plate = camera_env.background_plate(src, rot, lighting["rotation_deg"], cam.resolution,
                                                cam.focal_mm, cam.sensor_mm) * gain
        elif row["background"] == "solid":
            # a solid backdrop: constant in display space, stored linear
            plate = np.broadcast_to((np.asarray(row["background_rgb"], dtype=np.float32) ** 2.2), rgba.shape[:2] + (3,))
        else:
            plate = np.zeros(rgba.shape[:2] + (3,), dtype=np.float32)
        linear = rgba[..., :3] + (1.0 - rgba[..., 3:4]) * plate
        sample[shard_format.rgb_field(i)] = codecs.png_bytes(codecs.srgb_encode(linear))
        if job["render"]["hdr_renders"]:
            sample[shard_format.rgb_field(i, hdr=True)] = codecs.exr_bytes(linear)
        env = camera_env.camera_frame_env(src, rot, lighting["rotation_deg"], env_width) * gain
        sample[shard_format.env_field(i)] = codecs.png_bytes(envmap.ldr_encode(env))
        sample[shard_format.env_field(i, hdr=True)] = codecs.exr_bytes(env)
    sample["mask.png"] = codecs.png_bytes(np.round(np.clip(alpha, 0, 1) * 255).astype(np.uint8))
    p = renders.passes
    if "albedo" in p:
        sample["albedo.png"] = codecs.png_bytes(codecs.srgb_encode(p["albedo"]))
    if "normal" in p:  # already in the camera frame (the renderer knows the rig's turn)
        sample["normal.exr"] = codecs.exr_bytes(p["normal"] * (alpha[..., None] > 0))
    if "depth" in p:
        d = np.where(alpha > 0, p["depth"], 0.0)
        sample["depth.exr"] = codecs.exr_bytes(np.where(np.isfinite(d), d, 0.0))
    sample["json"] = codecs.json_bytes(metadata(row, renders, job, software))
    shard_format.check_fields(row["key"], set(sample) - {"__key__"})
    return sample
