"""The ``relight-wds/2`` shard format shared by synthgen (writer) and relight (reader).

One WebDataset sample is one group: a head under K >= 2 lightings. Member
names are ``KEY.<field>``; keys carry no dots (webdataset splits the key at
the first dot of the basename). This module names the fields and checks a
sample's member set; it imports with the standard library alone so the render
environment and a trainer's (no bpy, any Python 3.11-3.13) share it.

``relight-wds/2`` names each lighting's HDRI by ``hdri_asset_id`` and
``hdri_name`` (the catalog's name for it); ``relight-wds/1`` had the
absolute path of the map on the planning machine (``hdri_uri``) instead.
The members are the same, so readers take both (:data:`READABLE_FORMATS`).
"""

from __future__ import annotations

import os
import re

FORMAT = "relight-wds/2"
READABLE_FORMATS = ("relight-wds/1", FORMAT)
MIN_LIGHTINGS = 2
MAX_LIGHTINGS = 1000
PASSES = ("albedo.png", "normal.exr", "depth.exr")
_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_FIELD_RE = re.compile(r"^(rgb|env)_(\d{2,3})\.(png|exr)$")


def sample_key(job_id: str, group_index: int) -> str:
    key = f"{job_id}-{group_index:08d}"
    check_key(key)
    return key


def check_key(key: str) -> None:
    if not _KEY_RE.match(key):
        raise ValueError(f"sample key {key!r} must match [A-Za-z0-9_-]+ (no dots, no slashes)")


_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # s3:, https:, pipe:, file:, also C: (a drive)


def check_shard_path(path, folder: str) -> str:
    """A shard path listed in ``dataset.json``, as a path relative to the dataset ``folder``; else ValueError.

    synthgen writes ``shards/<split>-NNNNNN.tar``. Refused: empty or non-string
    paths, absolute paths, ``..`` components, backslashes and NULs, and URLs
    (``pipe:``, ``https://``, another bucket), except a URL inside ``folder``
    itself (its own scheme and prefix; ``file://`` for a local folder), which is
    taken relative to it. Shared by ``synthgen inspect`` and relight's reader.
    """
    if not isinstance(path, str) or not path:
        raise ValueError(f"shard path {path!r}: empty or not a string")
    rel = path
    if _SCHEME_RE.match(rel):
        own = (folder if "://" in folder else "file://" + folder).rstrip("/") + "/"
        if not rel.startswith(own):
            raise ValueError(f"shard path {path!r}: a URL outside the dataset folder; shard paths must be "
                             "relative and stay inside the dataset folder")
        rel = rel[len(own):]
    if "\x00" in rel or "\\" in rel or rel.startswith("/") or ".." in rel.split("/") or not rel.strip("/"):
        raise ValueError(f"shard path {path!r} must be relative and stay inside the dataset folder")
    return rel


def hdri_name(lighting: dict) -> str | None:
    """The name of a lighting's HDRI in a sample's (or plan's) ``lightings``: ``hdri_name``, or for
    ``relight-wds/1`` the file stem of its ``hdri_uri``; None when neither is there."""
    name = lighting.get("hdri_name")
    if not name and lighting.get("hdri_uri"):
        name = os.path.splitext(os.path.basename(lighting["hdri_uri"]))[0]
    return name or None


def rgb_field(i: int, hdr: bool = False) -> str:
    return f"rgb_{i:02d}.{'exr' if hdr else 'png'}"


def env_field(i: int, hdr: bool = False) -> str:
    return f"env_{i:02d}.{'exr' if hdr else 'png'}"


def required_fields(k: int) -> list[str]:
    """Members every sample with ``k`` lightings must have."""
    if not MIN_LIGHTINGS <= k <= MAX_LIGHTINGS:
        raise ValueError(f"lightings per group must be in [{MIN_LIGHTINGS}, {MAX_LIGHTINGS}], got {k}")
    out = ["json", "mask.png"]
    for i in range(k):
        out += [rgb_field(i), env_field(i), env_field(i, hdr=True)]
    return out


def check_fields(key: str, fields: set[str]) -> int:
    """Validate a sample's member set; return K. Raises ValueError naming the key and the problem."""
    check_key(key)
    indices = {int(m.group(2)) for f in fields if (m := _FIELD_RE.match(f)) and m.group(1) == "rgb"}
    k = max(indices) + 1 if indices else 0
    if k < MIN_LIGHTINGS:
        raise ValueError(f"sample {key}: {k} lighting(s), a group needs at least {MIN_LIGHTINGS}")
    missing = [f for f in required_fields(k) if f not in fields]
    if missing:
        raise ValueError(f"sample {key}: missing {', '.join(missing)}")
    allowed = set(required_fields(k)) | set(PASSES) | {rgb_field(i, hdr=True) for i in range(k)}
    extra = sorted(fields - allowed)
    if extra:
        raise ValueError(f"sample {key}: unexpected member(s) {', '.join(extra)}")
    return k
