"""The format layer: what the writer (synthgen) and the readers (relight, ``synthgen inspect``) share.

This is the bottom layer of the toolkit, although it lives inside the
synthgen package: it imports the standard library and the core dependencies
only (numpy, pyarrow, openexr, pillow; fsspec lazily, for remote datasets),
never bpy, ray, torch or webdataset, and nothing else of the toolkit.
``assets_manifest``, the rest of ``synthgen`` and ``relight`` all import it.

* :mod:`~synthgen.format.shard` names the ``relight-wds`` members and checks
  a sample's member set and a listed shard path;
* :mod:`~synthgen.format.codecs` encodes PNG, EXR and JSON members and is the
  one EXR reader (shard members, catalog maps, Blender's multi-part passes);
* :mod:`~synthgen.format.dataset_index` reads and checks ``dataset.json``;
* :mod:`~synthgen.format.atomic` publishes files and folders atomically;
* :mod:`~synthgen.format.config` loads TOML files with ``--set`` overrides
  into dataclass sections (job files and relight's training configs).

Import the submodules; this package imports none of them itself.
"""
