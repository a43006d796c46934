"""The asset catalog: 3D head assets and HDR environment maps.

A catalog is one Parquet manifest (schema in :mod:`assets_manifest.schema`)
listing every asset with a content-derived id, its sha256, licence, split and
kind-specific metadata. :mod:`scan` builds one from a folder, :mod:`validate`
checks one, :mod:`splits` and :mod:`licenses` filter it, and :mod:`builtin`
writes the catalog that ships with the toolkit (no download needed).
"""

from assets_manifest.schema import MANIFEST_SCHEMA, AssetError, read_manifest, write_manifest

__all__ = ["MANIFEST_SCHEMA", "AssetError", "read_manifest", "write_manifest"]
