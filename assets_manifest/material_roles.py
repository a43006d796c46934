"""Material roles: which part of a head each material slot is (skin, eye, teeth, ...).

The renderer gives every role its own Cycles shader (``synthgen.render.role_materials``),
so an imported head renders with skin, wet eyes and teeth instead of its
exporter's flat materials. A slot's role comes, in order of precedence, from

1. the sidecar key ``material_roles`` (per-file ``<file>.asset.json`` over the
   folder ``_catalog.json``): a JSON object mapping a material name, or an
   fnmatch glob (``"*Lash*"``), to a role; exact names beat globs;
2. the asset itself: a glTF material's ``extras.synthgen_role`` (the procedural
   heads declare theirs this way);
3. the built-in presets below, matched case-insensitively on the material name:
   ICT-FaceKit's names exactly, then MakeHuman/MPFB and common artist names;
4. otherwise the slot has no role and keeps the asset's own material.

Pure Python, no bpy: ``scan`` records the result in the manifest's
``head.material_roles`` and the renderer reuses :func:`resolve` when it has no
manifest row (a bare GLB in a preview).
"""

from __future__ import annotations

import fnmatch
from typing import Any, Iterable, Mapping

from assets_manifest.schema import AssetError

# "scalp": the skin where strand hair grows (issue 15); shaded as skin tinted toward the hair colour
ROLES = ("skin", "lips", "sclera", "iris", "cornea", "teeth", "gums", "eyelashes", "eyebrows", "hair",
         "eye_occlusion", "tear_film", "hidden", "scalp")

# ICT-FaceKit (FaceXModel/ICTFaceModelMaterial.mtl), exact names
ICT_FACEKIT = {
    "M_Face": "skin",
    "M_BackHead": "skin",
    "M_GumsTongue": "gums",
    "M_Teeth": "teeth",
    "M_ScleraLeft": "sclera",
    "M_ScleraRight": "sclera",
    "M_IrisLeft": "iris",
    "M_IrisRight": "iris",
    "M_LacrimalFluid": "tear_film",
    "M_EyeBlend": "eye_occlusion",  # soft blend shell between lids and eyeball
    "M_EyeOcclusion": "eye_occlusion",
    "M_EyeLashes": "eyelashes",
}

# Globs, first match wins (case-insensitive): the specific eye layers before the plain "*eye*",
# lashes and brows before "*eye*", mouth parts before lips and skin. MakeHuman/MPFB names its
# materials after the proxy ("Human.body", "Human.eyebrow001", "Human.eyelashes01",
# "Human.teeth_base", "Human.tongue01", "Human.high-poly" eyes).
PRESET_GLOBS: tuple[tuple[str, str], ...] = (
    ("*occlusion*", "eye_occlusion"),
    ("*eyeblend*", "eye_occlusion"),
    ("*eye_blend*", "eye_occlusion"),
    ("*eyeedge*", "eye_occlusion"),
    ("*eyeshell*", "eye_occlusion"),
    ("*tear*", "tear_film"),
    ("*lacrimal*", "tear_film"),
    ("*eyewet*", "tear_film"),
    ("*cornea*", "cornea"),
    ("*iris*", "iris"),
    ("*pupil*", "iris"),
    ("*sclera*", "sclera"),
    ("*eyeball*", "sclera"),
    ("*high-poly*", "sclera"),
    ("*low-poly*", "sclera"),
    ("*lash*", "eyelashes"),
    ("*brow*", "eyebrows"),
    ("*teeth*", "teeth"),
    ("*tooth*", "teeth"),
    ("*gum*", "gums"),
    ("*tongue*", "gums"),
    ("*mouth*", "gums"),
    ("*lip*", "lips"),
    ("*scalp*", "scalp"),  # before "*hair*": a "HairScalp" material is the scalp, not hair cards
    ("*hair*", "hair"),
    ("*beard*", "hair"),
    ("*moustache*", "hair"),
    ("*mustache*", "hair"),
    ("*skin*", "skin"),
    ("*face*", "skin"),
    ("*head*", "skin"),
    ("*body*", "skin"),
    ("*eye*", "sclera"),  # a textured eyeball ("Eyes"): its texture holds the iris
)

_GLOB_CHARS = set("*?[")


class RoleError(AssetError):
    """A bad ``material_roles`` entry; the message is one line naming the file and the key."""


def is_glob(key: str) -> bool:
    return any(c in _GLOB_CHARS for c in key)


def preset_role(material: str) -> str | None:
    """The built-in role of a material name, or None (the asset keeps its own material)."""
    base = base_name(material)
    if base in ICT_FACEKIT:
        return ICT_FACEKIT[base]
    low = base.lower()
    for pattern, role in PRESET_GLOBS:
        if fnmatch.fnmatchcase(low, pattern):
            return role
    return None


def base_name(material: str) -> str:
    """Blender's duplicate suffix dropped: "M_Face.001" -> "M_Face"."""
    stem, dot, tail = material.rpartition(".")
    return stem if dot and len(tail) == 3 and tail.isdigit() else material


def check_mapping(mapping: Any, where: str) -> dict[str, str]:
    """A sidecar's ``material_roles`` value, checked: an object of strings naming known roles."""
    if not isinstance(mapping, dict):
        raise RoleError(f"{where}: material_roles must be a JSON object (material name or glob -> role)")
    for key, role in mapping.items():
        if not isinstance(role, str) or role not in ROLES:
            raise RoleError(f"{where}: material_roles[{key!r}] = {role!r} is not a role "
                            f"(roles: {', '.join(ROLES)})")
    return dict(mapping)


def _sidecar_role(material: str, mapping: Mapping[str, str]) -> str | None:
    if material in mapping:
        return mapping[material]
    for key, role in mapping.items():
        if is_glob(key) and fnmatch.fnmatchcase(material, key):
            return role
    return None


def resolve(materials: Iterable[str], sidecar: Mapping[str, str] | None = None,
            declared: Mapping[str, str] | None = None, strict: Mapping[str, str] | None = None,
            where: str = "") -> list[dict[str, str]]:
    """Roles of an asset's materials: a sorted list of ``{"material", "role"}`` (slots without a role left out).

    ``sidecar``: the merged ``material_roles`` (folder and file sidecars); ``declared``: roles the
    file itself declares (glTF extras); ``strict``: the keys of the asset's own sidecar, each of which
    must name at least one of its materials (a folder's keys may fit only some heads). ``where`` names
    the file in errors.
    """
    names = sorted(set(materials))
    sidecar = check_mapping(sidecar or {}, where)
    for key in strict or {}:
        if not any(n == key or (is_glob(key) and fnmatch.fnmatchcase(n, key)) for n in names):
            have = ", ".join(names) if names else "none"
            raise RoleError(f"{where}: material_roles key {key!r} names no material of this head "
                            f"(its materials: {have})")
    out = []
    for name in names:
        role = _sidecar_role(name, sidecar)
        if role is None and declared and declared.get(name) in ROLES:
            role = declared[name]
        if role is None:
            role = preset_role(name)
        if role is not None:
            out.append({"material": name, "role": role})
    return out


def as_dict(roles: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    """Manifest list of ``{"material", "role"}`` -> ``{material: role}``."""
    return {r["material"]: r["role"] for r in roles or ()}
