"""Deterministic train/val/test splits by asset.

An asset's split is a pure function of its ``asset_id`` (content-derived) and
the fractions: a hash of the id is mapped to [0, 1) and cut at the
cumulative fractions. Adding or removing other assets never moves an asset
from one split to another, and because heads and HDRIs are split separately
and a job draws train groups only from train assets, no test head or test
HDRI reaches training. A sidecar may pin an asset's split explicitly.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

from assets_manifest.schema import MANIFEST_SCHEMA, SPLITS, AssetError

DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def parse_fractions(text: str | tuple[float, ...]) -> tuple[float, float, float]:
    try:
        vals = tuple(float(x) for x in (text.split(",") if isinstance(text, str) else text))
    except ValueError:
        raise AssetError(f"split fractions {text!r}: expected three numbers like 0.8,0.1,0.1") from None
    if len(vals) != 3 or any(v < 0 for v in vals) or abs(sum(vals) - 1.0) > 1e-6:
        raise AssetError(f"split fractions {text!r}: need three non-negative train,val,test fractions summing to 1")
    return vals  # type: ignore[return-value]


def unit_hash(asset_id: str, salt: str = "split/1") -> float:
    digest = hashlib.sha256(f"{salt}:{asset_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_for(asset_id: str, fractions=DEFAULT_FRACTIONS) -> str:
    u = unit_hash(asset_id)
    train, val, _ = fractions
    if u < train:
        return "train"
    if u < train + val:
        return "val"
    return "test"


def assign(table: pa.Table, fractions=DEFAULT_FRACTIONS, keep_pinned: set[str] | None = None) -> pa.Table:
    """Return ``table`` with its split column recomputed; ids in ``keep_pinned`` keep theirs."""
    fractions = parse_fractions(fractions)
    pinned = keep_pinned or set()
    rows = table.to_pylist()
    for r in rows:
        if r["asset_id"] in pinned and r["split"] in SPLITS[:3]:
            continue
        r["split"] = split_for(r["asset_id"], fractions)
    return pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)


def counts(table: pa.Table) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for kind, split in zip(table.column("kind").to_pylist(), table.column("split").to_pylist()):
        out[(kind, split)] = out.get((kind, split), 0) + 1
    return out


def rank_splits(asset_ids: list[str], fractions=DEFAULT_FRACTIONS) -> dict[str, str]:
    """Exact proportions for a fixed, small set (the built-in catalog).

    Assets are ordered by the same hash and cut at the cumulative counts, so
    every split with a non-zero fraction gets at least one asset when there
    are enough. Unlike :func:`split_for`, adding assets can move others:
    use it only for sets that are generated whole.
    """
    fractions = parse_fractions(fractions)
    order = sorted(asset_ids, key=unit_hash)
    n = len(order)
    sizes = [int(round(f * n)) for f in fractions]
    for i in (1, 2):
        if fractions[i] > 0 and sizes[i] == 0 and n >= 3:
            sizes[i] = 1
    sizes[0] = max(n - sizes[1] - sizes[2], 0)
    out, start = {}, 0
    for name, size in zip(("train", "val", "test"), sizes):
        for asset_id in order[start : start + size]:
            out[asset_id] = name
        start += size
    for asset_id in order[start:]:
        out[asset_id] = "test"
    return out
