"""The built-in catalog: assets that need no download.

* the eight CC0 Poly Haven HDRIs that ship inside the ``bpy`` wheel
  (``datafiles/studiolights/world``), copied so the catalog is self-contained;
* procedural HDRIs (:mod:`assets_manifest.procedural_hdri`), cycling through
  the styles, written as half-float EXR;
* procedural heads (:mod:`assets_manifest.heads`), written as GLB, each with a hair
  spec (:mod:`assets_manifest.hair`) in its ``generator_params``.

Everything is a pure function of the counts and sizes asked for, so two
builds give byte-identical files and the same asset ids. Files already
present are kept (they are identical by construction); ``force`` rewrites.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
from dataclasses import dataclass

from tqdm import tqdm

from assets_manifest import hair, procedural_hdri, splits
from assets_manifest.schema import AssetError, write_manifest
from assets_manifest.scan import record_for
from synthgen.format import atomic

BPY_HDRI_SOURCE = "Blender bundled studio lights (Poly Haven, CC0)"
PROCEDURAL_SOURCE = "synthlight procedural generator"


@dataclass(frozen=True)
class BuiltinConfig:
    procedural_hdris: int = 60
    hdri_width: int = 1024
    heads: int = 24
    include_bpy_hdris: bool = True
    fractions: tuple[float, float, float] = splits.DEFAULT_FRACTIONS
    force: bool = False


def bpy_hdri_dir() -> str:
    """Where the bpy wheel keeps its world HDRIs, found without importing bpy."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise AssetError("bpy is not installed: the built-in HDRIs ship with it (pip install '.[render]')")
    for root in spec.submodule_search_locations:
        found = sorted(glob.glob(os.path.join(root, "*", "datafiles", "studiolights", "world")))
        if found:
            return found[-1]
    raise AssetError("bpy is installed but has no datafiles/studiolights/world folder")


def _json(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def head_generator_params(params) -> dict:
    """A procedural head's ``generator_params``: its ``HeadParams.to_dict()`` plus ``hair``, the hair spec
    (:mod:`assets_manifest.hair`) drawn from the head's seed, in the head's own hair colour and coverage.
    ``HeadParams.from_dict`` refuses unknown keys: drop ``hair`` before reading the params back."""
    spec = hair.draw_hair(hair.derive_seed(params.seed), melanin=params.hair_melanin, redness=params.hair_redness,
                          masculinity=hair.procedural_masculinity(params.seed), coverage=params.hair_coverage)
    return {**params.to_dict(), "hair": spec}


def build(out_dir: str, config: BuiltinConfig = BuiltinConfig(), progress: bool = True) -> str:
    """Write the built-in assets under ``out_dir`` and ``out_dir/manifest.parquet``; return its path."""
    from assets_manifest.hdri_io import write_exr

    manifest = os.path.join(out_dir, "manifest.parquet")
    rows = []
    jobs: list[tuple[str, object]] = []
    if config.include_bpy_hdris:
        jobs += [("bpy", p) for p in sorted(glob.glob(os.path.join(bpy_hdri_dir(), "*.exr")))]
    jobs += [("hdri", spec) for spec in procedural_hdri.plan_styles(config.procedural_hdris)]
    jobs += [("head", seed) for seed in range(config.heads)]
    for what, arg in tqdm(jobs, desc="built-in assets", unit="asset", disable=not progress):
        if what == "bpy":
            dst = os.path.join(out_dir, "hdri", "blender", os.path.basename(arg))
            if config.force or not os.path.exists(dst):
                atomic.copy_file(arg, dst)
            row, problems = record_for(dst, manifest, "CC0-1.0", BPY_HDRI_SOURCE)
        elif what == "hdri":
            style, seed = arg
            dst = os.path.join(out_dir, "hdri", "procedural", f"{style}_{seed:04d}.exr")
            hdri = procedural_hdri.generate(style, seed, config.hdri_width)
            if config.force or not os.path.exists(dst):
                write_exr(dst, hdri.rgb)
            row, problems = record_for(dst, manifest, "CC0-1.0", PROCEDURAL_SOURCE,
                                       generator=procedural_hdri.GENERATOR, generator_params=_json(hdri.params))
        else:
            from assets_manifest import heads

            dst = os.path.join(out_dir, "heads", f"head_{arg:04d}.glb")
            params = heads.sample_head_params(arg)
            if config.force or not os.path.exists(dst):
                heads.write_head_glb(params, dst)
            row, problems = record_for(dst, manifest, "CC0-1.0", PROCEDURAL_SOURCE,
                                       generator=heads.FORMAT, generator_params=_json(head_generator_params(params)))
        if problems:  # a built-in asset failing its own checks is a bug, not bad input
            raise AssetError("; ".join(problems))
        rows.append(row)
    for kind in ("head", "hdri"):  # exact proportions per kind: the set is generated whole
        ids = [r["asset_id"] for r in rows if r["kind"] == kind]
        assigned = splits.rank_splits(ids, config.fractions)
        for r in rows:
            if r["kind"] == kind:
                r["split"] = assigned[r["asset_id"]]
    return write_manifest(rows, manifest)
