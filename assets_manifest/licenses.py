"""Licence identifiers the catalog accepts, their aliases, and the licence filter."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from assets_manifest.schema import AssetError

# SPDX ids where one exists. "proprietary" covers bought packs (the SynthLight
# heads were a commercial pack): allowed in a catalog, filtered out on demand.
KNOWN = (
    "CC0-1.0",
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "CC-BY-NC-4.0",
    "CC-BY-NC-SA-4.0",
    "MIT",
    "Apache-2.0",
    "GPL-3.0-or-later",
    "proprietary",
)
ALIASES = {
    "cc0": "CC0-1.0",
    "cc0-1.0": "CC0-1.0",
    "public-domain": "CC0-1.0",
    "cc-by": "CC-BY-4.0",
    "cc-by-4.0": "CC-BY-4.0",
    "cc-by-sa": "CC-BY-SA-4.0",
    "cc-by-sa-4.0": "CC-BY-SA-4.0",
    "cc-by-nc": "CC-BY-NC-4.0",
    "cc-by-nc-4.0": "CC-BY-NC-4.0",
    "cc-by-nc-sa-4.0": "CC-BY-NC-SA-4.0",
    "mit": "MIT",
    "apache-2.0": "Apache-2.0",
    "gpl-3.0-or-later": "GPL-3.0-or-later",
    "proprietary": "proprietary",
    "commercial": "proprietary",
}
# What a team training a model it may ship usually accepts.
PERMISSIVE = ("CC0-1.0", "CC-BY-4.0", "MIT", "Apache-2.0")


def normalize(license_id: str, where: str = "") -> str:
    """Canonical id for a licence string; unknown ones are an error naming ``where``."""
    key = (license_id or "").strip()
    canon = ALIASES.get(key.lower())
    if canon is None and key in KNOWN:
        canon = key
    if canon is None:
        prefix = f"{where}: " if where else ""
        raise AssetError(
            f"{prefix}unknown licence {license_id!r}; use one of {', '.join(KNOWN)} "
            "(set it with --license or a sidecar file)"
        )
    return canon


def filter_table(table: pa.Table, allowed: list[str]) -> pa.Table:
    """Keep only rows whose licence is in ``allowed`` (aliases accepted)."""
    keep = sorted({normalize(a, "--allow-license") for a in allowed})
    return table.filter(pc.is_in(table.column("license"), value_set=pa.array(keep)))
