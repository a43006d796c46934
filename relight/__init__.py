"""relight: stream relighting shards, train the conditional diffusion model, relight portraits.

Reads the ``relight-wds/2`` shards that synthgen writes (:mod:`synthgen.format.shard`; ``/1`` too)
and uses the same env-map convention code (:mod:`assets_manifest.envmap`).
Only this package imports torch/diffusers, and only in the modules that need them.
"""
