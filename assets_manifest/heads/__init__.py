"""Procedural parametric heads: parameters, geometry and GLB export (numpy/trimesh only).

    from assets_manifest.heads import sample_head_params, build_head, write_head_glb
    p = sample_head_params(7)          # HeadParams, deterministic in the seed
    parts = build_head(p)              # {"skin": Trimesh, "eye_L": ..., ...}
    meta = write_head_glb(p, "head_0007.glb")

Units are metres, +Z up, the face looks toward -Y (see geometry's docstring);
materials are built on the Blender side by synthgen.render.role_materials
from the roles and parameters in the GLB's material extras.
"""

from .export import FORMAT, read_head_record, write_head_glb
from .geometry import build_head
from .params import SPECS, HeadParams, sample_head_params

__all__ = ["FORMAT", "SPECS", "HeadParams", "build_head", "read_head_record",
           "sample_head_params", "write_head_glb"]
