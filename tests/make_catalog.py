"""Make a small catalog for render tests: sphere 'heads' and procedural HDRIs, splits pinned.

Usage: python tests/make_catalog.py DIR  (writes DIR/manifest.parquet)
"""
import json
import os
import subprocess
import sys

import trimesh

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from assets_manifest import hdri_io, procedural_hdri  # noqa: E402

root = sys.argv[1]
os.makedirs(f"{root}/heads", exist_ok=True)
os.makedirs(f"{root}/hdri", exist_ok=True)
for i, split in enumerate(["train", "train", "val", "test"]):
    m = trimesh.creation.icosphere(subdivisions=4, radius=0.1 + 0.01 * i)
    m.apply_translation([0, 0, 0.12])
    p = f"{root}/heads/ball{i}.glb"
    m.export(p)
    json.dump({"split": split}, open(p + ".asset.json", "w"))
# two HDRIs per held-out split: jobs with lighting.hdris_per_group = 2 refuse a split of one
hdris = [("studio", "studio", "train"), ("clear_sky", "clear_sky", "train"), ("rim", "rim", "val"),
         ("overcast", "overcast", "test"), ("hazy_sky", "hazy_sky", "val"), ("studio_b", "studio", "test")]
for i, (name, style, split) in enumerate(hdris):
    p = f"{root}/hdri/{name}.exr"
    hdri_io.write_exr(p, procedural_hdri.generate(style, i, 256).rgb)
    json.dump({"split": split}, open(p + ".asset.json", "w"))
json.dump({"license": "CC0-1.0", "source": "test"}, open(f"{root}/_catalog.json", "w"))
r = subprocess.run([sys.executable, "-m", "synthgen.cli", "assets", "scan", root, "--out", f"{root}/manifest.parquet", "-q"],
                   capture_output=True, text=True)
if r.returncode:
    print(r.stderr, file=sys.stderr)
    sys.exit(r.returncode)
