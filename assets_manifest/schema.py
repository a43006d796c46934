"""The manifest schema and its atomic Parquet reader/writer.

One row per asset. Columns common to every kind come first; kind-specific
metadata sits in a nullable struct per kind (``head`` or ``hdri``), so the
table stays flat for pandas/duckdb (``hdri.peak_luminance``) while the schema
remains explicit. Generator parameters vary per generator, so they are stored
as a JSON string rather than a struct.

``uri`` is a local path, relative to the manifest's folder when the asset lies
under it (so a catalog folder can be moved or synced as a whole), or an fsspec
URL (``s3://...``). :func:`resolve_uri` turns it back into something to open.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Any, Iterable

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from synthgen.format import atomic

SCHEMA_VERSION = "assets-manifest/1"
KINDS = ("head", "hdri")
SPLITS = ("train", "val", "test", "unassigned")
TEXTURE_ROLES = ("albedo", "normal", "roughness", "specular", "subsurface")

# variable-length lists: pyarrow cannot read back fixed-size lists inside a null struct
_vec3 = pa.list_(pa.float64())

MATERIAL_ROLE_TYPE = pa.struct(
    [
        pa.field("material", pa.string(), nullable=False),
        pa.field("role", pa.string(), nullable=False),  # assets_manifest.material_roles.ROLES
    ]
)

TEXTURE_TYPE = pa.struct(
    [
        pa.field("role", pa.string(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("sha256", pa.string()),  # null when embedded in the mesh file
    ]
)

HEAD_TYPE = pa.struct(
    [
        pa.field("vertices", pa.int64(), nullable=False),
        pa.field("faces", pa.int64(), nullable=False),
        pa.field("bbox_min", _vec3, nullable=False),  # stored coordinates: times unit_scale for metres
        pa.field("bbox_max", _vec3, nullable=False),
        pa.field("parts", pa.list_(pa.string())),
        pa.field("textures", pa.list_(TEXTURE_TYPE)),
        pa.field("generator", pa.string()),
        pa.field("generator_params", pa.string()),  # JSON
        # optional (null in manifests written before it existed): material slot -> role
        pa.field("material_roles", pa.list_(MATERIAL_ROLE_TYPE)),
        # units and axes in force (assets_manifest.axes); null in manifests written before them
        pa.field("unit_scale", pa.float64()),  # metres per file unit
        pa.field("up_axis", pa.string()),  # "+X" ... "-Z", in the file's stored coordinates
        pa.field("forward_axis", pa.string()),  # the stored axis the face looks along
    ]
)

HDRI_TYPE = pa.struct(
    [
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("mean_luminance", pa.float64(), nullable=False),
        pa.field("peak_luminance", pa.float64(), nullable=False),
        pa.field("dynamic_range_stops", pa.float64(), nullable=False),
        # unit vector in the map's own frame (DESIGN.md convention, +y up)
        pa.field("dominant_direction", _vec3, nullable=False),
        pa.field("dominant_azimuth_deg", pa.float64(), nullable=False),
        pa.field("dominant_elevation_deg", pa.float64(), nullable=False),
        pa.field("generator", pa.string()),
        pa.field("generator_params", pa.string()),  # JSON
    ]
)

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("asset_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("format", pa.string(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("license", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("head", HEAD_TYPE),
        pa.field("hdri", HDRI_TYPE),
    ],
    metadata={b"schema_version": SCHEMA_VERSION.encode()},
)


class AssetError(ValueError):
    """A bad asset or manifest; the message is one line naming the file and the problem."""

    exit_code = 1  # bad input data (assets_manifest.cli_errors); a bad flag value is marked usage()


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with fsspec.open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def make_asset_id(kind: str, content_hashes: Iterable[str]) -> str:
    """Stable id from content only: the same bytes give the same id wherever they live."""
    h = hashlib.sha256(kind.encode())
    for digest in content_hashes:
        h.update(digest.encode())
    return f"{kind}-{h.hexdigest()[:16]}"


def has_scheme(uri: str) -> bool:
    return "://" in uri


def relative_uri(path: str, manifest_path: str) -> str:
    """Store ``path`` relative to the manifest folder when it lies under it."""
    if has_scheme(path) or has_scheme(manifest_path):
        return path
    base = os.path.dirname(os.path.abspath(manifest_path))
    path = os.path.abspath(path)
    if os.path.commonpath([base, path]) == base:
        return os.path.relpath(path, base)
    return path


def resolve_uri(uri: str, manifest_path: str) -> str:
    if has_scheme(uri) or os.path.isabs(uri):
        return uri
    if has_scheme(manifest_path):
        return manifest_path.rsplit("/", 1)[0] + "/" + uri
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(manifest_path)), uri))


def _sorted_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["kind"], r["asset_id"]))


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    rows = _sorted_rows(rows)
    for r in rows:
        if r["kind"] not in KINDS:
            raise AssetError(f"{r.get('uri')}: kind {r['kind']!r} is not one of {KINDS}")
        if r["split"] not in SPLITS:
            raise AssetError(f"{r.get('uri')}: split {r['split']!r} is not one of {SPLITS}")
        r.setdefault("head", None)
        r.setdefault("hdri", None)
    return pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)


def write_manifest(rows_or_table: list[dict[str, Any]] | pa.Table, path: str) -> str:
    """Write atomically: a reader sees the old manifest or the new one, never half of one."""
    table = rows_or_table if isinstance(rows_or_table, pa.Table) else rows_to_table(rows_or_table)
    table = table.cast(MANIFEST_SCHEMA)
    ids = table.column("asset_id").to_pylist()
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise AssetError(f"{path}: duplicate asset_id {sorted(dup)[0]} (the same content listed twice)")
    if has_scheme(path):
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "manifest.parquet")
            pq.write_table(table, local)
            fs, fs_path = fsspec.core.url_to_fs(path)
            fs.put_file(local, fs_path)  # object stores publish a put atomically
        return path
    # 0666 & ~umask: other users and nodes on a shared filesystem must be able to read it
    return atomic.write_parquet(path, table)


def read_manifest(path: str) -> pa.Table:
    """Read a manifest, checking that it is one (schema version and columns)."""
    try:
        # Never hand pyarrow a Python file object: its reader threads then hold
        # a Python reference and abort the interpreter at exit. Manifests are
        # small, so remote ones are read into memory.
        if has_scheme(path):
            with fsspec.open(path, "rb") as f:
                table = pq.read_table(pa.BufferReader(f.read()))
        else:
            if not os.path.isfile(path):
                raise FileNotFoundError(path)
            table = pq.read_table(path)
    except FileNotFoundError:
        raise AssetError(f"{path}: manifest not found") from None
    except pa.ArrowInvalid as e:
        raise AssetError(f"{path}: not a Parquet manifest ({e})") from None
    version = (table.schema.metadata or {}).get(b"schema_version", b"").decode()
    if version != SCHEMA_VERSION:
        raise AssetError(f"{path}: schema_version {version or 'missing'!r}, expected {SCHEMA_VERSION!r}")
    missing = [n for n in MANIFEST_SCHEMA.names if n not in table.schema.names]
    if missing:
        raise AssetError(f"{path}: missing column(s) {', '.join(missing)}")
    return table.select(MANIFEST_SCHEMA.names).cast(MANIFEST_SCHEMA)


def read_rows(path: str) -> list[dict[str, Any]]:
    return read_manifest(path).to_pylist()
