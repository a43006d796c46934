"""A real ``relight-wds/2`` dataset of numpy-rendered spheres, for fast relight tests (no bpy).

``make_sphere_dataset(out_dir, groups=16, k=4, res=32)`` plans a job with
synthgen's own planner (:func:`synthgen.plan.make_plan`, over an in-memory
catalog of sphere "heads" and procedural HDRIs), "renders" every group with
numpy, and writes it through synthgen's writer: :func:`synthgen.samples.build_sample`,
:func:`synthgen.shards.write_shard`, :func:`synthgen.dataset.finalize`. The
result is a synthgen output folder in every respect (``dataset.json``,
``index.parquet``, wids indices, shards with ``json``/``rgb_XX.png``/
``env_XX.png``/``env_XX.exr``/``mask.png``), with train/val/test splits whose
HDRIs are disjoint, like a real job's.

Shading follows the env map exactly as the shards encode it: the lighting is
taken into the camera frame with :func:`synthgen.camera_env.camera_frame_env`
(the same call that writes ``env_XX``), and each pixel of a sphere centred in
the frame, with camera-frame normal ``n`` (+x image right, +y up, +z toward the
camera, DESIGN.md), gets

    rgb = albedo / pi * sum_d L(d) max(0, n.d) dw  +  ks (p+2)/(2 pi) * sum_d L(d) max(0, r.d)^p dw

(Lambertian plus a normalised Phong lobe around the mirror direction ``r``),
with ``d``, ``dw`` the camera-frame direction and solid angle of each env
pixel. So a light at env u = 0.75 brightens the sphere's image-right side:
the env -> render mapping is learnable. Albedo comes from the group's head
parameters (melanin), so captions and pixels agree.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np
from PIL import Image

from assets_manifest import envmap, hdri_io, procedural_hdri
from synthgen import camera_env, dataset, job as jobs, plan as planning, samples, shards
from synthgen.runner import ShardResult

SHADE_WIDTH = 32  # env resolution used for shading (16 x 32 directions): plenty for a diffuse sphere
SPHERE_RADIUS = 0.78  # in half-frame units


def _rot_x(degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def world_from_camera(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """A camera orbiting the subject: frontal camera turned by yaw (about world +Z), pitch, roll."""
    rot = camera_env.rot_z(yaw_deg) @ camera_env.FRONTAL_CAMERA @ _rot_x(-pitch_deg) @ camera_env.rot_z(roll_deg)
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = rot @ np.array([0.0, 0.0, 1.2])
    return out


def skin_rgb(melanin: float) -> np.ndarray:
    """A plausible linear skin albedo from the melanin fraction (fair ~0.6 .. very dark ~0.05)."""
    t = np.clip((melanin - 0.005) / 0.45, 0.0, 1.0) ** 0.6
    fair, dark = np.array([0.62, 0.43, 0.34]), np.array([0.09, 0.05, 0.035])
    return (1 - t) * fair + t * dark


def sphere_geometry(res: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame normals (res, res, 3) and antialiased coverage (res, res) of the centred sphere."""
    t = ((np.arange(res) + 0.5) / res * 2 - 1) / SPHERE_RADIUS
    x, y = np.meshgrid(t, -t)  # top row first: image up is +y
    rho = np.sqrt(x * x + y * y)
    alpha = np.clip((1.0 - rho) * SPHERE_RADIUS * res / 2 + 0.5, 0.0, 1.0)
    scale = np.minimum(1.0, 0.999 / np.maximum(rho, 1e-9))  # edge pixels: use the rim normal
    x, y = x * scale, y * scale
    z = np.sqrt(np.clip(1 - x * x - y * y, 0.0, 1.0))
    return np.stack([x, y, z], axis=-1), alpha


SHADE_MAX_RES = 128  # shading is smooth: above this it is computed at 128 px and upsampled (coverage stays exact)


def _shade(normals: np.ndarray, env_cam: np.ndarray, albedo: np.ndarray, specular: float, shininess: int):
    h, w = env_cam.shape[:2]
    dirs = envmap.directions(h, w).reshape(-1, 3).astype(np.float32)
    omega = np.broadcast_to(envmap.solid_angles(h, w), (h, w)).reshape(-1, 1)
    radiance = (env_cam.reshape(-1, 3) * omega).astype(np.float32)
    n = normals.astype(np.float32)
    cos = np.maximum(n @ dirs.T, 0.0)
    rgb = (albedo / np.pi).astype(np.float32) * (cos @ radiance)
    if specular > 0:
        refl = 2 * n[:, 2:3] * n - np.array([0.0, 0.0, 1.0], dtype=np.float32)  # mirror of the view direction (+z)
        lobe = np.maximum(refl @ dirs.T, 0.0, out=cos)
        lobe **= shininess
        rgb += specular * (shininess + 2) / (2 * np.pi) * (lobe @ radiance)
    return rgb


def shade_sphere(env_cam: np.ndarray, albedo: np.ndarray, res: int, specular: float = 0.04,
                 shininess: int = 16) -> np.ndarray:
    """Linear premultiplied RGBA (res, res, 4) of the sphere lit by a camera-frame env map (H, 2H, 3)."""
    normals, alpha = sphere_geometry(res)
    if res <= SHADE_MAX_RES:
        inside = alpha.reshape(-1) > 0
        rgb = np.zeros((res * res, 3), dtype=np.float32)
        rgb[inside] = _shade(normals.reshape(-1, 3)[inside], env_cam, albedo, specular, shininess)
        rgb = rgb.reshape(res, res, 3)
    else:  # outside pixels carry the rim normal, so the upsampled field has no dark fringe
        coarse = _shade(sphere_geometry(SHADE_MAX_RES)[0].reshape(-1, 3), env_cam, albedo, specular, shininess)
        coarse = coarse.reshape(SHADE_MAX_RES, SHADE_MAX_RES, 3)
        rgb = np.stack([np.asarray(Image.fromarray(coarse[..., c], mode="F").resize((res, res), Image.BILINEAR))
                        for c in range(3)], axis=-1)
    return np.concatenate([rgb * alpha[..., None], alpha[..., None]], axis=-1).astype(np.float32)


def _split_counts(groups: int | dict[str, int]) -> dict[str, int]:
    if isinstance(groups, dict):
        return {s: int(groups.get(s, 0)) for s in planning.SPLIT_ORDER}
    held = max(1, groups // 8)
    if groups < 3:
        raise ValueError(f"groups={groups}: need at least 3 (one per split)")
    return {"train": groups - 2 * held, "val": held, "test": held}


def _assets(out_dir: str, counts: dict[str, int], maps_per_split: dict[str, int], hdri_width: int) -> tuple:
    rng = np.random.default_rng(1234)
    heads: dict[str, list] = {s: [] for s in planning.SPLIT_ORDER}
    hdris: dict[str, list] = {s: [] for s in planning.SPLIT_ORDER}
    arrays: dict[str, np.ndarray] = {}
    seed = 0
    os.makedirs(os.path.join(out_dir, "assets"), exist_ok=True)
    for split in planning.SPLIT_ORDER:
        for h in range(max(2, counts[split])):  # procedural-head parameters the captions can read
            params = {"params_version": 1, "seed": seed * 100 + h, "melanin": float(rng.uniform(0.008, 0.45)),
                      "haemoglobin": float(rng.uniform(0.01, 0.05)), "hair_melanin": float(rng.uniform(0.05, 1.0)),
                      "hair_redness": float(rng.uniform(0.0, 0.8)), "hair_coverage": 0.0,
                      "smile": float(rng.uniform(0.0, 0.8))}
            aid = "head-sphere" + hashlib.sha256(f"{split}{h}".encode()).hexdigest()[:12]
            heads[split].append({"asset_id": aid, "name": f"sphere_{split}_{h}",
                                 "sha256": hashlib.sha256(aid.encode()).hexdigest(),
                                 "head": {"generator_params": json.dumps(params, sort_keys=True)}})
        for m in range(maps_per_split[split]):
            style = procedural_hdri.STYLES[seed % len(procedural_hdri.STYLES)]
            rgb = procedural_hdri.generate(style, seed, hdri_width).rgb
            seed += 1
            name = f"{style}_{seed - 1}"
            hdri_io.write_exr(os.path.join(out_dir, "assets", f"{name}.exr"), rgb)
            aid = "hdri-" + hashlib.sha256(name.encode()).hexdigest()[:16]
            arrays[aid] = rgb
            omega = np.broadcast_to(envmap.solid_angles(*rgb.shape[:2]), rgb.shape[:2])
            mean_lum = float((envmap.luminance(rgb) * omega).sum() / (4 * np.pi))
            hdris[split].append({"asset_id": aid, "name": name, "hdri": {"mean_luminance": mean_lum}})
    for split in planning.SPLIT_ORDER:  # make_plan wants assets sorted by id
        heads[split].sort(key=lambda r: r["asset_id"])
        hdris[split].sort(key=lambda r: r["asset_id"])
    return planning.Assets(heads=heads, hdris=hdris), arrays


def make_sphere_dataset(out_dir: str, groups: int | dict[str, int] = 16, k: int = 4, res: int = 32,
                        env_width: int = 32, shard_size: int = 4, seed: int = 0, specular: float = 0.04,
                        backgrounds: tuple[str, ...] = ("transparent", "solid"),
                        maps_per_split: dict[str, int] | None = None, rotations_per_hdri: int = 1,
                        job_id: str = "spheres") -> dict[str, Any]:
    """Write a synthgen dataset folder of sphere groups; return ``finalize``'s summary.

    ``groups``: total (split about 6:1:1 into train/val/test) or a dict per split.
    ``k`` lightings per group (``k / rotations_per_hdri`` maps, each at that many rotations).
    ``res``: render size; ``env_width``: width of the ``env_XX`` members (height = width / 2).
    """
    if k % rotations_per_hdri:
        raise ValueError(f"k={k} must be a multiple of rotations_per_hdri={rotations_per_hdri}")
    counts = _split_counts(groups)
    maps = maps_per_split or {"train": 6, "val": 2, "test": 2}
    job = jobs.from_dict({
        "job": {"id": job_id, "seed": seed, "catalogs": ["<in-memory sphere catalog>"], "shard_size": shard_size},
        "splits": counts,
        "render": {"resolution": res, "samples": 1, "denoise": False, "passes": []},
        "lighting": {"hdris_per_group": k // rotations_per_hdri, "rotations_per_hdri": rotations_per_hdri,
                     "env_width": env_width},
        "background": {"modes": list(backgrounds), "weights": [1.0] * len(backgrounds)},
    }, where="relight_fixtures")
    os.makedirs(out_dir, exist_ok=True)
    assets, arrays = _assets(out_dir, counts, maps, hdri_width=max(64, 2 * SHADE_WIDTH))
    plan = planning.make_plan(job, assets)
    planning.write_plan(plan, job, os.path.join(out_dir, "plan.parquet"))
    jd = job.to_dict()
    software = {"renderer": "tests/relight_fixtures.py numpy sphere", "numpy": np.__version__}
    results = {}
    for name, rows in planning.shards_of(plan).items():
        def produce(rows=rows):
            for row in rows:
                cam = world_from_camera(row["yaw_deg"], row["pitch_deg"], row["roll_deg"])
                albedo = skin_rgb(json.loads(row["head_params"])["melanin"])
                rgba = []
                for lt in row["lightings"]:
                    gain = np.asarray(lt["white_balance_rgb"], dtype=np.float32) * lt["exposure"]
                    env = camera_env.camera_frame_env(arrays[lt["hdri_asset_id"]], cam[:3, :3], lt["rotation_deg"],
                                                      SHADE_WIDTH) * gain
                    rgba.append(shade_sphere(env, albedo, res, specular))
                renders = samples.GroupRenders(samples.CameraInfo(cam, row["focal_mm"], row["sensor_mm"], res), rgba)
                yield samples.build_sample(row, renders, arrays, jd, software)
        record = shards.write_shard(out_dir, name, rows[0]["split"], produce())
        results[name] = ShardResult(record=record)
    return dataset.finalize(out_dir, job, plan, results)


if __name__ == "__main__":  # python tests/relight_fixtures.py OUT [GROUPS] [RES]
    import sys
    import time

    t0 = time.perf_counter()
    summary = make_sphere_dataset(sys.argv[1], groups=int(sys.argv[2]) if len(sys.argv) > 2 else 16,
                                  res=int(sys.argv[3]) if len(sys.argv) > 3 else 32)
    print(summary, f"{time.perf_counter() - t0:.2f} s")
