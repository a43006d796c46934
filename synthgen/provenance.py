"""What determines a shard's bytes: its canonical settings, their digest, and what differs between two.

Every completion record carries ``settings`` and ``digest`` (sha256 of their
canonical JSON), so a resumed run can tell whether a finished shard was made
by this job, and name what differs when it was not. The settings are:

* ``job``: every section of the job, less what cannot change a byte of a
  shard: where the catalogs lie (``job.catalogs``; the assets are covered by
  their content below) and ``render.threads`` / ``render.timeout_s``.
  ``render.device`` stays in: CPU and GPU Cycles give slightly different pixels.
* ``plan``: the shard's plan rows, by sample key, less asset locations.
* ``assets``: for each asset the rows use, the catalog fields that change a
  render: sha256, generator and generator parameters, texture roles and
  hashes, and units, axes or material roles when the catalog has such fields
  (any of ``ASSET_FIELDS`` found on the row or its ``head``/``hdri`` struct).
* ``software``: the Blender and synthgen versions of the process that rendered.

No path or URL goes in (keys ``uri`` and ``*_uri`` are dropped at any depth), so
the same job with its catalog somewhere else has the same settings.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# job keys that cannot change a shard's bytes
NOT_BYTES = {"job": ("catalogs",), "render": ("threads", "timeout_s")}
# catalog fields that change a render, wherever the manifest has them (top level or the kind's struct)
ASSET_FIELDS = ("sha256", "units", "unit_scale", "axes", "up_axis", "forward_axis", "material_roles",
                "materials", "textures", "generator", "generator_params")
SECTIONS = ("job", "software", "assets", "plan")  # the order differences are named in
ADVICE = "run with --overwrite to re-render everything, or use a new --out"


class SettingsMismatch(ValueError):
    """Finished shards were made with other settings than this job's; the message names the keys."""

    exit_code = 2  # bad usage (assets_manifest.cli_errors): the command asks for another dataset than the folder's


def _unlocated(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unlocated(v) for k, v in value.items() if not (k == "uri" or k.endswith("_uri"))}
    if isinstance(value, (list, tuple)):
        return [_unlocated(v) for v in value]
    return value


def job_settings(job: dict[str, Any]) -> dict[str, Any]:
    return {section: {k: v for k, v in values.items() if k not in NOT_BYTES.get(section, ())}
            for section, values in job.items()}


def asset_settings(row: dict[str, Any]) -> dict[str, Any]:
    """The render-relevant fields of one manifest row."""
    out: dict[str, Any] = {}
    for where in (row, row.get(row.get("kind")) or {}):
        for name in ASSET_FIELDS:
            if where.get(name) is not None:
                out[name] = _unlocated(where[name])
    return out


def shard_settings(job: dict[str, Any], rows: list[dict[str, Any]],
                   assets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A shard's settings without ``software`` (the rendering process adds that): job, plan rows, assets.

    ``assets`` maps asset id -> manifest row; ids the rows use but ``assets`` lacks are left out."""
    used = sorted({r["head_asset_id"] for r in rows} | {lt["hdri_asset_id"] for r in rows for lt in r["lightings"]})
    return {"job": job_settings(job), "plan": {r["key"]: _unlocated(r) for r in rows},
            "assets": {a: asset_settings(assets[a]) for a in used if a in assets}}


def canonical(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest(settings: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(settings).encode()).hexdigest()


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        for i, v in enumerate(value):
            _flatten(v, f"{prefix}.{i}", out)
    else:
        out[prefix] = value


def flat(settings: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys -> values; the job's keys are named as in job files (``render.resolution``)."""
    out: dict[str, Any] = {}
    for section in SECTIONS:
        if section in settings:
            _flatten(settings[section], "" if section == "job" else section, out)
    return out


_ABSENT = object()


def _show(v: Any) -> str:
    if v is _ABSENT:
        return "(absent)"
    text = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def differences(recorded: dict[str, Any], expected: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(key, recorded value, expected value) for every dotted key whose values differ, in SECTIONS order."""
    a, b = flat(recorded), flat(expected)
    keys = list(a) + [k for k in b if k not in a]
    return [(k, _show(a.get(k, _ABSENT)), _show(b.get(k, _ABSENT))) for k in keys
            if a.get(k, _ABSENT) != b.get(k, _ABSENT)]


def describe(diffs: list[tuple[str, str, str]], this: str = "this job has", limit: int = 3) -> str:
    """``render.resolution=32, this job has 48; ...`` for the first ``limit`` differences."""
    parts = [f"{k}={old}, {this} {new}" for k, old, new in diffs[:limit]]
    more = len(diffs) - limit
    return "; ".join(parts) + (f" (and {more} more difference(s))" if more > 0 else "")
