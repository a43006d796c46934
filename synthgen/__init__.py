"""synthgen: job file -> plan -> Blender/Cycles renders -> relighting WebDataset shards.

Only ``synthgen.render`` imports bpy and only ``synthgen.farm`` imports ray,
so planning and the shard format import with numpy/pyarrow alone.
"""
