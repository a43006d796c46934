"""Heads from the ICT-FaceKit morphable model: read ``FaceXModel/``, sample identities, write a catalog.

ICT-FaceKit (https://github.com/ICT-VGL/ICT-FaceKit, MIT licence) ships a
generic neutral mesh, 100 PCA identity shapes (``identityNNN.obj``) and 53
ARKit-named expression shapes (``eyeBlink_L.obj``, ``jawOpen.obj``, ...),
each stored as *neutral + one mode* on the same topology, plus one MTL
(``ICTFaceModelMaterial.mtl``: ``M_Face``, ``M_BackHead``, ``M_Teeth``, ...).
Its own sampler (``Scripts/ict_face_model.py``) draws identity weights from
a standard normal and adds ``weight * (shape - neutral)`` to the neutral,
identities first, then expressions; the model is in centimetres, +Y up, the
face looking toward +Z (the nose tip is the largest z, the eyes and teeth
are above and below y = 0 as expected).

Per head ``i`` of a run with seed ``s`` (``default_rng(SeedSequence([s, i]))``,
so any head can be made alone): identity weights ~ N(0, sigma^2) over every
identity mode found, a sparse expression mix (:func:`sample_expression`),
and a skin appearance from the procedural heads' sampler (Fitzpatrick I-VI).
Weights are rounded to 6 decimals before blending, so the recorded weights
reproduce the mesh exactly. The blend is a fixed-order sum of elementwise
float64 products (no BLAS, no SIMD transcendentals: see
:mod:`assets_manifest.portable_math`), so the written bytes do not
depend on the machine.

Each head is written as OBJ (the neutral file's text with its ``v`` lines
replaced, in metres, keeping every part, UV, face and ``usemtl`` group and
the ICT licence header) with a copy of the MTL and a sidecar
``<file>.asset.json`` (licence, source, units, axes, material roles). The
catalog is built in a temporary folder beside ``out_dir`` and renamed into
place at the end, so an error or Ctrl-C leaves nothing half-written.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from assets_manifest import hair, material_roles, splits
from assets_manifest.schema import AssetError, write_manifest
from synthgen.format import atomic

GENERATOR = "ict-facekit"
GENERATOR_VERSION = 1
LICENSE = "MIT"
SOURCE_URL = "https://github.com/ICT-VGL/ICT-FaceKit"
MODEL_DIR = "FaceXModel"
NEUTRAL = "generic_neutral_mesh.obj"
DEFAULT_MTL = "ICTFaceModelMaterial.mtl"
VERTEX_INDICES = "vertex_indices.json"
SOURCE_SCALE_TO_M = 100.0  # the model is in centimetres: metres = cm / 100 (a division rounds exactly once)
UP_AXIS, FORWARD_AXIS = "+Y", "+Z"  # as stored (checked against the data: eyes at +y, nose tip at max z)
WEIGHT_DECIMALS = 6
_IDENTITY_RE = re.compile(r"^identity(\d+)\.obj$")

# ICT material -> role: the catalog's ICT-FaceKit preset, plus what this importer changes
MATERIAL_ROLES = {
    **material_roles.ICT_FACEKIT,  # M_BackHead (head, neck, mouth and eye sockets) is the scalp part for hair
    "M_CorneaLeft": "cornea",      # written by us: the sclera shell's faces in front of the iris (see eye_split)
    "M_CorneaRight": "cornea",
    # ICT's lashes are broad cards meant for an alpha texture the kit does not ship; shaded without one
    # they draw a grey band under each eye, so they are hidden until strand lashes (the hair issue) exist
    "M_EyeLashes": "hidden",
}
SCALP_MATERIALS = ("M_BackHead",)
# (sclera shell, iris, cornea group we split off the shell) per eye. ICT's eyeball is an outer shell
# (M_Sclera*) over the whole eye, cornea bulge included, with the iris disk inside it; its own renderer
# makes the shell transparent over the iris with a texture. We move those shell faces to a cornea group.
EYES = (("M_ScleraLeft", "M_IrisLeft", "M_CorneaLeft"), ("M_ScleraRight", "M_IrisRight", "M_CorneaRight"))
IRIS_DISK_DEPTH = 0.1   # iris vertices within this fraction of the eye radius of the iris' front: its disk
CORNEA_MARGIN = 1.1     # shell faces within this times the iris radius of the eye axis are cornea
CORNEA_MTL = "newmtl {name}\nillum 4\nKd 1.00 1.00 1.00\nKa 0.00 0.00 0.00\nTf 1.00 1.00 1.00\nd 0.10\nNi 1.376\nKs 1.00 1.00 1.00\nNs 500.00\n"
# The ICT topology's "Head and Neck" part (README table: vertices [9409:11247]); only for the full topology.
ICT_VERTICES = 26719
ICT_SCALP_VERTEX_RANGE = (9409, 11248)

# Pairs of expression shapes that pull against each other; a sampled mix never has both.
OPPOSING = (
    ("jawLeft", "jawRight"), ("mouthLeft", "mouthRight"), ("jawOpen", "mouthClose"),
    ("eyeBlink_L", "eyeWide_L"), ("eyeBlink_R", "eyeWide_R"),
    ("eyeSquint_L", "eyeWide_L"), ("eyeSquint_R", "eyeWide_R"),
    ("mouthSmile_L", "mouthFrown_L"), ("mouthSmile_R", "mouthFrown_R"),
    ("mouthSmile_L", "mouthPucker"), ("mouthSmile_R", "mouthPucker"),
    ("browDown_L", "browInnerUp_L"), ("browDown_R", "browInnerUp_R"),
    ("browDown_L", "browOuterUp_L"), ("browDown_R", "browOuterUp_R"),
    ("eyeLookIn_L", "eyeLookOut_L"), ("eyeLookIn_R", "eyeLookOut_R"),
    ("eyeLookUp_L", "eyeLookDown_L"), ("eyeLookUp_R", "eyeLookDown_R"),
)


@dataclass
class FaceKit:
    """The model as read from a ``FaceXModel`` folder (vertices in the file's centimetres)."""
    folder: str
    neutral: np.ndarray                 # (N, 3) float64
    lines: list[str]                    # the neutral OBJ's lines, without line ends
    v_lines: np.ndarray                 # indices of its ``v`` lines, in vertex order
    mtl_path: str
    materials: list[str]                # ``usemtl`` names in file order
    identity_names: list[str]
    identity_deltas: list[np.ndarray]   # shape - neutral, (N, 3) each
    expression_names: list[str]
    expression_deltas: list[np.ndarray]
    commit: str | None = None
    cornea_faces: dict[str, list[int]] | None = None  # sclera material -> its ``f`` line indices that are cornea
    eyes: dict[str, dict] | None = None               # cornea material -> measured eye geometry (cm, UV)

    @property
    def vertices(self) -> int:
        return len(self.neutral)


def model_dir(path: str) -> str:
    """``path`` itself when it holds the neutral mesh, else ``path/FaceXModel`` (a clone's root)."""
    if not os.path.exists(path):
        raise AssetError(f"{path}: does not exist (give a clone of {SOURCE_URL} or its {MODEL_DIR} folder)")
    if not os.path.isdir(path):
        raise AssetError(f"{path}: not a folder (give a clone of {SOURCE_URL} or its {MODEL_DIR} folder)")
    sub = os.path.join(path, MODEL_DIR)
    if not os.path.exists(os.path.join(path, NEUTRAL)) and os.path.isdir(sub):
        return sub
    return path


def _git_commit(folder: str) -> str | None:
    """The commit checked out in the clone holding ``folder`` (read from .git, no git needed), if any."""
    d = os.path.abspath(folder)
    for _ in range(3):
        git = os.path.join(d, ".git")
        head = os.path.join(git, "HEAD")
        if os.path.isfile(head):
            try:
                ref = open(head).read().strip()
                if not ref.startswith("ref: "):
                    return ref if re.fullmatch(r"[0-9a-f]{40}", ref) else None
                name = ref[5:]
                loose = os.path.join(git, name)
                if os.path.isfile(loose):
                    return open(loose).read().strip()
                packed = os.path.join(git, "packed-refs")
                if os.path.isfile(packed):
                    for line in open(packed):
                        parts = line.split()
                        if len(parts) == 2 and parts[1] == name:
                            return parts[0]
            except OSError:
                return None
            return None
        d = os.path.dirname(d)
    return None


def _read_vertices(path: str) -> np.ndarray:
    """The ``v`` lines of an OBJ as an (N, 3) float64 array (extra w/colour columns are ignored)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise AssetError(f"{path}: unreadable ({e.strerror})") from None
    rows = [line.split()[1:4] for line in data.splitlines() if line.startswith(b"v ")]
    if not rows:
        raise AssetError(f"{path}: no vertices (not an OBJ mesh?)")
    try:
        v = np.array(rows, dtype=np.float64)
    except ValueError:
        raise AssetError(f"{path}: a vertex line is not three numbers") from None
    if v.ndim != 2 or v.shape[1] != 3 or not np.isfinite(v).all():
        raise AssetError(f"{path}: a vertex line is not three finite numbers")
    return v


def _expression_order(folder: str, found: set[str]) -> list[str]:
    """Expression names: vertex_indices.json's order for those present, then the other OBJs by name."""
    listed: list[str] = []
    config = os.path.join(folder, VERTEX_INDICES)
    if os.path.exists(config):
        try:
            with open(config) as f:
                listed = [str(n) for n in json.load(f).get("expressions", [])]
        except (OSError, ValueError, AttributeError) as e:
            raise AssetError(f"{config}: unreadable ({e})") from None
    ordered = [n for n in listed if n in found]
    return ordered + sorted(found - set(ordered))


def load(path: str) -> FaceKit:
    """Read the model; every problem is an AssetError naming the file (nothing is written)."""
    folder = model_dir(path)
    neutral_path = os.path.join(folder, NEUTRAL)
    objs = sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, "*.obj")))
    if not objs:
        raise AssetError(f"{folder}: no ICT-FaceKit OBJ files (expected {MODEL_DIR}/{NEUTRAL}, identityNNN.obj, ...)")
    if NEUTRAL not in objs:
        raise AssetError(f"{neutral_path}: missing (the generic neutral mesh every shape is relative to)")
    try:
        with open(neutral_path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise AssetError(f"{neutral_path}: unreadable ({e.strerror})") from None
    neutral = _read_vertices(neutral_path)
    v_lines = np.array([i for i, line in enumerate(lines) if line.startswith("v ")])
    mtllibs = [line.split(None, 1)[1].strip() for line in lines if line.startswith("mtllib ") and line.split(None, 1)[1:]]
    materials = [line.split()[1] for line in lines if line.startswith("usemtl ") and len(line.split()) > 1]
    mtl_path = os.path.join(folder, mtllibs[0] if mtllibs else DEFAULT_MTL)
    if not os.path.isfile(mtl_path):
        raise AssetError(f"{mtl_path}: missing (the material library {NEUTRAL} uses)")
    with open(mtl_path, errors="replace") as f:
        defined = {line.split()[1] for line in f if line.startswith("newmtl ") and len(line.split()) > 1}
    undefined = [m for m in materials if m not in defined]
    if undefined:
        raise AssetError(f"{mtl_path}: does not define material {undefined[0]} that {NEUTRAL} uses")

    def deltas(names: list[str]) -> list[np.ndarray]:
        out = []
        for name in names:
            p = os.path.join(folder, name + ".obj")
            v = _read_vertices(p)
            if v.shape != neutral.shape:
                raise AssetError(f"{p}: {len(v)} vertices, but {NEUTRAL} has {len(neutral)} (not the same topology)")
            out.append(v - neutral)
        return out

    identities = sorted((int(m.group(1)), o[:-4]) for o in objs if (m := _IDENTITY_RE.match(o)))
    identity_names = [name for _, name in identities]
    if not identity_names:
        raise AssetError(f"{folder}: no identity shapes (identity000.obj, identity001.obj, ...)")
    expression_names = _expression_order(folder, {o[:-4] for o in objs if o != NEUTRAL and not _IDENTITY_RE.match(o)})
    kit = FaceKit(folder=folder, neutral=neutral, lines=lines, v_lines=v_lines, mtl_path=mtl_path,
                  materials=materials, identity_names=identity_names, identity_deltas=deltas(identity_names),
                  expression_names=expression_names, expression_deltas=deltas(expression_names),
                  commit=_git_commit(folder))
    kit.cornea_faces, kit.eyes = eye_split(kit)
    return kit


def _groups(lines: list[str]) -> dict[str, list[tuple[int, list[int], list[int]]]]:
    """material -> [(line index, vertex indices, uv indices or []), ...] of its ``f`` lines (0-based)."""
    out: dict[str, list] = {}
    cur = None
    for i, line in enumerate(lines):
        if line.startswith("usemtl "):
            parts = line.split()
            cur = parts[1] if len(parts) > 1 else None
        elif line.startswith("f ") and cur is not None:
            corners = [c.split("/") for c in line.split()[1:]]
            vi = [int(c[0]) - 1 for c in corners]
            ti = [int(c[1]) - 1 for c in corners if len(c) > 1 and c[1]]
            out.setdefault(cur, []).append((i, vi, ti if len(ti) == len(vi) else []))
    return out


def eye_split(kit: FaceKit) -> tuple[dict[str, list[int]], dict[str, dict]]:
    """The sclera shell's faces in front of each iris (on the neutral), and each eye's measured geometry.

    Per eye: the eye's centre is the shell's bounding-box centre, its axis points to the shell's most
    forward (+Z) vertex (the cornea apex; the neutral looks ahead); the iris disk is the iris vertices
    within ``IRIS_DISK_DEPTH`` eye radii of the iris' front along the axis, its radius their largest
    distance from the axis. Shell faces whose centroid is within ``CORNEA_MARGIN`` iris radii of the
    axis and in front of the disk's back are the cornea. Elementwise arithmetic only (no BLAS), on the
    neutral, so the split is the same for every head and machine and follows the eye as it moves.
    """
    from assets_manifest import portable_math as pm

    groups = _groups(kit.lines)
    faces: dict[str, list[int]] = {}
    eyes: dict[str, dict] = {}
    vt = None
    for sclera, iris, cornea in EYES:
        if sclera not in groups or iris not in groups:
            continue
        shell_v = sorted({v for _, vi, _ in groups[sclera] for v in vi})
        iris_v = sorted({v for _, vi, _ in groups[iris] for v in vi})
        s = kit.neutral[shell_v]
        centre = (s.min(axis=0) + s.max(axis=0)) / 2.0
        apex = s[int(np.argmax(s[:, 2]))]
        axis = pm.normalize(apex - centre)
        radius = float(pm.length(apex - centre))
        if radius <= 0:
            continue
        d = kit.neutral[iris_v] - centre
        along = pm.dot3(d, axis)
        perp = pm.length(d - along[:, None] * axis)
        disk = along >= along.max() - IRIS_DISK_DEPTH * radius
        iris_r = float(perp[disk].max())
        back = float(along[disk].min())
        chosen = []
        for line, vi, _ in groups[sclera]:
            c = kit.neutral[vi].sum(axis=0) / len(vi)  # a few corners: a fixed-order sum
            a = float(pm.dot3(c - centre, axis))
            p = float(pm.length((c - centre) - a * axis))
            if a > back and p < CORNEA_MARGIN * iris_r:
                chosen.append(line)
        if not chosen or len(chosen) == len(groups[sclera]):
            continue
        faces[sclera] = chosen
        eye = {"iris_radius_m": round(iris_r / SOURCE_SCALE_TO_M, 6), "eye_radius_m": round(radius / SOURCE_SCALE_TO_M, 6)}
        # the iris' UVs: a centred disk in ICT (pupil at its centre), measured from the disk's vertices
        uvs = {v: t for _, vi, ti in groups[iris] if ti for v, t in zip(vi, ti)}
        if vt is None:
            vt = np.array([[float(x) for x in line.split()[1:3]] for line in kit.lines if line.startswith("vt ")]
                          or np.zeros((0, 2)), dtype=np.float64).reshape(-1, 2)
        disk_v = [v for v, k in zip(iris_v, disk) if k]
        if disk_v and all(v in uvs and uvs[v] < len(vt) for v in disk_v):
            uv = vt[[uvs[v] for v in disk_v]]
            centre_uv = (uv.min(axis=0) + uv.max(axis=0)) / 2.0
            r_uv = np.sqrt((uv[:, 0] - centre_uv[0]) ** 2 + (uv[:, 1] - centre_uv[1]) ** 2)
            eye["iris_uv_centre"] = [round(float(x), 4) for x in centre_uv]
            eye["iris_uv_radius"] = round(float(r_uv.max()), 4)
        eyes[cornea] = eye
    return faces, eyes


def output_materials(kit: FaceKit) -> list[str]:
    """The written OBJ's materials: the model's, each split sclera followed by its cornea."""
    out = []
    split = {s: c for s, _, c in EYES if s in (kit.cornea_faces or {})}
    for m in dict.fromkeys(kit.materials):
        out.append(m)
        if m in split:
            out.append(split[m])
    return out


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def sample_expression(rng: np.random.Generator) -> dict[str, float]:
    """A sparse, plausible ARKit expression mix: eyes, mouth, brows and gaze each pick one state.

    Eyes: open (most), a blink or half-closed lids, a wink, a squint or wide eyes; mouth: neutral,
    a smile, jaw open, an open smile, a frown or a pucker; brows: rest, raised or lowered; a small
    gaze shift sometimes. One state per region, so opposing shapes (:data:`OPPOSING`) never mix.
    """
    w: dict[str, float] = {}
    both = lambda a, b, x: w.update({a: x + _u(rng, -0.05, 0.05), b: x + _u(rng, -0.05, 0.05)})  # noqa: E731
    eyes = rng.choice(["open", "blink", "wink", "squint", "wide"], p=[0.58, 0.16, 0.06, 0.1, 0.1])
    if eyes == "blink":
        both("eyeBlink_L", "eyeBlink_R", _u(rng, 0.3, 0.95))
    elif eyes == "wink":
        w["eyeBlink_L" if rng.uniform() < 0.5 else "eyeBlink_R"] = _u(rng, 0.75, 1.0)
    elif eyes == "squint":
        both("eyeSquint_L", "eyeSquint_R", _u(rng, 0.2, 0.7))
    elif eyes == "wide":
        both("eyeWide_L", "eyeWide_R", _u(rng, 0.2, 0.7))
    mouth = rng.choice(["neutral", "smile", "jaw_open", "open_smile", "frown", "pucker"],
                       p=[0.32, 0.26, 0.14, 0.16, 0.06, 0.06])
    if mouth in ("smile", "open_smile"):
        s = _u(rng, 0.25, 0.95)
        both("mouthSmile_L", "mouthSmile_R", s)
        if s > 0.6:
            both("cheekSquint_L", "cheekSquint_R", 0.4 * s)
    if mouth in ("jaw_open", "open_smile"):
        w["jawOpen"] = _u(rng, 0.1, 0.6) if mouth == "jaw_open" else _u(rng, 0.1, 0.4)
    elif mouth == "frown":
        both("mouthFrown_L", "mouthFrown_R", _u(rng, 0.2, 0.7))
    elif mouth == "pucker":
        w["mouthPucker"] = _u(rng, 0.2, 0.7)
    brows = rng.choice(["rest", "raised", "lowered"], p=[0.7, 0.15, 0.15])
    if brows == "raised":
        both("browInnerUp_L", "browInnerUp_R", _u(rng, 0.2, 0.7))
    elif brows == "lowered":
        both("browDown_L", "browDown_R", _u(rng, 0.2, 0.6))
    if rng.uniform() < 0.3:
        h = _u(rng, -0.35, 0.35)  # + toward the subject's left: the left eye looks out, the right eye in
        w.update({"eyeLookOut_L": h, "eyeLookIn_R": h} if h > 0 else {"eyeLookIn_L": -h, "eyeLookOut_R": -h})
        v = _u(rng, -0.3, 0.3)
        w.update({"eyeLookUp_L": v, "eyeLookUp_R": v} if v > 0 else {"eyeLookDown_L": -v, "eyeLookDown_R": -v})
    return {k: round(min(max(x, 0.0), 1.0), WEIGHT_DECIMALS) for k, x in sorted(w.items()) if x > 0}


def opposing_pairs(weights: dict[str, float]) -> list[tuple[str, str]]:
    """The pairs of :data:`OPPOSING` that are both non-zero in ``weights``."""
    return [(a, b) for a, b in OPPOSING if weights.get(a, 0.0) > 0 and weights.get(b, 0.0) > 0]


def sample_appearance(rng: np.random.Generator) -> dict[str, Any]:
    """Skin, iris and hair-colour appearance from the procedural heads' sampler, in its format.

    The dict holds ``params_version``, ``seed`` and the procedural heads' appearance parameters
    (:data:`assets_manifest.heads.params.APPEARANCE_PARAMS`: melanin, haemoglobin, roughness, ...),
    so ``HeadParams.from_dict(appearance)`` reads it; Fitzpatrick types I-VI are equally likely.
    """
    from assets_manifest.heads.params import APPEARANCE_PARAMS, sample_head_params

    seed = int(rng.integers(0, 2**31 - 1))
    p = sample_head_params(seed).to_dict()
    return {"params_version": p["params_version"], "seed": seed, **{k: p[k] for k in APPEARANCE_PARAMS}}


@dataclass
class HeadSample:
    identity: dict[str, float]
    expression: dict[str, float]
    appearance: dict[str, Any]


def sample_head(kit: FaceKit, seed: int, index: int, identity_sigma: float = 1.0) -> HeadSample:
    """Head ``index`` of a run with ``seed``: its own ``SeedSequence([seed, index])``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    z = rng.standard_normal(len(kit.identity_names))
    identity = {n: round(float(identity_sigma * x), WEIGHT_DECIMALS) for n, x in zip(kit.identity_names, z)}
    available = set(kit.expression_names)
    expression = {k: x for k, x in sample_expression(rng).items() if k in available}
    return HeadSample(identity=identity, expression=expression, appearance=sample_appearance(rng))


def blend(kit: FaceKit, sample: HeadSample) -> np.ndarray:
    """Vertices in metres: (neutral + sum w_i * identity_i + sum w_j * expression_j) / 100.

    A fixed-order sum of elementwise products: IEEE-exact per element, no BLAS reduction."""
    v = kit.neutral.copy()
    for name, d in zip(kit.identity_names, kit.identity_deltas):
        w = sample.identity.get(name, 0.0)
        if w:
            v = v + w * d
    for name, d in zip(kit.expression_names, kit.expression_deltas):
        w = sample.expression.get(name, 0.0)
        if w:
            v = v + w * d
    return v / SOURCE_SCALE_TO_M


def obj_text(kit: FaceKit, vertices_m: np.ndarray, mtl_name: str) -> str:
    """The neutral OBJ with its vertices replaced (metres, 7 decimals: 0.1 um) and its mtllib renamed."""
    lines = list(kit.lines)
    for i, (x, y, z) in zip(kit.v_lines, vertices_m.tolist()):
        lines[i] = f"v {x:.7f} {y:.7f} {z:.7f}"
    lines = _split_cornea(kit, lines)
    out = [f"mtllib {mtl_name}" if line.startswith("mtllib ") else line for line in lines]
    if not any(line.startswith("mtllib ") for line in lines):
        out.insert(0, f"mtllib {mtl_name}")
    return "\n".join(out) + "\n"


def _split_cornea(kit: FaceKit, lines: list[str]) -> list[str]:
    """Each split sclera group's cornea faces moved into ``usemtl <cornea>`` right after the group."""
    moved = {i: c for s, _, c in EYES for i in (kit.cornea_faces or {}).get(s, ())}
    if not moved:
        return lines
    out: list[str] = []
    pending: dict[str, list[str]] = {}

    def flush():
        for name, fl in pending.items():
            out.append(f"usemtl {name}")
            out.extend(fl)
        pending.clear()

    for i, line in enumerate(lines):
        if line.startswith("usemtl "):
            flush()
        if i in moved:
            pending.setdefault(moved[i], []).append(line)
        else:
            out.append(line)
    flush()
    return out


def mtl_bytes(kit: FaceKit) -> bytes:
    """The model's MTL, plus a clear, glossy entry for each cornea group we write."""
    with open(kit.mtl_path, "rb") as f:
        data = f.read()
    extra = "".join(CORNEA_MTL.format(name=c) for s, _, c in EYES if s in (kit.cornea_faces or {}))
    if extra and not data.endswith(b"\n"):
        data += b"\n"
    return data + extra.encode()


def source_text(kit: FaceKit) -> str:
    return f"{SOURCE_URL}" + (f" @ {kit.commit}" if kit.commit else "") + " (ICT Face Model Light, FaceXModel)"


def sidecar(kit: FaceKit) -> dict[str, Any]:
    """The per-file ``<file>.asset.json``: licence, source, units, axes and material roles."""
    return {"license": LICENSE, "source": source_text(kit), "units": "m", "up_axis": UP_AXIS,
            "forward_axis": FORWARD_AXIS,
            "material_roles": {m: MATERIAL_ROLES[m] for m in output_materials(kit) if m in MATERIAL_ROLES}}


def generator_params(kit: FaceKit, sample: HeadSample, seed: int, index: int, identity_sigma: float) -> dict:
    """What ``head.generator_params`` records (and each sample's json carries)."""
    from assets_manifest.heads.appearance import fitzpatrick_type

    params: dict[str, Any] = {
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed), "head_index": int(index), "seed_sequence": [int(seed), int(index)],
        "identity_sigma": float(identity_sigma),
        "identity_modes": len(kit.identity_names),
        "identity_weights": sample.identity,
        "expression_weights": sample.expression,
        "appearance": sample.appearance,
        "fitzpatrick_type": fitzpatrick_type(sample.appearance["melanin"]),
        "scalp_materials": [m for m in SCALP_MATERIALS if m in kit.materials],
        "source_units": "cm",
        "eyes": kit.eyes or {},
        "source_commit": kit.commit,
    }
    app = sample.appearance
    # hair from the catalog seed and head index, in the sampled appearance's hair colour (full coverage:
    # the scalp is the back-of-head part); masculinity as the appearance sampler drew it
    params["hair"] = hair.draw_hair(hair.derive_seed(seed, index), melanin=app.get("hair_melanin"),
                                    redness=app.get("hair_redness"),
                                    masculinity=hair.procedural_masculinity(app["seed"]))
    if kit.vertices == ICT_VERTICES:
        params["scalp_vertex_range"] = list(ICT_SCALP_VERTEX_RANGE)
    return params


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def write_head(kit: FaceKit, folder: str, name: str, sample: HeadSample) -> str:
    """``folder/name.obj`` + ``name.mtl`` + ``name.obj.asset.json``; returns the OBJ's path."""
    obj = os.path.join(folder, name + ".obj")
    atomic.write_bytes(os.path.join(folder, name + ".mtl"), mtl_bytes(kit), durable_dir=False)
    atomic.write_text(obj, obj_text(kit, blend(kit, sample), name + ".mtl"), durable_dir=False)
    atomic.write_text(obj + ".asset.json", json.dumps(sidecar(kit), indent=1, sort_keys=True) + "\n",
                      durable_dir=False)
    return obj


def _check_out(out_dir: str, overwrite: bool) -> None:
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise AssetError(f"{out_dir}: exists and is not a folder")
        if os.listdir(out_dir):
            if not overwrite:
                raise AssetError(f"{out_dir}: exists and is not empty (pass --overwrite to replace a catalog)")
            if not os.path.exists(os.path.join(out_dir, "manifest.parquet")):
                raise AssetError(f"{out_dir}: not a catalog (no manifest.parquet); refusing to replace it")


def build(path: str, out_dir: str, heads: int, seed: int = 0, identity_sigma: float = 1.0,
          fractions=splits.DEFAULT_FRACTIONS, progress: bool = True, overwrite: bool = False) -> str:
    """Write ``heads`` sampled heads and ``manifest.parquet`` as the catalog ``out_dir``; return the manifest.

    The model is read and checked first; the catalog is written into a temporary folder beside
    ``out_dir`` and renamed into place at the end (``synthgen.format.atomic.atomic_dir``)."""
    from assets_manifest import scan

    if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1:
        raise ValueError(f"--heads {heads!r} must be a positive integer")
    if not (math.isfinite(identity_sigma) and identity_sigma >= 0):
        raise ValueError(f"--identity-sigma {identity_sigma!r} must be a finite number >= 0")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"--seed {seed!r} must be a non-negative integer")
    fractions = splits.parse_fractions(fractions)
    _check_out(out_dir, overwrite)
    kit = load(path)
    with atomic.atomic_dir(out_dir) as tmp:
        manifest = os.path.join(tmp, "manifest.parquet")
        heads_dir = os.path.join(tmp, "heads")
        os.makedirs(heads_dir)
        params = {}
        for i in tqdm(range(heads), desc="ICT-FaceKit heads", unit="head", disable=not progress):
            sample = sample_head(kit, seed, i, identity_sigma)
            name = f"ict_{seed}_{i:04d}"
            write_head(kit, heads_dir, name, sample)
            params[name] = _json(generator_params(kit, sample, seed, i, identity_sigma))
        result = scan.scan(tmp, manifest, progress=False)
        if result.problems:  # a head failing the catalog's own checks is a bug or a broken model
            raise AssetError(result.problems[0])
        for row in result.rows:
            row["head"]["generator"] = GENERATOR
            row["head"]["generator_params"] = params[row["name"]]
        assigned = splits.rank_splits([r["asset_id"] for r in result.rows], fractions)
        for row in result.rows:
            row["split"] = assigned[row["asset_id"]]
        write_manifest(result.rows, manifest)
    return os.path.join(out_dir, "manifest.parquet")
