"""UV layouts for the generated parts, and the seam splitting they need.

A closed surface cannot carry one continuous UV per vertex, so vertices on
a seam are duplicated (same position, different UV). `weld` undoes that for
topology checks: a part is watertight when its welded copy is.
"""

from __future__ import annotations

import numpy as np
import trimesh

from .. import portable_math as pm


def split_seams(verts: np.ndarray, faces: np.ndarray, corner_uv: np.ndarray):
    """Give every distinct (vertex, uv) pair its own vertex.

    corner_uv: (F, 3, 2) UV per face corner. Returns (verts, faces, uv, src)
    where src maps each new vertex to its input vertex; vertex order is by
    first occurrence in face order, so output bytes depend only on the input.
    """
    key_v = faces.reshape(-1)
    key_uv = np.round(corner_uv.reshape(-1, 2), 7)
    keys = np.concatenate([key_v[:, None].astype(np.float64), key_uv], axis=1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    # renumber by first occurrence to keep the original ordering
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    new_faces = rank[inverse].reshape(-1, 3)
    src = key_v[first[order]]
    return verts[src], new_faces.astype(np.int64), key_uv[first[order]], src


def cylindrical_uv(verts: np.ndarray, faces: np.ndarray, z_range: tuple[float, float]):
    """u around the vertical axis (0.5 = facing -Y, seam at the back), v = height.

    Returns per-corner UVs (F, 3, 2); faces across the seam get u > 1 on
    their wrapped corners instead of spanning the whole texture.
    """
    x, y, z = verts[:, 0], verts[:, 1], verts[:, 2]
    u = 0.5 + pm.arctan2(x, -y) / (2 * np.pi)     # not np.arctan2: SIMD paths differ per CPU
    v = np.clip((z - z_range[0]) / (z_range[1] - z_range[0]), 0.0, 1.0)
    cu = u[faces]
    wrap = (cu.max(axis=1) - cu.min(axis=1)) > 0.5
    cu[wrap] = np.where(cu[wrap] < 0.5, cu[wrap] + 1.0, cu[wrap])
    return np.stack([cu, v[faces]], axis=-1)


def textured(verts: np.ndarray, faces: np.ndarray, corner_uv: np.ndarray,
             normals: np.ndarray | None = None) -> trimesh.Trimesh:
    """Mesh with seams split for corner_uv; `normals` (per input vertex) are carried over."""
    v, f, uv, src = split_seams(verts, faces, corner_uv)
    mesh = trimesh.Trimesh(v, f, process=False, visual=trimesh.visual.TextureVisuals(uv=uv))
    if normals is not None:
        mesh.vertex_normals = normals[src]
    return mesh


def weld(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Geometry-only copy with seam duplicates merged (for watertightness checks)."""
    return trimesh.Trimesh(np.asarray(mesh.vertices), np.asarray(mesh.faces), process=True)


def seamless_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Vertex normals computed as if seam duplicates were one vertex (no shading seam)."""
    _, first, inverse = np.unique(np.round(verts, 9), axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    # trimesh's vertex_normals uses arccos and np.dot (BLAS); same weighting, portable math
    return pm.vertex_normals(verts[first], inverse[faces])[inverse]
