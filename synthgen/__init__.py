"""synthgen: job file -> plan -> Blender/Cycles renders -> relighting WebDataset shards.

Only ``synthgen.render`` imports bpy and only ``synthgen.farm`` imports ray,
so planning and the shard format import with numpy/pyarrow alone.
"""

DISTRIBUTION = "synthlight-toolkit"


def version() -> str:
    """The installed synthlight-toolkit's version (what samples record); "unknown" if not installed."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"
