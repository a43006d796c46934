"""Units and axes of head files: the catalog's one convention and the checks on it.

**The convention** (docs/ARCHITECTURE.md, "Heads: units and axes"). In the
Blender scene a head is in metres, **+Z is up and the face looks toward -Y**
(Blender's front view looks at it). A file declares how its *stored*
coordinates (the numbers in the file, before any importer's conversion) map
onto that, with three catalog keys (sidecar ``<file>.asset.json`` or a
folder's ``_catalog.json``):

- ``units``: ``"m"``, ``"cm"``, ``"mm"`` or a positive number, metres per file unit;
- ``up_axis``: the stored axis that points up (``"+X"`` ... ``"-Z"``);
- ``forward_axis``: the stored axis the face looks along.

Without them each format keeps its own convention (:data:`FORMAT_DEFAULTS`):
glTF is metres, +Y up, face +Z by its specification, OBJ the same (what
Blender's importer and most DCC tools assume), PLY and ``.blend`` are +Z up,
face -Y (Blender's own frame), FBX follows its header (``UnitScaleFactor``
and axis settings, read by the Blender probe). The manifest records the
values in force for every head (``head.unit_scale``, ``head.up_axis``,
``head.forward_axis``), and the renderer imports the stored coordinates and
applies exactly these, so a declaration means the same for every format.

:func:`facing_problem` is the geometric check that the face looks the
declared way (the nose is a narrow tip, the back of the head a wide dome).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from assets_manifest.schema import AssetError

UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}
AXES = ("+X", "-X", "+Y", "-Y", "+Z", "-Z")
KEYS = ("units", "up_axis", "forward_axis")
# (up, forward) of each format's stored coordinates when nothing is declared; FBX: its header
FORMAT_DEFAULTS = {
    "glb": ("+Y", "+Z"),
    "gltf": ("+Y", "+Z"),
    "obj": ("+Y", "+Z"),
    "ply": ("+Z", "-Y"),
    "blend": ("+Z", "-Y"),
    "fbx": ("+Y", "+Z"),  # only when the header says nothing usable
}
SCENE_UP, SCENE_FORWARD = "+Z", "-Y"
HEAD_REGION_M = 0.25  # crown to chin; the renderer frames this much of a bust
FACING_RATIO = 2.0


def parse_units(value: Any, where: str) -> float:
    """Metres per file unit from a ``units`` value; a one-line error naming ``where`` and the key."""
    if isinstance(value, str) and value in UNITS:
        return UNITS[value]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value) and value > 0:
        return float(value)
    raise AssetError(f"{where}: units {value!r} is not m, cm, mm or a positive number (metres per file unit)")


def parse_axis(value: Any, key: str, where: str) -> str:
    if value not in AXES:
        raise AssetError(f"{where}: {key} {value!r} is not one of {', '.join(AXES)}")
    return value


def vector(axis: str) -> np.ndarray:
    v = np.zeros(3)
    v["XYZ".index(axis[1])] = 1.0 if axis[0] == "+" else -1.0
    return v


def check_pair(up: str, forward: str, where: str) -> None:
    if up[1] == forward[1]:
        what = "are the same axis" if up == forward else "are opposite (they must be perpendicular)"
        raise AssetError(f"{where}: up_axis {up} and forward_axis {forward} {what}")


def to_scene(up: str, forward: str) -> np.ndarray:
    """3x3 rotation taking stored coordinates to the scene's (up -> +Z, forward -> -Y); det +1."""
    u, f = vector(up), vector(forward)
    return np.stack([np.cross(-f, u), -f, u])


def check_values(sidecar: dict[str, Any], where: str) -> None:
    """Each of the keys present in one sidecar file is valid (their pairing is checked once merged)."""
    if "units" in sidecar:
        parse_units(sidecar["units"], where)
    for key in ("up_axis", "forward_axis"):
        if key in sidecar:
            parse_axis(sidecar[key], key, where)


def placement(declared: dict[str, Any], fmt: str, where: str,
              native: dict[str, Any] | None = None) -> dict[str, Any]:
    """The values in force: declared keys, else the file's own (``native``, from an FBX header), else the format's.

    Returns ``{"unit_scale", "up_axis", "forward_axis"}`` as the manifest records them."""
    native = native or {}
    up0, fwd0 = FORMAT_DEFAULTS.get(fmt, (SCENE_UP, SCENE_FORWARD))
    scale = parse_units(declared["units"], where) if "units" in declared else float(native.get("unit_scale", 1.0))
    up = parse_axis(declared["up_axis"], "up_axis", where) if "up_axis" in declared else native.get("up_axis", up0)
    fwd = (parse_axis(declared["forward_axis"], "forward_axis", where) if "forward_axis" in declared
           else native.get("forward_axis", fwd0))
    check_pair(up, fwd, where)
    return {"unit_scale": scale, "up_axis": up, "forward_axis": fwd}


def from_row(head: dict[str, Any], fmt: str, where: str) -> dict[str, Any] | None:
    """The manifest's recorded values, checked; None for a manifest written before they existed."""
    if not head or head.get("unit_scale") is None:
        return None
    return placement({"units": head["unit_scale"], "up_axis": head.get("up_axis"),
                      "forward_axis": head.get("forward_axis")}, fmt, where)


def facing_problem(points: np.ndarray, place: dict[str, Any], where: str) -> str | None:
    """A one-line problem when the face does not look along ``forward_axis``, else None.

    ``points`` are stored coordinates. In the scene frame, within the top
    ``HEAD_REGION_M`` of the asset, the frontmost cap (points within 6% of
    the region of the extreme along -Y) is the nose: a small tip. The
    rearmost cap is the back of the skull: a wide dome. A front cap more than
    ``FACING_RATIO`` times the back's means the face looks the other way
    (procedural heads: about 0.1; turned 180 degrees: about 10; a sphere: 1).
    Sideways or lying heads are not detected reliably.
    """
    if points is None or len(points) < 50:
        return None
    p = np.asarray(points, dtype=np.float64) @ to_scene(place["up_axis"], place["forward_axis"]).T
    p = p * place["unit_scale"]
    top = p[:, 2].max()
    region = min(top - p[:, 2].min(), HEAD_REGION_M)
    if region <= 0:
        return None
    head = p[p[:, 2] >= top - region]
    depth = 0.06 * region

    def cap(sign: float) -> float:
        s = sign * head[:, 1]
        c = head[s >= s.max() - depth]
        return float(np.ptp(c[:, 0]) * np.ptp(c[:, 2]))

    front, back = cap(-1.0), cap(1.0)
    if front > FACING_RATIO * back:
        return (f"{where}: the face does not look along forward_axis {place['forward_axis']} "
                f"(up_axis {place['up_axis']}): its front is blunt and its back pointed "
                f"({front * 1e4:.0f} vs {back * 1e4:.0f} cm2 end caps); declare up_axis/forward_axis in a sidecar")
    return None
