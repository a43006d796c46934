"""Data-parallel training through Ray Train (``TorchTrainer``, DDP): ``relight train --workers N``.

Each Ray worker runs :func:`relight.train.run` with its rank, the device Ray
assigned, Ray's ``prepare_model`` (DDP wrapping) and ``ray.train.report``.
The loader splits shards by rank, so workers see disjoint data; rank 0
writes logs, checkpoints and the exported model into the output folder,
which must therefore be on a filesystem every node sees (a local folder for
one machine, NFS/Lustre on a cluster). CPU workers use gloo, GPU workers NCCL.
"""

from __future__ import annotations

import os
from typing import Any


def _worker_loop(conf: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    from relight import config as config_mod
    from relight import train

    cfg = config_mod.from_dict(conf["cfg"], conf["source"])
    ctx = ray.train.get_context()
    dist = train.DistInfo(rank=ctx.get_world_rank(), world_size=ctx.get_world_size(),
                          device=ray.train.torch.get_device(), wrap=ray.train.torch.prepare_model,
                          report=ray.train.report)
    summary = train.run(cfg, conf["shards"], conf["out_dir"], resume=conf["resume"], dist=dist,
                        progress=conf["progress"])
    # every rank reports (a barrier in Ray Train); rank 0 carries the numbers
    ray.train.report({"done": 1, **{k: v for k, v in summary.items() if isinstance(v, (int, float))}})


def run_distributed(cfg, shards, out_dir: str, workers: int, use_gpu: bool = False, address: str | None = None,
                    cpus_per_worker: float = 1.0, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train with ``workers`` data-parallel Ray workers; returns the summary rank 0 wrote."""
    import json

    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    out_dir = os.path.abspath(out_dir)
    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS"), include_dashboard=False,
                 log_to_driver=progress)
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"cfg": cfg.to_dict(), "source": cfg.source, "shards": shards, "out_dir": out_dir,
                           "resume": resume, "progress": progress},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cpus_per_worker}),
        run_config=RunConfig(name="relight-train", storage_path=os.path.join(out_dir, "ray")),
    )
    trainer.fit()
    with open(os.path.join(out_dir, "summary.json")) as f:
        return json.load(f)
