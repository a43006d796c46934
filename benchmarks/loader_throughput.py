"""Loader throughput: relight.data's webdataset loader vs a naive folder-of-PNGs torch Dataset.

Both read the same images: a sphere dataset written by tests/relight_fixtures.py
(env-map backgrounds, so the PNGs carry texture) or ``--dataset DIR``, whose
train shards are also extracted to ``<work>/folder/<key>/<member>``. The
baseline is a map-style Dataset over the same ordered pairs that opens the
input, target, env and mask PNGs with PIL per item and builds the same
tensors (masking the input); torch's DataLoader shuffles and batches it. The
webdataset side is ``relight.data.make_loader`` (resampled, shuffle buffer,
captions off so that both do the same work). Both loaders are warmed up
(``--warmup`` batches), then timed in ``--rounds`` alternating rounds of
``--batches / --rounds`` batches each, so both see the same load from other
processes; pairs/s per worker is the total over the worker count. Prints one line per (resolution, workers) and the machine load.

    .venv/bin/python benchmarks/loader_throughput.py                  # 256 and 512 px, 1 and 2 workers
    .venv/bin/python benchmarks/loader_throughput.py --res 256 --workers 1 --batches 40
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import tarfile
import time
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from relight import data  # noqa: E402


def extract(dataset_dir: str, folder: str) -> list[tuple[str, int, int]]:
    """Train shards -> folder/<key>/<field>; returns every ordered pair (key, i, j)."""
    pairs = []
    for url in data.resolve_shards(dataset_dir, "train"):
        with tarfile.open(url) as tf:
            ks: dict[str, int] = {}
            for m in tf.getmembers():
                key, field = m.name.split(".", 1)
                os.makedirs(os.path.join(folder, key), exist_ok=True)
                with open(os.path.join(folder, key, field), "wb") as f:
                    f.write(tf.extractfile(m).read())
                if field.startswith("rgb_") and field.endswith(".png"):
                    ks[key] = ks.get(key, 0) + 1
            pairs += [(key, i, j) for key, k in ks.items() for i in range(k) for j in range(k) if i != j]
    return pairs


class FolderPairs(Dataset):
    """The naive baseline: four PIL reads per pair from loose files."""

    def __init__(self, folder: str, pairs: list[tuple[str, int, int]]):
        self.folder, self.pairs = folder, pairs

    def __len__(self):
        return len(self.pairs)

    def _img(self, key: str, name: str, mode: str) -> torch.Tensor:
        a = np.array(Image.open(os.path.join(self.folder, key, name)).convert(mode))
        a = a[:, :, None] if a.ndim == 2 else a
        return torch.from_numpy(a).permute(2, 0, 1).float().div_(255.0)

    def __getitem__(self, n: int) -> dict:
        key, i, j = self.pairs[n]
        mask = self._img(key, "mask.png", "L")
        return {"input": self._img(key, f"rgb_{i:02d}.png", "RGB") * mask,
                "target": self._img(key, f"rgb_{j:02d}.png", "RGB"),
                "env": self._img(key, f"env_{j:02d}.png", "RGB"), "mask": mask}


def interleaved(loaders: dict[str, Any], batches: int, warmup: int, rounds: int) -> dict[str, float]:
    """Seconds per batch of each loader, timed in alternating rounds so that both see the same machine load."""
    its = {name: iter(ld) for name, ld in loaders.items()}
    for it in its.values():
        for _ in range(warmup):
            next(it)
    spent = {name: 0.0 for name in its}
    per_round = max(1, batches // rounds)
    for _ in range(rounds):
        for name, it in its.items():
            t0 = time.perf_counter()
            for _ in range(per_round):
                next(it)
            spent[name] += time.perf_counter() - t0
    return {name: s / (per_round * rounds) for name, s in spent.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--res", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--groups", type=int, default=16, help="groups per generated dataset (K=4 lightings)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--batches", type=int, default=60, help="timed batches per loader")
    ap.add_argument("--rounds", type=int, default=6, help="alternations between the two loaders")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--dataset", help="use this synthgen dataset folder instead of generating spheres")
    ap.add_argument("--work", default="/tmp/loader_throughput")
    args = ap.parse_args()
    import relight_fixtures

    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"(1/5/15 min), {os.cpu_count()} CPUs, torch {torch.__version__}")
    print(f"{'px':>5} {'workers':>7} {'wds pairs/s/worker':>19} {'folder pairs/s/worker':>22} {'ratio':>6}  MB/group")
    for res in args.res:
        work = os.path.join(args.work, str(res))
        ds_dir = args.dataset or os.path.join(work, "ds")
        if not args.dataset and not os.path.exists(os.path.join(ds_dir, "dataset.json")):
            t0 = time.perf_counter()
            relight_fixtures.make_sphere_dataset(ds_dir, groups=args.groups + 2, k=4, res=res, env_width=256,
                                                 shard_size=4, backgrounds=("env",))
            print(f"# generated {ds_dir} in {time.perf_counter() - t0:.1f} s")
        folder = os.path.join(work, "folder")
        pairs = extract(ds_dir, folder)
        nbytes = sum(os.path.getsize(u) for u in data.resolve_shards(ds_dir, "train"))
        groups = len({k for k, _, _ in pairs})
        native = Image.open(os.path.join(folder, pairs[0][0], "rgb_00.png")).size[0]
        env_h, env_w = Image.open(os.path.join(folder, pairs[0][0], "env_00.png")).size[::-1]
        cfg = data.DataConfig(resolution=native, env_size=(env_h, env_w), captions=False, shuffle_buffer=64,
                              pairs_per_group=4)
        for workers in args.workers:
            wds_loader = data.make_loader(ds_dir, "train", cfg, batch_size=args.batch_size, num_workers=workers,
                                          epoch_batches=10**6)
            base = DataLoader(FolderPairs(folder, pairs), batch_size=args.batch_size, shuffle=True,
                              num_workers=workers, generator=torch.Generator().manual_seed(0),
                              persistent_workers=workers > 0)

            def forever():
                while True:
                    yield from base
            sec = interleaved({"wds": wds_loader, "folder": forever()}, args.batches, args.warmup, args.rounds)
            wds_rate, base_rate = args.batch_size / sec["wds"], args.batch_size / sec["folder"]
            del wds_loader, base
            w = max(workers, 1)
            print(f"{native:>5} {workers:>7} {wds_rate / w:>19.1f} {base_rate / w:>22.1f} {wds_rate / base_rate:>5.2f}x"
                  f"  {nbytes / groups / 1e6:.2f}", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    random.seed(0)
    main()
