"""Streaming relighting pairs from ``relight-wds/2`` (and ``/1``) shards with webdataset.

Sources: a synthgen output folder (its ``dataset.json`` names each split's
shards; training reads ``train``, validation ``val``, evaluation ``test``), a
``dataset.json`` path, or shard URLs (local paths and brace patterns; http(s)
and fsspec URLs only with ``allow_remote=True``, ``pipe:`` URLs only with
``allow_pipe=True``).

Pipeline (webdataset stages, run inside each DataLoader worker)::

    shard list  SimpleShardList + seeded shard shuffle | ResampledShards (with replacement)
    -> node split (rank/world size from arguments, else torch.distributed / RANK+WORLD_SIZE)
    -> wds.split_by_worker
    -> tar members -> groups (names checked, no pickles: relight.shard_safety)
    -> format check (synthgen.format.shard: K lightings, all members present)
    -> ordered pairs (i != j), ``pairs_per_group`` per group, seeded
    -> wds.shuffle over pairs (buffers hold encoded bytes, not decoded tensors)
    -> wds.decode with one explicit decoder map -> tensors (crop, resize, mask, captions)
    [-> mixed with real unlabelled portraits at ``real_ratio`` (training split only)]
    -> wds.batched in the worker; WebLoader(batch_size=None) ... .with_epoch(n) on the loader

Each batch is a dict: ``input`` (B,3,H,W), ``env`` (B,3,He,We), ``target``
(B,3,H,W), ``mask`` (B,1,H,W), all float32 in [0,1]; ``env_hdr`` (B,3,He,We)
when ``env_hdr`` is set; ``task`` (B,) long, 0 = synthetic relighting pair,
1 = real portrait (text-to-image; black input and env, mask all ones);
``caption``, ``key`` (``GROUPKEY-ii-jj`` for a pair) and ``meta`` (small dicts)
as lists.

``env_hdr`` is ``log1p(10 E) / log1p(10 * env_hdr_max)`` of the half-float
``env_XX.exr`` radiance E, area-averaged to ``env_size``. With the default
``env_hdr_max = 65504`` (the largest half float, so the largest value an
``env_XX.exr`` can hold) it lies in [0, 1] without clipping and keeps absolute
intensity: E = 1 maps to 0.18, E = 100 to 0.52.

Reproducibility: every random choice (shard order, resampling, pairs,
shuffle buffer, real/synthetic mix) draws from ``random.Random`` seeded by
``(seed, rank, worker, epoch)``, where the epoch counts how many times the
dataset has been iterated in that process. Same seed, rank, world size and
worker count give the same batches; :func:`make_loader` keeps workers
persistent so a later epoch continues the count instead of repeating the first.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import random
import warnings
from dataclasses import dataclass
from itertools import islice
from typing import Any, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
import webdataset as wds
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from assets_manifest.cli_errors import USAGE, usage
from relight import captions
from relight.shard_safety import (MAX_IMAGE_SIDE, MAX_MEMBER_BYTES, DataError, ReadPolicy, UnsafeShardError,
                                  decode_member, is_remote, pipe_refused, raise_unsafe, remote_refused, tar_samples)
from synthgen.format import dataset_index, shard as shard_format

__all__ = ["DataConfig", "DataError", "UnsafeShardError", "resolve_shards", "make_dataset", "make_loader",
           "iter_pairs", "collate"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
HALF_MAX = 65504.0


@dataclass
class DataConfig:
    resolution: int = 64  # square centre crop + resize of portrait/target/mask
    env_size: tuple[int, int] = (64, 64)  # (H, W) env image; the paper squashes the 2:1 panorama to a square
    env_hdr: bool = False  # also return log-HDR env from env_XX.exr (formula in the module docstring)
    env_hdr_max: float = HALF_MAX
    pairs_per_group: int = 4  # ordered pairs drawn per group visit (all K(K-1) if larger)
    shuffle_buffer: int = 256  # pairs; 0 turns shuffling off
    resampled: bool = True  # shards drawn with replacement: an infinite stream, no starving ranks
    seed: int = 0
    real_portraits: str | list[str] | None = None  # folder of images, or shard URLs/folder of real portraits
    real_ratio: float = 0.0  # fraction of real portraits in training batches (paper: 0.3)
    mask_input: bool = True  # input portrait multiplied by the foreground mask (paper Supp. C)
    captions: bool = True  # False: every caption is ""
    allow_remote: bool = False  # http(s), s3://, gs://, ... shard URLs
    allow_pipe: bool = False  # pipe:CMD shard URLs (webdataset runs CMD through a shell)
    allow_compressed: bool = False  # gzip/bzip2/xz shards (a small shard can unpack to an endless stream)
    max_member_bytes: int = MAX_MEMBER_BYTES  # per tar member, from its header, before it is read
    max_image_side: int = MAX_IMAGE_SIDE  # EXR/PNG/JPEG width and height, from the header, before decoding
    skip_bad: bool = False  # warn and skip undecodable samples instead of raising (never unsafe ones)

    def __post_init__(self):
        self.env_size = tuple(int(x) for x in self.env_size)
        checks = [
            (self.resolution >= 8, "resolution must be >= 8"),
            (len(self.env_size) == 2 and min(self.env_size) >= 4, "env_size must be (H, W), each >= 4"),
            (self.pairs_per_group >= 1, "pairs_per_group must be >= 1"),
            (self.shuffle_buffer >= 0, "shuffle_buffer must be >= 0"),
            (0.0 <= self.real_ratio < 1.0, "real_ratio must be in [0, 1)"),
            (self.env_hdr_max > 0, "env_hdr_max must be > 0"),
            (not (self.real_ratio > 0 and not self.real_portraits), "real_ratio > 0 needs real_portraits"),
        ]
        for ok, msg in checks:
            if not ok:
                raise DataError(f"DataConfig: {msg}")
        try:
            self.read_policy()
        except DataError as e:
            raise DataError(f"DataConfig: {e}") from None

    def read_policy(self) -> ReadPolicy:
        return ReadPolicy(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ReadPolicy)})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - names)
        if bad:
            raise DataError(f"DataConfig: unknown key {bad[0]!r} (known: {', '.join(sorted(names))})")
        return cls(**d)


# ---------------------------------------------------------------- sources


def _split_urls(path: str, split: str, allow_remote: bool) -> list[str]:
    """Shard URLs of ``split`` from a dataset.json, read and checked by the same reader as `synthgen inspect`."""
    if is_remote(path) and not allow_remote:
        raise usage(DataError(remote_refused(path, "remote dataset")))  # exit 2: needs an opt-in flag
    try:
        index = dataset_index.read_index(path)
        urls = index.shard_urls(split)
    except dataset_index.DatasetError as e:  # same message; an unknown split stays a bad value (exit 2)
        err = DataError(str(e))
        raise (usage(err) if e.exit_code == USAGE else err) from None
    if not urls:
        raise DataError(f"{index.where}: split {split!r} has no shards")
    return urls


def resolve_shards(source: str | list[str], split: str = "train", allow_remote: bool = False,
                   allow_pipe: bool = False) -> list[str]:
    """Shard URLs for ``split`` of a dataset folder / ``dataset.json``, or the expanded URLs given.

    Local results are absolute paths, checked to exist. ``split`` only
    applies to dataset folders; URLs and brace patterns are taken as they are.
    ``pipe:`` URLs need ``allow_pipe``, other URLs ``allow_remote``.
    """
    import braceexpand

    if isinstance(source, (list, tuple)):
        if not source:
            raise DataError("no shard sources given")
        return [u for s in source for u in resolve_shards(s, split, allow_remote, allow_pipe)]
    if not isinstance(source, str) or not source:
        raise DataError(f"shard source must be a path, URL or list of them, got {source!r}")
    if source.startswith("pipe:"):
        if not allow_pipe:
            raise usage(DataError(pipe_refused(source)))
        return list(braceexpand.braceexpand(source))
    if is_remote(source):
        if not allow_remote:
            raise usage(DataError(remote_refused(source)))
        if source.endswith("dataset.json") or source.endswith("/"):
            return _split_urls(source.rstrip("/") + ("" if source.endswith("dataset.json") else "/dataset.json"),
                               split, allow_remote)
        return list(braceexpand.braceexpand(source))
    if source.startswith("file://"):
        source = source[len("file://"):]
    if os.path.isdir(source):
        path = os.path.join(source, "dataset.json")
        if not os.path.exists(path):
            raise DataError(f"{source}: a folder without dataset.json (not a synthgen output); "
                            "give shard paths or a brace pattern instead")
        return _split_urls(path, split, allow_remote)
    if os.path.basename(source) == "dataset.json":
        return _split_urls(source, split, allow_remote)
    urls = [os.path.abspath(u) for u in braceexpand.braceexpand(source)]
    missing = [u for u in urls if not os.path.isfile(u)]
    if missing and urls == [os.path.abspath(source)]:  # one path, no pattern: a dataset folder or a shard
        raise DataError(f"{source}: no such folder or shard")
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"{missing[0]}: no such shard{more}")
    return urls


def _real_files(source: str | list[str], cfg: DataConfig) -> tuple[str, list[str]]:
    """("files", image paths) for a folder of images, else ("shards", shard URLs)."""
    if isinstance(source, str) and os.path.isdir(source) and not os.path.exists(os.path.join(source, "dataset.json")):
        files = sorted(os.path.join(d, f) for d, _, fs in os.walk(source) for f in fs
                       if f.lower().endswith(IMAGE_EXTENSIONS))
        tars = sorted(os.path.join(d, f) for d, _, fs in os.walk(source) for f in fs if f.endswith(".tar"))
        if files:
            return "files", files
        if tars:
            return "shards", tars
        raise DataError(f"{source}: no .png/.jpg/.jpeg images or .tar shards in the real-portrait folder")
    return "shards", resolve_shards(source, "train", cfg.allow_remote, cfg.allow_pipe)


# ---------------------------------------------------------------- seeding and splitting


class _Stream:
    """Who is reading (rank, worker) and how often this dataset was iterated here: the seed of every RNG."""

    def __init__(self, seed: int, rank: int, world_size: int):
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = -1

    def worker(self) -> tuple[int, int]:
        info = get_worker_info()
        return (info.id, info.num_workers) if info else (0, 1)

    def rng(self, purpose: str, per_reader: bool = True) -> random.Random:
        who = f"{self.rank}/{self.worker()[0]}" if per_reader else "all"
        # str seeds go through sha512: stable across processes and Python runs (unlike hash())
        return random.Random(f"relight.data/{self.seed}/{purpose}/{who}/{self.epoch}")

    def worker_seed(self) -> int:
        return self.rng("resample").randrange(2**31)


class _Pipeline(wds.DataPipeline):
    """DataPipeline that counts its epochs (iterations) for the seeds."""

    def __init__(self, stream: _Stream, *stages):
        super().__init__(*stages)
        self.stream = stream

    def iterator1(self):
        self.stream.epoch += 1
        return super().iterator1()


def _resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None and world_size is None:
        r, w, _, _ = wds.utils.pytorch_worker_info()  # torch.distributed, else RANK/WORLD_SIZE, else 0/1
        return r, w
    if rank is None or world_size is None:
        raise DataError(f"give both rank and world_size (got rank={rank}, world_size={world_size})")
    if not 0 <= rank < world_size:
        raise DataError(f"rank {rank} is not in [0, world_size={world_size})")
    return rank, world_size


def _split_by_node(src, rank: int, world_size: int):
    # wds.split_by_node asks torch.distributed at iteration time, inside the DataLoader
    # workers; rank and world size are resolved once in the main process (explicit
    # arguments win) and the shard list is sliced the same way.
    yield from islice(src, rank, None, world_size)


def _seeded_shuffle(src, stream: _Stream, purpose: str, bufsize: int, per_reader: bool = True):
    # wds.shuffle seeded per epoch: its own seed= argument would repeat one order every epoch
    yield from wds.shuffle(bufsize, initial=bufsize, rng=stream.rng(purpose, per_reader))(src)


def _shard_source(urls: list[str], stream: _Stream, cfg: DataConfig, shuffle: bool) -> list:
    if cfg.resampled:
        # each rank and worker draws its own shards with replacement: no node split needed,
        # and no rank can run dry and hang DDP (webdataset#188)
        return [wds.ResampledShards(urls, seed=cfg.seed, worker_seed=stream.worker_seed, deterministic=True)]
    if len(urls) < stream.world_size:
        raise DataError(f"{len(urls)} shard(s) for {stream.world_size} ranks: some ranks would get none and DDP "
                        "would hang; use resampled=True or more shards")
    stages: list = [wds.SimpleShardList(urls)]
    if shuffle:  # the same order on every rank and worker, so the slices below stay disjoint
        stages.append(functools.partial(_seeded_shuffle, stream=stream, purpose="shards", bufsize=len(urls),
                                        per_reader=False))
    stages += [functools.partial(_split_by_node, rank=stream.rank, world_size=stream.world_size),
               wds.split_by_worker]
    return stages


# ---------------------------------------------------------------- groups -> pairs -> tensors


def _check_group(sample: dict) -> dict:
    try:
        k = shard_format.check_fields(sample["__key__"], {f for f in sample if not f.startswith("__")})
    except ValueError as e:
        raise DataError(f"{sample.get('__url__')}: {e}") from None
    sample["__k__"] = k
    return sample


def _ordered_pairs(k: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(k) for j in range(k) if i != j]


def _pair_sample(g: dict, i: int, j: int, env_hdr: bool) -> dict:
    p = {"__key__": f"{g['__key__']}-{i:02d}-{j:02d}", "__url__": g["__url__"], "__pair__": (i, j, g["__k__"]),
         "json": g["json"], "mask.png": g["mask.png"], "input.png": g[shard_format.rgb_field(i)],
         "target.png": g[shard_format.rgb_field(j)], "env.png": g[shard_format.env_field(j)]}
    if env_hdr:
        p["env.exr"] = g[shard_format.env_field(j, hdr=True)]
    return p


def _pairs(src, stream: _Stream, per_group: int, env_hdr: bool):
    """Groups -> ordered pairs: ``per_group`` distinct (i, j), i != j, per visit of a group."""
    rng = stream.rng("pairs")
    for g in src:
        all_pairs = _ordered_pairs(g["__k__"])
        chosen = rng.sample(all_pairs, min(per_group, len(all_pairs)))
        for i, j in chosen:
            yield _pair_sample(g, i, j, env_hdr)


def _eval_pairs(src, seed: int, pairs: str | int, env_hdr: bool):
    for g in src:
        all_pairs = _ordered_pairs(g["__k__"])
        if pairs != "all":  # a fixed subset per group, independent of read order
            all_pairs = sorted(random.Random(f"relight.eval/{seed}/{g['__key__']}").sample(
                all_pairs, min(int(pairs), len(all_pairs))))
        for i, j in all_pairs:
            yield _pair_sample(g, i, j, env_hdr)


def _square(img: Image.Image, size: int, resample=Image.Resampling.BILINEAR) -> Image.Image:
    w, h = img.size
    if w != h:  # centre crop to the largest square
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
    if img.size != (size, size):
        img = img.resize((size, size), resample)
    return img


def _to_tensor(img: Image.Image) -> torch.Tensor:
    a = np.array(img)  # a writable copy (np.asarray of a PIL image is read-only)
    a = a[:, :, None] if a.ndim == 2 else a
    return torch.from_numpy(a).permute(2, 0, 1).float().div_(255.0)


def _rgb(img: Image.Image, what: str) -> Image.Image:
    if img.mode not in ("RGB", "RGBA", "L", "P", "I;16", "LA"):
        raise DataError(f"{what}: unsupported image mode {img.mode}")
    return img.convert("RGB")


def _env_hdr(hdr: np.ndarray, size: tuple[int, int], hdr_max: float) -> torch.Tensor:
    e = torch.from_numpy(np.clip(np.nan_to_num(hdr, nan=0.0, posinf=HALF_MAX), 0.0, None)).permute(2, 0, 1)[None]
    if e.shape[-2] >= size[0] and e.shape[-1] >= size[1]:
        e = F.interpolate(e, size=size, mode="area")  # radiance-preserving average of the covered pixels
    else:
        e = F.interpolate(e, size=size, mode="bilinear", align_corners=False)
    return (torch.log1p(10.0 * e) / float(np.log1p(10.0 * hdr_max)))[0].float()


def _pair_tensors(s: dict, cfg: DataConfig, stream: _Stream | None) -> dict:
    key, url = s["__key__"], s["__url__"]
    i, j, k = s["__pair__"]
    meta = s["json"]
    if not isinstance(meta, dict):
        raise DataError(f"{url}: sample {key}: json is not an object")
    where = f"{url}: sample {key}"
    inp, tgt = _rgb(s["input.png"], where), _rgb(s["target.png"], where)
    mask_img = s["mask.png"].convert("L")
    if not (inp.size == tgt.size == mask_img.size):
        raise DataError(f"{where}: render sizes differ ({inp.size}, {tgt.size}, mask {mask_img.size})")
    res = cfg.resolution
    inp_t, tgt_t = _to_tensor(_square(inp, res)), _to_tensor(_square(tgt, res))
    mask_t = _to_tensor(_square(mask_img, res))
    if cfg.mask_input:
        inp_t = inp_t * mask_t
    env_img = _rgb(s["env.png"], where)
    he, we = cfg.env_size
    env_t = _to_tensor(env_img if env_img.size == (we, he) else env_img.resize((we, he), Image.Resampling.BILINEAR))
    lightings = meta.get("lightings") or []
    if len(lightings) != k:
        raise DataError(f"{where}: json lists {len(lightings)} lightings, the sample has {k}")
    caption = ""
    if cfg.captions:
        caption = captions.synthetic_caption(meta, j, captions.light_direction(np.asarray(env_img)))
    worker = stream.worker()[0] if stream else 0
    out = {
        "input": inp_t, "env": env_t, "target": tgt_t, "mask": mask_t,
        "task": torch.tensor(0, dtype=torch.long), "caption": caption, "key": key,
        "meta": {"group_key": key.rsplit("-", 2)[0], "i": i, "j": j, "k": k, "split": meta.get("split"),
                 "hdri_in": lightings[i].get("hdri_asset_id"), "hdri_out": lightings[j].get("hdri_asset_id"),
                 "rotation_in": lightings[i].get("rotation_deg"), "rotation_out": lightings[j].get("rotation_deg"),
                 "shard": url, "rank": stream.rank if stream else 0, "worker": worker},
    }
    if cfg.env_hdr:
        out["env_hdr"] = _env_hdr(s["env.exr"], (he, we), cfg.env_hdr_max)
    return out


def _warn_and_skip(exn: Exception) -> bool:
    # wds.warn_and_continue sleeps 0.5 s after every warning: a few bad samples would stall training
    warnings.warn(str(exn).splitlines()[0] if str(exn) else repr(exn), stacklevel=2)
    return True


def _base_handler(cfg: DataConfig):
    return _warn_and_skip if cfg.skip_bad else wds.reraise_exception


def _decode_handler(cfg: DataConfig):
    base = _base_handler(cfg)

    def handler(exn: Exception) -> bool:
        if isinstance(exn, wds.autodecode.DecodingError) and exn.__cause__ is not None:
            cause = exn.__cause__
            msg = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
            msg = msg[len(f"{exn.k}: "):] if msg.startswith(f"{exn.k}: ") else msg  # the member is named once
            err = (UnsafeShardError if isinstance(cause, UnsafeShardError) else DataError)(
                f"{exn.url}: sample {exn.key}: member {exn.k}: {msg}")
            if isinstance(err, UnsafeShardError) or not cfg.skip_bad:
                raise err from None
            exn = err
        return raise_unsafe(base)(exn)
    return handler


def _synthetic_stages(cfg: DataConfig, handler, pair_stage) -> list:
    return [functools.partial(tar_samples, policy=cfg.read_policy(), handler=handler),
            wds.map(_check_group, handler=handler), pair_stage]


def _decoder(cfg: DataConfig):
    decode = functools.partial(decode_member, max_image_side=cfg.max_image_side)
    return wds.decode(decode, pre=[], post=[], handler=_decode_handler(cfg))


def _tensor_stages(cfg: DataConfig, stream: _Stream | None, handler) -> list:
    return [_decoder(cfg), wds.map(functools.partial(_pair_tensors, cfg=cfg, stream=stream), handler=handler)]


# ---------------------------------------------------------------- real portraits


def _read_image_files(src, cfg: DataConfig):
    # A folder of loose images has no webdataset reader (its readers take tar streams),
    # so this stage reads each file and its sidecar into a sample dict; names and
    # decoding then go through the same checks and decoder map as shard members.
    for item in src:
        path = item["url"]
        stem, ext = os.path.splitext(path)
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size > cfg.max_member_bytes:
                    raise UnsafeShardError(f"{path}: {os.fstat(f.fileno()).st_size} bytes, more than "
                                           f"max_member_bytes={cfg.max_member_bytes}; not read")
                sample = {"__key__": os.path.basename(stem), "__url__": path, ext[1:].lower(): f.read()}
            for side in ("txt", "json"):
                if os.path.exists(f"{stem}.{side}"):
                    with open(f"{stem}.{side}", "rb") as f:
                        sample[side] = f.read()
        except OSError as e:
            raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
        yield sample


def _real_tensors(s: dict, cfg: DataConfig) -> dict:
    where = f"{s.get('__url__')}: sample {s['__key__']}"
    images = [k for k in s if not k.startswith("__") and k.rsplit(".", 1)[-1] in ("png", "jpg", "jpeg")]
    if not images:
        raise DataError(f"{where}: no png/jpg member in a real-portrait sample")
    img = _square(_rgb(s[sorted(images)[0]], where), cfg.resolution)
    side = s.get("txt") if "txt" in s else s.get("json")
    res, (he, we) = cfg.resolution, cfg.env_size
    out = {
        "input": torch.zeros(3, res, res), "env": torch.zeros(3, he, we), "target": _to_tensor(img),
        "mask": torch.ones(1, res, res), "task": torch.tensor(1, dtype=torch.long),
        "caption": captions.real_caption(side) if cfg.captions else "", "key": s["__key__"],
        "meta": {"group_key": s["__key__"], "i": -1, "j": -1, "k": 0, "split": "real", "hdri_in": None,
                 "hdri_out": None, "rotation_in": None, "rotation_out": None, "shard": s.get("__url__"),
                 "rank": 0, "worker": 0},
    }
    if cfg.env_hdr:
        out["env_hdr"] = torch.zeros(3, he, we)
    return out


def _real_pipeline(cfg: DataConfig, rank: int, world_size: int, handler) -> _Pipeline:
    kind, urls = _real_files(cfg.real_portraits, cfg)
    stream = _Stream(cfg.seed + 1, rank, world_size)
    # always resampled: the real set is a side stream that must never run out before the synthetic one
    rcfg = dataclasses.replace(cfg, resampled=True)
    stages = _shard_source(urls, stream, rcfg, shuffle=False)
    if kind == "files":
        stages.append(functools.partial(_read_image_files, cfg=cfg))
    else:
        stages.append(functools.partial(tar_samples, policy=cfg.read_policy(), handler=handler))
    if cfg.shuffle_buffer:
        stages.append(functools.partial(_seeded_shuffle, stream=stream, purpose="real", bufsize=cfg.shuffle_buffer))
    stages += [_decoder(cfg), wds.map(functools.partial(_real_tensors, cfg=cfg), handler=handler)]
    return _Pipeline(stream, *stages)


class _SeededMix(IterableDataset):
    """wds.RandomMix with a seeded RNG.

    wds.RandomMix draws from the global ``random`` module, so its choices
    depend on whatever else used it; this copy draws from the stream's
    seeded RNG so the same seed mixes the same way. Stops when a source ends.
    """

    def __init__(self, datasets: list, probs: list[float], stream: _Stream):
        self.datasets, self.probs, self.stream = datasets, probs, stream

    def __iter__(self):
        self.stream.epoch += 1
        rng = self.stream.rng("mix")
        sources = [iter(d) for d in self.datasets]
        cum = np.cumsum(np.asarray(self.probs, dtype=np.float64) / sum(self.probs))
        while True:
            i = min(int(np.searchsorted(cum, rng.random(), side="right")), len(sources) - 1)
            try:
                yield next(sources[i])
            except StopIteration:
                return


# ---------------------------------------------------------------- public API


def make_dataset(source, split: str = "train", cfg: DataConfig = DataConfig(), rank: int | None = None,
                 world_size: int | None = None) -> IterableDataset:
    """An IterableDataset of single pairs (dicts of unbatched tensors), shuffled and seeded per ``cfg``.

    Real portraits are mixed in (``cfg.real_portraits``, ``cfg.real_ratio``) for the
    ``train`` split only. ``rank``/``world_size`` default to torch.distributed
    (or RANK/WORLD_SIZE); with ``resampled=False`` each rank reads a disjoint
    slice of the shards and each DataLoader worker a disjoint slice of that.
    """
    rank, world_size = _resolve_rank(rank, world_size)
    urls = resolve_shards(source, split, cfg.allow_remote, cfg.allow_pipe)
    stream = _Stream(cfg.seed, rank, world_size)
    handler = raise_unsafe(_base_handler(cfg))
    stages = _shard_source(urls, stream, cfg, shuffle=True)
    stages += _synthetic_stages(cfg, handler, functools.partial(
        _pairs, stream=stream, per_group=cfg.pairs_per_group, env_hdr=cfg.env_hdr))
    if cfg.shuffle_buffer:
        stages.append(functools.partial(_seeded_shuffle, stream=stream, purpose="pairs", bufsize=cfg.shuffle_buffer))
    stages += _tensor_stages(cfg, stream, handler)
    synthetic = _Pipeline(stream, *stages)
    if split != "train" or not cfg.real_portraits or cfg.real_ratio <= 0:
        return synthetic
    real = _real_pipeline(cfg, rank, world_size, handler)
    mix_stream = _Stream(cfg.seed + 2, rank, world_size)
    return wds.DataPipeline(_SeededMix([synthetic, real], [1.0 - cfg.real_ratio, cfg.real_ratio], mix_stream))


def collate(samples: list[dict]) -> dict:
    """Stack tensors; keep strings and dicts as lists (webdataset's ``__key__`` bookkeeping is dropped)."""
    out = {}
    for name in samples[0]:
        if name.startswith("__"):
            continue
        vals = [s[name] for s in samples]
        out[name] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
    return out


def make_loader(source, split: str = "train", cfg: DataConfig = DataConfig(), batch_size: int = 8,
                num_workers: int = 0, epoch_batches: int | None = None, rank: int | None = None,
                world_size: int | None = None) -> wds.WebLoader:
    """A WebLoader of collated batches (see the module docstring).

    Batches are formed inside the workers; ``epoch_batches`` is set on the
    loader (``with_epoch``), so an epoch is that many batches whatever the
    worker count (on the dataset it would count per worker, webdataset#303).
    With ``resampled=True`` and no ``epoch_batches`` the loader never ends; with
    ``resampled=False`` under DDP, give ``epoch_batches`` so that every rank
    yields the same number of batches (the loader then cycles its shards).
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    ds = make_dataset(source, split, cfg, rank, world_size)
    batched = wds.DataPipeline(ds, wds.batched(batch_size, collation_fn=collate, partial=not cfg.resampled))
    # persistent workers keep their dataset copies, so the epoch counter behind the seeds advances
    loader = wds.WebLoader(batched, batch_size=None, num_workers=num_workers,
                           persistent_workers=num_workers > 0, pin_memory=False)
    if epoch_batches is not None:
        if epoch_batches < 1:
            raise DataError(f"epoch_batches must be >= 1, got {epoch_batches}")
        loader = loader.with_epoch(epoch_batches)
    return loader


def iter_pairs(source, split: str = "test", cfg: DataConfig = DataConfig(), pairs: str | int = "all",
               batch_size: int | None = None) -> Iterator[dict]:
    """Deterministic evaluation pairs, in shard order, in this process: no shuffling, no resampling.

    ``pairs="all"`` yields every ordered pair (i, j), i != j, of each group
    once; an int yields that many per group (a fixed, seeded subset). Items
    are single pairs (unbatched tensors) or, with ``batch_size``, collated
    batches (the last one may be smaller).
    """
    if pairs != "all" and (not isinstance(pairs, int) or pairs < 1):
        raise DataError(f"pairs must be 'all' or a positive int, got {pairs!r}")
    urls = resolve_shards(source, split, cfg.allow_remote, cfg.allow_pipe)
    handler = raise_unsafe(_base_handler(cfg))
    stages = [wds.SimpleShardList(urls)]
    stages += _synthetic_stages(cfg, handler, functools.partial(
        _eval_pairs, seed=cfg.seed, pairs=pairs, env_hdr=cfg.env_hdr))
    stages += _tensor_stages(cfg, None, handler)
    if batch_size:
        stages.append(wds.batched(batch_size, collation_fn=collate, partial=True))
    return iter(wds.DataPipeline(*stages))
