"""Write a generated head as a self-describing GLB.

glTF is +Y up; the generator works in Blender's +Z up, so vertices and
normals are rotated on the way out ((x, y, z) -> (x, z, -y)) and Blender's
glTF importer rotates them back. The scene's `extras["synthgen_head"]`
holds the format tag, the full params (`HeadParams.to_dict()`), the derived
material values, landmarks (in +Z-up metres) and the eye UV bands; the skin
node's extras hold the same record and every node names its part in
`extras["synthgen_part"]`. Each glTF material is named after its part's
material role (``skin``, ``iris`` for the eyeballs, ``cornea``, ``scalp``, ``teeth``, ``gums``; the
oral cavity's lining is material ``mouth`` with role ``gums``) and
carries the role and every parameter its shader needs in
`extras["synthgen_role"]` and `extras["synthgen_material"]` (colours, skin
regions as object-space ellipsoids, the eyeball's UV bands), so the renderer
builds its materials through the same role path as any imported head,
without this generator (:func:`material_extras`). Output bytes depend only on the params, not on
the CPU or BLAS: no `@`/np.dot here (the axis change is a permutation) and
normals are unit vectors computed with portable_math, written without
trimesh's np.dot-based re-unitizing.
"""

from __future__ import annotations

import json

import numpy as np
import trimesh
from trimesh.visual.material import PBRMaterial

from synthgen.format import atomic

from . import eyes as E
from .. import portable_math as pm
from .geometry import build_head, make_layout
from .params import HeadParams

FORMAT = "synthgen-head/1"
PART_ORDER = ("skin", "eye_L", "eye_R", "cornea_L", "cornea_R", "scalp", "teeth_upper", "teeth_lower",
              "gums_upper", "gums_lower", "mouth")
# glTF material (and role) of each part; "mouth" is the dark lining of the oral cavity, a gums-role
# material of its own colour
PART_MATERIAL = {"skin": "skin", "eye_L": "iris", "eye_R": "iris", "cornea_L": "cornea", "cornea_R": "cornea",
                 "scalp": "scalp", "teeth_upper": "teeth", "teeth_lower": "teeth", "gums_upper": "gums",
                 "gums_lower": "gums", "mouth": "mouth"}
TEETH_COLOR = [0.78, 0.72, 0.6]
GUMS_COLOR = [0.5, 0.13, 0.13]
MOUTH_COLOR = [0.14, 0.03, 0.03]

_Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _to_y_up(v: np.ndarray) -> np.ndarray:
    """Rows times _Z_UP_TO_Y_UP.T, i.e. (x, y, z) -> (x, z, -y), as an exact permutation (no BLAS)."""
    v = np.asarray(v, dtype=np.float64)
    return np.stack([v[:, 0], v[:, 2], -v[:, 1]], axis=1)


def _to_z_up(v: np.ndarray) -> np.ndarray:
    """Inverse of _to_y_up: (x, y, z) -> (x, -z, y)."""
    v = np.asarray(v, dtype=np.float64)
    return np.stack([v[:, 0], -v[:, 2], v[:, 1]], axis=1)


def _unit_normals(m: trimesh.Trimesh) -> np.ndarray:
    """The part's stored vertex normals (build_head sets them), else portable angle-weighted ones.

    Never trimesh's own `vertex_normals` computation (arccos + np.dot, CPU-dependent).
    """
    if "vertex_normals" in m._cache:
        return pm.normalize(np.asarray(m.vertex_normals, dtype=np.float64))
    return pm.vertex_normals(m.vertices, m.faces)


def head_record(params: HeadParams, parts: dict[str, trimesh.Trimesh]) -> dict:
    """The JSON record stored in the GLB extras (and returned, with counts, by write_head_glb)."""
    return {
        "format": FORMAT,
        "units": "m",
        "up_axis": "+Z in the generator and in Blender; glTF file is +Y up",
        "front": "-Y (Blender); +Z (glTF)",
        "parts": [p for p in PART_ORDER if p in parts],
        "params": params.to_dict(),
        "materials": params.materials(),
        "landmarks": make_layout(params).landmarks(),
        "eye_uv": dict(E.EYE_UV),
    }


def _r(values) -> list[float]:
    return [round(float(v), 6) for v in values]


def material_extras(record: dict) -> dict[str, dict]:
    """``{glTF material name: extras}``: each part's role and shader parameters (plain float math only)."""
    p, mats, lm = record["params"], record["materials"], record["landmarks"]
    s = p["head_scale"]
    mouth = lm["mouth"]
    skin = {
        "albedo": mats["skin_albedo"], "lip_albedo": mats["lip_albedo"],
        "roughness": p["roughness"], "roughness_variation": p["roughness_variation"],
        "micro_detail": p["micro_detail"], "subsurface_weight": p["subsurface_weight"],
        "subsurface_radius_mm": p["subsurface_radius_mm"], "subsurface_radius_rgb_mm": mats["subsurface_radius_rgb_mm"],
        "scale": s, "seed": p["seed"], "blush": round(0.35 * min(1.0, p["haemoglobin"] / 0.02), 6),
        "regions": {
            "lips": {"centre": _r((mouth[0], mouth[1] - 0.004 * s, mouth[2] - 0.001 * s)),
                     "radii": _r((0.026 * s * p["mouth_width"], 0.02 * s, 0.0115 * s)), "inner": 0.55},
            "blush": [{"centre": _r((sx * 0.042 * s, -0.062 * s, -0.028 * s)),
                       "radii": _r((0.024 * s, 0.03 * s, 0.024 * s)), "inner": 0.2} for sx in (1.0, -1.0)],
        },
    }
    iris = {"color": mats["iris_albedo"], "seed": p["seed"], "coat": 0.0, "uv_bands": dict(record["eye_uv"])}
    # the scalp is skin under the hair: the skin's parameters plus the hair colour and how much grows
    scalp = dict(skin, hair_color=mats["hair_albedo"], hair_coverage=p["hair_coverage"])
    return {
        "skin": {"synthgen_role": "skin", "synthgen_material": skin},
        "iris": {"synthgen_role": "iris", "synthgen_material": iris},
        "cornea": {"synthgen_role": "cornea", "synthgen_material": {}},
        "scalp": {"synthgen_role": "scalp", "synthgen_material": scalp},
        "teeth": {"synthgen_role": "teeth", "synthgen_material": {"color": TEETH_COLOR}},
        "gums": {"synthgen_role": "gums", "synthgen_material": {"color": GUMS_COLOR}},
        "mouth": {"synthgen_role": "gums", "synthgen_material": {"color": MOUTH_COLOR}},
    }


def _material(name: str, mats: dict, params: HeadParams) -> PBRMaterial:
    """Preview-grade glTF materials; Blender rebuilds proper ones from the extras."""
    def rgba(rgb, a=1.0):
        return [float(c) for c in rgb] + [a]

    mat = PART_MATERIAL[name]
    if mat == "skin":
        return PBRMaterial(name="skin", baseColorFactor=rgba(mats["skin_albedo"]),
                           roughnessFactor=float(params.roughness), metallicFactor=0.0)
    if mat == "iris":
        return PBRMaterial(name="iris", baseColorFactor=rgba([0.8, 0.78, 0.74]),
                           roughnessFactor=0.3, metallicFactor=0.0)
    if mat == "cornea":
        return PBRMaterial(name="cornea", baseColorFactor=rgba([1.0, 1.0, 1.0], 0.05),
                           roughnessFactor=0.0, metallicFactor=0.0, alphaMode="BLEND")
    if mat == "scalp":
        # preview only: the skin darkened toward the hair by the coverage
        c = params.hair_coverage
        tint = [(1 - 0.6 * c) * a + 0.6 * c * h for a, h in zip(mats["skin_albedo"], mats["hair_albedo"])]
        return PBRMaterial(name="scalp", baseColorFactor=rgba(tint), roughnessFactor=float(params.roughness),
                           metallicFactor=0.0)
    colour = {"teeth": TEETH_COLOR, "gums": GUMS_COLOR, "mouth": MOUTH_COLOR}[mat]
    return PBRMaterial(name=mat, baseColorFactor=rgba(colour), roughnessFactor=0.3 if mat == "teeth" else 0.4,
                       metallicFactor=0.0)


def head_scene(params: HeadParams) -> tuple[trimesh.Scene, dict]:
    """Build the head and wrap it in a +Y-up trimesh Scene; returns (scene, record)."""
    parts = build_head(params)
    record = head_record(params, parts)
    mats = record["materials"]
    scene = trimesh.Scene()
    for name in record["parts"]:
        m = parts[name]
        normals = _to_y_up(_unit_normals(m))
        mesh = trimesh.Trimesh(_to_y_up(m.vertices), np.asarray(m.faces), process=False,
                               visual=trimesh.visual.TextureVisuals(uv=np.asarray(m.visual.uv),
                                                                    material=_material(name, mats, params)))
        mesh.vertex_normals = normals
        scene.add_geometry(mesh, geom_name=name, node_name=name)
    scene.metadata["synthgen_head"] = record
    return scene, record


def _add_node_extras(record: dict):
    extras_by_material = material_extras(record)

    def post(tree: dict) -> None:
        for mat in tree.get("materials", []):
            if mat.get("name") in extras_by_material:
                mat["extras"] = extras_by_material[mat["name"]]
        for node in tree.get("nodes", []):
            name = node.get("name")
            if name in record["parts"]:
                extras = {"synthgen_part": name}
                if name == "skin":
                    extras["synthgen_head"] = record
                node["extras"] = extras
    return post


def write_head_glb(params: HeadParams, path: str) -> dict:
    """Generate the head for `params` and write it to `path` (atomically); returns metadata."""
    params.validate()
    scene, record = head_scene(params)
    # unitize_normals=False: trimesh's unitize is an np.dot (BLAS); ours are unit already
    data = trimesh.exchange.gltf.export_glb(scene, include_normals=True, unitize_normals=False,
                                            tree_postprocessor=_add_node_extras(record))
    atomic.write_bytes(path, data)
    verts = _to_z_up(np.vstack([np.asarray(g.vertices) for g in scene.geometry.values()]))
    return {
        "vertices": int(sum(len(g.vertices) for g in scene.geometry.values())),
        "faces": int(sum(len(g.faces) for g in scene.geometry.values())),
        "bbox_min": [round(float(c), 6) for c in verts.min(axis=0)],
        "bbox_max": [round(float(c), 6) for c in verts.max(axis=0)],
        "parts": list(record["parts"]),
        "params": record["params"],
        "materials": record["materials"],
        "landmarks": record["landmarks"],
        "bytes": len(data),
    }


def read_head_record(path: str) -> dict:
    """The `synthgen_head` record of a GLB written by write_head_glb (no mesh parsing)."""
    with open(path, "rb") as f:
        header = f.read(20)
        if len(header) < 20 or header[:4] != b"glTF":
            raise ValueError(f"{path}: not a GLB file")
        json_len = int.from_bytes(header[12:16], "little")
        tree = json.loads(f.read(json_len))
    try:
        return tree["scenes"][tree.get("scene", 0)]["extras"]["synthgen_head"]
    except (KeyError, IndexError):
        raise ValueError(f"{path}: GLB has no synthgen_head extras") from None
