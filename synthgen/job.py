"""Job files: TOML -> validated dataclasses, with dotted command-line overrides.

A job says what to render (how many groups per split, from which catalogs),
how to randomize it (camera, lightings, background) and how to render it
(resolution, samples, passes, device). Unknown keys and out-of-range values
are errors that name the key (``render.sampels: unknown key; did you mean
render.samples?``), so a typo never silently falls back to a default. The
TOML and ``--set`` loading is the format layer's (:mod:`synthgen.format.config`),
shared with relight's training configs.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from assets_manifest import hair
from synthgen.format.config import ConfigError, fill_sections, load_toml

# A bad job file or override; the message names the file and key. The same class as the
# format layer's ConfigError, so ``except JobError`` also catches what the shared loader raises.
JobError = ConfigError


def _r(lo: float | None = None, hi: float | None = None, **kw) -> Any:
    return field(metadata={"range": (lo, hi)}, **kw)


@dataclass
class JobSection:
    id: str = "job"
    seed: int = _r(0, 2**63 - 1, default=0)
    catalogs: list[str] = field(default_factory=lambda: ["out/catalog/manifest.parquet"])
    shard_size: int = _r(1, 100_000, default=4)


@dataclass
class SplitsSection:
    train: int = _r(0, 10**9, default=16)
    val: int = _r(0, 10**9, default=0)
    test: int = _r(0, 10**9, default=0)


@dataclass
class RenderSection:
    resolution: int = _r(16, 8192, default=128)
    samples: int = _r(1, 1 << 16, default=16)
    # 0 = off (the default): with adaptive sampling on, when Cycles checks convergence depends on timing,
    # so a few pixels can differ by 1/255 between runs and worker counts
    adaptive_threshold: float = _r(0.0, 1.0, default=0.0)
    denoise: bool = True
    max_bounces: int = _r(0, 64, default=6)
    world_map_resolution: int = _r(0, 16384, default=0)  # Cycles' world importance map; 0 = 2x the HDR map's width
    # Skin subsurface (Principled BSDF method). Blender 5.2's random walk maps radius and anisotropy
    # to albedo; RANDOM_WALK_LEGACY is 5.0's fixed-radius walk. See README "Skin subsurface".
    subsurface_method: str = "RANDOM_WALK_SKIN"  # RANDOM_WALK_SKIN | RANDOM_WALK | RANDOM_WALK_LEGACY | BURLEY
    device: str = "auto"  # auto | cpu | gpu
    threads: int = _r(0, 1024, default=0)  # 0 = all the cores this worker has
    passes: list[str] = field(default_factory=lambda: ["albedo", "normal", "depth"])
    hdr_renders: bool = False
    timeout_s: float = _r(1, 86400, default=900)


@dataclass
class CameraSection:
    focal_mm: list[float] = field(default_factory=lambda: [50.0, 85.0])
    sensor_mm: float = _r(1, 100, default=36.0)
    framing: list[float] = field(default_factory=lambda: [0.55, 0.75])  # head height / image height
    yaw_deg: list[float] = field(default_factory=lambda: [-35.0, 35.0])
    pitch_deg: list[float] = field(default_factory=lambda: [-10.0, 15.0])
    roll_deg: list[float] = field(default_factory=lambda: [-4.0, 4.0])


@dataclass
class LightingSection:
    hdris_per_group: int = _r(1, 1000, default=2)
    rotations_per_hdri: int = _r(1, 360, default=1)
    rotation: str = "uniform"  # uniform | even
    exposure_ev: list[float] = field(default_factory=lambda: [-0.5, 0.5])
    normalize_exposure: bool = True  # scale each map to a common mean luminance first
    target_mean_luminance: float = _r(1e-6, 1e6, default=0.8)
    white_balance_kelvin: list[float] = field(default_factory=lambda: [5500.0, 7500.0])
    env_width: int = _r(16, 4096, default=256)


@dataclass
class BackgroundSection:
    modes: list[str] = field(default_factory=lambda: ["env", "transparent", "solid"])
    weights: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])


@dataclass
class HairSection:
    enabled: bool = True  # false: no strands at all (scalp, brows, lashes, beard)
    facial: bool = True  # brows, lashes and beard (false: scalp hair only)
    styles: dict[str, float] = field(default_factory=dict)  # style -> weight; {} = each head's catalog style
    density_scale: float = _r(0.0, 100.0, default=1.0)  # multiplies strand counts (benchmarks, tests)


@dataclass
class Job:
    job: JobSection = field(default_factory=JobSection)
    splits: SplitsSection = field(default_factory=SplitsSection)
    render: RenderSection = field(default_factory=RenderSection)
    camera: CameraSection = field(default_factory=CameraSection)
    lighting: LightingSection = field(default_factory=LightingSection)
    background: BackgroundSection = field(default_factory=BackgroundSection)
    hair: HairSection = field(default_factory=HairSection)
    source: str = "<defaults>"  # where it was read from, for messages

    @property
    def lightings_per_group(self) -> int:
        return self.lighting.hdris_per_group * self.lighting.rotations_per_hdri

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source")
        return d


SECTIONS = {f.name: f.type for f in dataclasses.fields(Job) if f.name != "source"}
_CHOICES = {
    "render.device": ("auto", "cpu", "gpu"),
    "render.subsurface_method": ("RANDOM_WALK_SKIN", "RANDOM_WALK", "RANDOM_WALK_LEGACY", "BURLEY"),
    "lighting.rotation": ("uniform", "even"),
}
_PASSES = ("albedo", "normal", "depth")
_BG_MODES = ("env", "transparent", "solid")
_PAIRS = ("camera.focal_mm", "camera.framing", "camera.yaw_deg", "camera.pitch_deg", "camera.roll_deg",
          "lighting.exposure_ev", "lighting.white_balance_kelvin")
_PAIR_RANGES = {
    "camera.focal_mm": (8, 400),
    "camera.framing": (0.05, 1.5),
    "camera.yaw_deg": (-180, 180),
    "camera.pitch_deg": (-80, 80),
    "camera.roll_deg": (-90, 90),
    "lighting.exposure_ev": (-16, 16),
    "lighting.white_balance_kelvin": (1667, 25000),
}


def from_dict(data: dict[str, Any], where: str = "<job>") -> Job:
    job = Job(source=where)
    fill_sections(job, data, list(SECTIONS), where)
    check(job)
    return job


def check(job: Job) -> None:
    where = job.source
    for sec_name in SECTIONS:
        section = getattr(job, sec_name)
        for f in dataclasses.fields(section):
            lo, hi = f.metadata.get("range", (None, None))
            v = getattr(section, f.name)
            key = f"{sec_name}.{f.name}"
            if lo is not None and v < lo or hi is not None and v > hi:
                raise JobError(f"{where}: {key} = {v!r} is out of range [{lo}, {hi}]")
            if key in _CHOICES and v not in _CHOICES[key]:
                raise JobError(f"{where}: {key} = {v!r} must be one of {', '.join(_CHOICES[key])}")
            if key in _PAIRS:
                lo2, hi2 = _PAIR_RANGES[key]
                if len(v) != 2 or not all(isinstance(x, (int, float)) for x in v) or v[0] > v[1]:
                    raise JobError(f"{where}: {key} = {v!r} must be [min, max] with min <= max")
                if v[0] < lo2 or v[1] > hi2:
                    raise JobError(f"{where}: {key} = {v!r} is out of range [{lo2}, {hi2}]")
    bad = [p for p in job.render.passes if p not in _PASSES]
    if bad:
        raise JobError(f"{where}: render.passes: unknown pass {bad[0]!r} (known: {', '.join(_PASSES)})")
    bg = job.background
    bad = [m for m in bg.modes if m not in _BG_MODES]
    if bad or not bg.modes:
        raise JobError(f"{where}: background.modes: {bad[0]!r} is not one of {', '.join(_BG_MODES)}" if bad
                       else f"{where}: background.modes must not be empty")
    if len(bg.weights) != len(bg.modes) or any(w < 0 for w in bg.weights) or sum(bg.weights) <= 0:
        raise JobError(f"{where}: background.weights must be {len(bg.modes)} non-negative numbers, one per mode")
    job.hair.styles = hair.check_mix(job.hair.styles, where)
    k = job.lightings_per_group
    if not 2 <= k <= 1000:
        raise JobError(f"{where}: lighting.hdris_per_group x lighting.rotations_per_hdri = {k}; "
                       "a group needs 2 to 1000 lightings")
    if not job.job.id or not job.job.id.replace("_", "").replace("-", "").isalnum():
        raise JobError(f"{where}: job.id = {job.job.id!r} must be letters, digits, '-' or '_' (it becomes sample keys)")
    if not job.job.catalogs:
        raise JobError(f"{where}: job.catalogs must name at least one manifest")
    if job.splits.train + job.splits.val + job.splits.test == 0:
        raise JobError(f"{where}: [splits] asks for no groups at all")


def load(path: str, overrides: list[str] = ()) -> Job:
    job = from_dict(load_toml(path, overrides, "job file", "render.samples=16"), path)
    # catalogs are relative to the job file's folder unless absolute or URLs
    base = os.path.dirname(os.path.abspath(path))
    job.job.catalogs = [c if "://" in c or os.path.isabs(c) else os.path.normpath(os.path.join(base, c))
                        for c in job.job.catalogs]
    return job
