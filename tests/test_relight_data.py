"""relight.data: pairs, tensors, seeds, splitting, epochs, mixing, captions and shard safety.

Shards come from tests/relight_fixtures.py (numpy spheres written by synthgen's
own writer) and, in the last test, from a tiny dataset that synthgen renders
with Blender.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
from collections import Counter, defaultdict

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
wds = pytest.importorskip("webdataset")

from relight import captions, data  # noqa: E402
from relight.shard_safety import DataError, UnsafeShardError, decode_member  # noqa: E402
from synthgen.format import codecs  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relight_fixtures  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RES, ENV = 32, (16, 32)  # the fixture's native sizes: no resampling, so tensors equal member bytes
K = 4


@pytest.fixture(scope="module")
def spheres(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("spheres") / "ds")
    relight_fixtures.make_sphere_dataset(out, groups=16, k=K, res=RES, env_width=ENV[1], shard_size=2)
    return out


def cfg(**kw) -> data.DataConfig:
    return data.DataConfig(**{"resolution": RES, "env_size": ENV, "shuffle_buffer": 16, **kw})


def members(ds: str) -> dict[str, dict[str, bytes]]:
    """Every sample of every shard of a dataset folder, read with plain tarfile: key -> field -> bytes."""
    out: dict[str, dict[str, bytes]] = defaultdict(dict)
    for d, _, files in os.walk(os.path.join(ds, "shards")):
        for f in files:
            with tarfile.open(os.path.join(d, f)) as tf:
                for m in tf.getmembers():
                    key, field = m.name.split(".", 1)
                    out[key][field] = tf.extractfile(m).read()
    return out


def png(b: bytes) -> np.ndarray:
    a = np.asarray(Image.open(io.BytesIO(b)), dtype=np.float32) / 255.0
    return a[..., None] if a.ndim == 2 else a


def chw(t) -> np.ndarray:
    return t.permute(1, 2, 0).numpy()


# ---------------------------------------------------------------- sources


def test_resolve_shards(spheres, tmp_path):
    meta = json.load(open(os.path.join(spheres, "dataset.json")))
    train = data.resolve_shards(spheres, "train")
    assert train == [os.path.join(spheres, s["path"]) for s in meta["splits"]["train"]["shards"]]
    assert len(train) == 6 and all(os.path.isfile(u) for u in train)
    assert data.resolve_shards(os.path.join(spheres, "dataset.json"), "val") == data.resolve_shards(spheres, "val")
    pattern = os.path.join(spheres, "shards", "train-{000000..000005}.tar")
    assert data.resolve_shards(pattern) == train
    assert data.resolve_shards([train[0], train[1]]) == train[:2]
    with pytest.raises(DataError, match="no 'holdout' split \\(has: test, train, val\\)"):
        data.resolve_shards(spheres, "holdout")
    with pytest.raises(DataError, match="train-000006.tar: no such shard \\(and 3 more\\)"):
        data.resolve_shards(os.path.join(spheres, "shards", "train-{000000..000009}.tar"))
    with pytest.raises(DataError, match="without dataset.json"):
        data.resolve_shards(str(tmp_path))


@pytest.mark.parametrize("url", ["https://example.com/train-{000..009}.tar", "s3://bucket/ds/", "gs://bucket/x.tar"])
def test_remote_urls_need_the_opt_in(url):
    with pytest.raises(DataError) as e:
        data.resolve_shards(url)
    msg = str(e.value)
    assert "allow_remote=True" in msg and url.split("{")[0] in msg and "\n" not in msg


def test_pipe_opt_in_reads_a_pipe(spheres):
    shard = data.resolve_shards(spheres, "test")[0]
    url = f"pipe:cat {shard}"
    with pytest.raises(DataError, match="allow_pipe=True"):
        data.make_dataset(url, cfg=cfg(allow_remote=True))  # allow_remote no longer runs shell commands
    pairs = list(data.iter_pairs(url, cfg=cfg(allow_pipe=True)))
    assert len(pairs) == 2 * K * (K - 1) and pairs[0]["meta"]["shard"] == url


# ---------------------------------------------------------------- pairs and tensors


def test_eval_pairs_cover_every_ordered_pair_once_in_shard_order(spheres):
    got = [(p["meta"]["group_key"], p["meta"]["i"], p["meta"]["j"]) for p in data.iter_pairs(spheres, "train", cfg())]
    groups = list(dict.fromkeys(g for g, _, _ in got))
    assert groups == sorted(groups) and len(groups) == 12  # the fixture's keys ascend with the shards
    for g in groups:
        pairs = [(i, j) for gg, i, j in got if gg == g]
        assert sorted(pairs) == [(i, j) for i in range(K) for j in range(K) if i != j]
    two = [(p["meta"]["group_key"], p["meta"]["i"], p["meta"]["j"]) for p in data.iter_pairs(spheres, "train", cfg(), pairs=2)]
    assert Counter(g for g, _, _ in two) == {g: 2 for g in groups}
    assert all(i != j for _, i, j in two)
    assert two == [(p["meta"]["group_key"], p["meta"]["i"], p["meta"]["j"])
                   for p in data.iter_pairs(spheres, "train", cfg(), pairs=2)]
    batches = list(data.iter_pairs(spheres, "test", cfg(), batch_size=5))
    assert [len(b["key"]) for b in batches] == [5, 5, 5, 5, 4]


def test_training_pairs_are_distinct_ordered_pairs(spheres):
    ds = data.make_dataset(spheres, cfg=cfg(resampled=False, shuffle_buffer=0, pairs_per_group=5))
    seen = defaultdict(list)
    for s in ds:
        seen[s["meta"]["group_key"]].append((s["meta"]["i"], s["meta"]["j"]))
    assert len(seen) == 12
    for pairs in seen.values():
        assert len(pairs) == 5 == len(set(pairs)) and all(i != j for i, j in pairs)


def test_batch_shapes_ranges_and_members(spheres):
    loader = data.make_loader(spheres, "train", cfg(env_hdr=True), batch_size=4, epoch_batches=2)
    batches = list(loader)
    assert len(batches) == 2
    b = batches[0]
    assert b["input"].shape == b["target"].shape == (4, 3, RES, RES)
    assert b["mask"].shape == (4, 1, RES, RES) and b["env"].shape == b["env_hdr"].shape == (4, 3, *ENV)
    for name in ("input", "target", "mask", "env", "env_hdr"):
        t = b[name]
        assert t.dtype == torch.float32 and 0.0 <= float(t.min()) and float(t.max()) <= 1.0, name
    assert b["task"].dtype == torch.long and b["task"].tolist() == [0] * 4
    assert len(b["caption"]) == len(b["key"]) == len(b["meta"]) == 4
    assert all(c.startswith("a portrait of a person") and " lit " in c for c in b["caption"])
    assert all(m["i"] != m["j"] and m["split"] == "train" for m in b["meta"])
    resized = next(iter(data.make_loader(spheres, "train", cfg(resolution=48, env_size=(24, 24)), batch_size=2)))
    assert resized["input"].shape == (2, 3, 48, 48) and resized["env"].shape == (2, 3, 24, 24)


def test_input_is_masked_and_env_target_are_the_target_lighting(spheres):
    raw = members(spheres)
    for mask_input in (True, False):
        for s in data.iter_pairs(spheres, "val", cfg(env_hdr=True, mask_input=mask_input)):
            m, (i, j) = raw[s["meta"]["group_key"]], (s["meta"]["i"], s["meta"]["j"])
            mask = png(m["mask.png"])
            rgb_i = png(m[f"rgb_{i:02d}.png"])
            assert np.allclose(chw(s["mask"]), mask)
            assert np.allclose(chw(s["input"]), rgb_i * mask if mask_input else rgb_i, atol=1e-6)
            assert np.array_equal(chw(s["target"]), png(m[f"rgb_{j:02d}.png"]))
            assert np.array_equal(chw(s["env"]), png(m[f"env_{j:02d}.png"]))
            assert not np.array_equal(chw(s["env"]), png(m[f"env_{i:02d}.png"]))
            hdr = codecs.exr_from_bytes(m[f"env_{j:02d}.exr"])
            expect = np.log1p(10 * hdr) / np.log1p(10 * 65504.0)
            assert np.allclose(chw(s["env_hdr"]), expect, atol=1e-5)
            if mask_input:
                assert float(s["input"][:, s["mask"][0] == 0].abs().max()) == 0.0  # black outside the head


# ---------------------------------------------------------------- seeds, splitting, epochs


def first_batches(spheres, n=3, workers=0, **kw):
    loader = data.make_loader(spheres, "train", cfg(**kw), batch_size=4, num_workers=workers, epoch_batches=n)
    return [list(loader) for _ in range(2)]  # two epochs


def test_same_seed_same_batches(spheres):
    a, b = first_batches(spheres, seed=7), first_batches(spheres, seed=7)
    for ea, eb in zip(a, b):
        for x, y in zip(ea, eb):
            assert x["key"] == y["key"] and torch.equal(x["input"], y["input"]) and torch.equal(x["env"], y["env"])
    keys = lambda e: [k for x in e for k in x["key"]]  # noqa: E731
    assert keys(a[0]) != keys(a[1])  # the next epoch draws anew
    assert keys(first_batches(spheres, seed=8)[0]) != keys(a[0])
    w0, w1 = first_batches(spheres, workers=2, seed=7), first_batches(spheres, workers=2, seed=7)
    assert [keys(e) for e in w0] == [keys(e) for e in w1]


def test_node_and_worker_splitting_is_disjoint(spheres):
    train = set(data.resolve_shards(spheres, "train"))
    per_rank = []
    for rank in range(2):
        ds = data.make_dataset(spheres, cfg=cfg(resampled=False), rank=rank, world_size=2)
        per_rank.append({s["meta"]["shard"] for s in ds})
    assert per_rank[0].isdisjoint(per_rank[1]) and per_rank[0] | per_rank[1] == train
    assert len(per_rank[0]) == len(per_rank[1]) == 3
    loader = data.make_loader(spheres, "train", cfg(resampled=False), batch_size=2, num_workers=2)
    by_worker = defaultdict(set)
    for b in loader:
        for m in b["meta"]:
            by_worker[m["worker"]].add(m["shard"])
    assert set(by_worker) == {0, 1} and by_worker[0].isdisjoint(by_worker[1]) and by_worker[0] | by_worker[1] == train
    with pytest.raises(DataError, match="1 shard\\(s\\) for 2 ranks"):
        data.make_dataset(spheres, "test", cfg(resampled=False), rank=0, world_size=2)
    with pytest.raises(DataError, match="rank 2 is not in"):
        data.make_dataset(spheres, cfg=cfg(), rank=2, world_size=2)


def test_rank_defaults_to_the_environment_and_resampled_ranks_differ(spheres, monkeypatch):
    explicit = [s["key"] for s in data.make_dataset(spheres, cfg=cfg(resampled=False), rank=1, world_size=2)]
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert [s["key"] for s in data.make_dataset(spheres, cfg=cfg(resampled=False))] == explicit
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    first = [[s["key"] for _, s in zip(range(8), data.make_dataset(spheres, cfg=cfg(), rank=r, world_size=2))]
             for r in (0, 1)]
    assert first[0] != first[1]


def test_with_epoch_is_counted_on_the_loader(spheres):
    for resampled in (True, False):
        loader = data.make_loader(spheres, "train", cfg(resampled=resampled), batch_size=4, num_workers=2,
                                  epoch_batches=7)
        assert [sum(1 for _ in loader) for _ in range(2)] == [7, 7]  # not 7 per worker (webdataset#303)


# ---------------------------------------------------------------- real portraits


def test_real_portraits_are_mixed_in_at_the_ratio(spheres, tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "real"
    folder.mkdir()
    for n in range(6):
        Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(folder / f"p{n}.jpg")
    (folder / "p0.txt").write_text("a man with a beard")
    (folder / "p1.json").write_text(json.dumps({"caption": "a woman in a red coat"}))
    c = cfg(real_portraits=str(folder), real_ratio=0.3)
    loader = data.make_loader(spheres, "train", c, batch_size=10, epoch_batches=40)
    tasks, real_caps = [], set()
    for b in loader:
        tasks += b["task"].tolist()
        for n, t in enumerate(b["task"].tolist()):
            if t == 1:
                real_caps.add(b["caption"][n])
                assert float(b["input"][n].abs().max()) == 0 and float(b["env"][n].abs().max()) == 0
                assert float(b["mask"][n].min()) == 1.0 and b["target"][n].shape == (3, RES, RES)
    assert 0.23 < np.mean(tasks) < 0.37, np.mean(tasks)
    assert {"a man with a beard", "a woman in a red coat", captions.GENERIC_REAL} <= real_caps
    # validation never mixes
    assert all(t == 0 for b in data.make_loader(spheres, "val", c, batch_size=4, epoch_batches=3)
               for t in b["task"].tolist())
    # real portraits from shards work the same way
    shard = tmp_path / "real-000000.tar"
    with wds.TarWriter(str(shard)) as w:
        for n in range(3):
            w.write({"__key__": f"r{n}", "png": codecs.png_bytes(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)),
                     "txt": b"from a shard"})
    b = next(iter(data.make_loader(spheres, "train", cfg(real_portraits=str(shard), real_ratio=0.5),
                                   batch_size=32, epoch_batches=1)))
    assert "from a shard" in b["caption"]
    with pytest.raises(DataError, match="needs real_portraits"):
        cfg(real_ratio=0.3)


# ---------------------------------------------------------------- safety


class _Boom:
    """Unpickling this creates a directory: the test's proof that nothing was unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def write_tar(path, files: dict[str, bytes]) -> str:
    with tarfile.open(path, "w") as tf:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
    return str(path)


def good_group(spheres) -> dict[str, bytes]:
    key, fields = next(iter(members(spheres).items()))
    return {f"{key}.{f}": b for f, b in fields.items()}


@pytest.mark.parametrize("evil", ["../evil.json", "/tmp/evil.png", "a/../../evil.png", "x\\..\\evil.png"])
def test_escaping_member_names_are_rejected(spheres, tmp_path, evil):
    tar = write_tar(tmp_path / "evil.tar", {**good_group(spheres), evil: b"{}"})
    for read in (lambda: list(data.iter_pairs(tar, cfg=cfg())),
                 lambda: next(iter(data.make_dataset(tar, cfg=cfg(skip_bad=True))))):
        with pytest.raises(UnsafeShardError) as e:
            read()
        assert str(e.value).startswith(f"{tar}: member {evil!r}") and "\n" not in str(e.value)


@pytest.mark.parametrize("ext", ["pyd", "pickle", "pth", "npy", "mp"])
def test_pickle_members_are_never_decoded(spheres, tmp_path, ext):
    marker = str(tmp_path / "unpickled")
    payload = pickle.dumps(_Boom(marker))
    group = good_group(spheres)
    key = next(iter(group)).split(".")[0]
    tar = write_tar(tmp_path / "pickle.tar", {**group, f"{key}.extra.{ext}": payload})
    with pytest.raises(UnsafeShardError, match=f"{key}.extra.{ext}'.*not read"):
        list(data.iter_pairs(tar, cfg=cfg(skip_bad=True)))
    with pytest.raises(UnsafeShardError, match=f"no decoder for .{ext}"):
        decode_member(f".extra.{ext}", payload)
    real = tmp_path / "real"
    real.mkdir()
    write_tar(real / "r.tar", {"r0.png": codecs.png_bytes(np.zeros((8, 8, 3), np.uint8)), f"r0.{ext}": payload})
    with pytest.raises(UnsafeShardError):
        next(iter(data.make_dataset(spheres, cfg=cfg(real_portraits=str(real), real_ratio=0.9))))
    assert not os.path.exists(marker)


def test_bad_shards_give_one_line_errors(spheres, tmp_path):
    group = good_group(spheres)
    key = next(iter(group)).split(".")[0]
    missing = write_tar(tmp_path / "missing.tar", {k: v for k, v in group.items() if not k.endswith("mask.png")})
    with pytest.raises(DataError, match=f"missing.tar: sample {key}: missing mask.png"):
        list(data.iter_pairs(missing, cfg=cfg()))
    corrupt = write_tar(tmp_path / "corrupt.tar", {**group, f"{key}.rgb_01.png": b"\x89PNG not really"})
    with pytest.raises(DataError) as e:
        list(data.iter_pairs(corrupt, cfg=cfg()))
    msg = str(e.value)
    assert f"corrupt.tar: sample {key}-" in msg and ("member input.png" in msg or "member target.png" in msg), msg
    with pytest.warns(UserWarning, match="corrupt.tar: sample"):
        assert len(list(data.iter_pairs(corrupt, cfg=cfg(skip_bad=True)))) == K * (K - 1) - 2 * (K - 1)
    shard = data.resolve_shards(spheres, "test")[0]
    trunc = tmp_path / "trunc.tar"
    trunc.write_bytes(open(shard, "rb").read()[:3000])
    with pytest.raises(DataError, match="trunc.tar"):
        list(data.iter_pairs(str(trunc), cfg=cfg()))
    with pytest.raises(DataError, match="unknown key 'resolutoin'"):
        data.DataConfig.from_dict({"resolutoin": 64})


# ---------------------------------------------------------------- captions and the fixture


def test_captions_follow_the_metadata():
    from assets_manifest.heads.appearance import FITZPATRICK_MELANIN_EDGES
    from assets_manifest.heads.params import HAIR_MIN_COVERAGE

    assert captions.FITZPATRICK_MELANIN_EDGES == FITZPATRICK_MELANIN_EDGES
    assert captions.HAIR_MIN_COVERAGE == HAIR_MIN_COVERAGE
    meta = {"head": {"params": json.dumps({"melanin": 0.02, "hair_melanin": 0.5, "hair_redness": 0.7,
                                           "hair_coverage": 0.9, "smile": 0.6})},
            "lightings": [{"hdri_name": "studio_3"}, {"hdri_name": "sunset"}]}
    env = np.full((16, 32, 3), 10, np.uint8)
    env[6:9, 23:25] = 255  # a bright patch at u = 0.75: light from image right
    az, el = captions.light_direction(env)
    assert 60 < az < 120 and abs(el) < 20
    cap = captions.synthetic_caption(meta, 0, (az, el))
    assert cap == "a portrait of a person with very fair skin and auburn hair, smiling, lit from the right by studio softboxes"
    assert captions.synthetic_caption(meta, 1) == captions.synthetic_caption(meta, 1).strip()
    assert captions.synthetic_caption(meta, 1).endswith("lit by sunset light")
    assert captions.synthetic_caption({"head": {"params": None}}, 0) == "a portrait of a person, lit by environment light"
    old = dict(meta, lightings=[{"hdri_uri": "/x/hdri/procedural/studio_3.exr"},  # relight-wds/1
                                {"hdri_uri": "/x/hdri/blender/sunset.exr"}])
    assert [captions.synthetic_caption(old, j) for j in (0, 1)] == [captions.synthetic_caption(meta, j) for j in (0, 1)]
    assert captions.direction_words(-170, 0) == "behind" and captions.direction_words(-90, 40) == "the upper left"
    assert captions.light_direction(np.full((16, 32, 3), 200, np.uint8)) is None  # uniform light: no direction
    # an ICT-FaceKit head: skin model under appearance (its unused hair not described), ARKit expression weights
    ict = {"head": {"params": json.dumps({"appearance": {"melanin": 0.3, "hair_melanin": 0.5, "hair_coverage": 0.9},
                                          "expression_weights": {"mouthSmile_L": 0.7, "jawOpen": 0.2}})},
           "lightings": meta["lightings"]}
    assert captions.synthetic_caption(ict, 1) == ("a portrait of a person with "
                                                  f"{captions.skin_words(0.3)} skin, smiling, lit by sunset light")


def _as_relight_wds_1(ds: str, out) -> str:
    """A copy of dataset ``ds`` as synthgen wrote it before relight-wds/2: each lighting's HDRI as an absolute path."""
    shutil.copytree(ds, out)
    meta = json.load(open(out / "dataset.json"))
    (out / "dataset.json").write_text(json.dumps(dict(meta, format="relight-wds/1")))
    for tar in (out / "shards").iterdir():
        with tarfile.open(tar) as src:
            items = [(m, src.extractfile(m).read()) for m in src.getmembers()]
        with tarfile.open(tar, "w") as dst:
            for m, body in items:
                if m.name.endswith(".json"):
                    j = json.loads(body)
                    j["format"] = "relight-wds/1"
                    j["lightings"] = [{**{k: v for k, v in lt.items() if k != "hdri_name"},
                                       "hdri_uri": f"/old/catalog/hdri/{lt['hdri_name']}.exr"} for lt in j["lightings"]]
                    body = json.dumps(j, sort_keys=True).encode()
                    m.size = len(body)
                dst.addfile(m, io.BytesIO(body))
    return str(out)


def test_reads_relight_wds_1_datasets_and_refuses_other_formats(spheres, tmp_path):
    """A relight-wds/1 dataset reads as before; its hdri_uri gives the same caption as relight-wds/2's hdri_name."""
    old = _as_relight_wds_1(spheres, tmp_path / "v1")
    new_pairs, old_pairs = list(data.iter_pairs(spheres, "val", cfg())), list(data.iter_pairs(old, "val", cfg()))
    assert len(old_pairs) == len(new_pairs) > 0
    for a, b in zip(new_pairs, old_pairs):
        assert a["caption"] == b["caption"] and "environment light" not in a["caption"]  # the map's name was read
        assert torch.equal(a["target"], b["target"]) and torch.equal(a["env"], b["env"])
    meta = json.load(open(os.path.join(old, "dataset.json")))
    with open(os.path.join(old, "dataset.json"), "w") as f:
        json.dump(dict(meta, format="relight-wds/3"), f)
    with pytest.raises(DataError) as e:
        data.resolve_shards(old, "val")
    assert str(e.value) == (f"{os.path.join(old, 'dataset.json')}: format 'relight-wds/3'; "
                            "this version reads relight-wds/1 and relight-wds/2")


def test_fixture_shading_follows_the_camera_frame_env():
    env = np.full((16, 32, 3), 0.02, np.float32)
    env[6:10, 22:26] = 50.0  # u ~ 0.75: from image right
    rgba = relight_fixtures.shade_sphere(env, np.array([0.5, 0.5, 0.5]), 32, specular=0.0)
    lum = rgba[..., :3].mean(-1)
    assert lum[:, 20:].mean() > 5 * lum[:, :12].mean()
    env2 = np.full((16, 32, 3), 0.02, np.float32)
    env2[0:3] = 50.0  # top rows: from above
    lum2 = relight_fixtures.shade_sphere(env2, np.array([0.5, 0.5, 0.5]), 32, specular=0.0)[..., :3].mean(-1)
    assert lum2[:12].mean() > 5 * lum2[20:].mean()


# ---------------------------------------------------------------- shards rendered by Blender


def test_reads_shards_synthgen_rendered_with_blender(blender_dataset):
    out = blender_dataset
    raw = members(out)
    pairs = list(data.iter_pairs(out, "train", cfg(env_hdr=True)))
    assert len(pairs) == 2 * 4 * 3
    for s in pairs[:6]:
        m, (i, j) = raw[s["meta"]["group_key"]], (s["meta"]["i"], s["meta"]["j"])
        mask = png(m["mask.png"])
        assert 0.05 < mask.mean() < 0.95  # a head in the frame
        assert np.allclose(chw(s["input"]), png(m[f"rgb_{i:02d}.png"]) * mask, atol=1e-6)
        assert np.array_equal(chw(s["target"]), png(m[f"rgb_{j:02d}.png"]))
        assert np.array_equal(chw(s["env"]), png(m[f"env_{j:02d}.png"]))
        assert s["caption"].startswith("a portrait of a person")
        assert s["caption"].endswith(tuple(captions.PROCEDURAL_LIGHT.values()))  # from the map's name (train maps)
    batch = next(iter(data.make_loader(out, "train", cfg(resolution=24, env_size=(12, 12)), batch_size=3,
                                       num_workers=1, epoch_batches=1)))
    assert batch["input"].shape == (3, 3, 24, 24) and batch["env"].shape == (3, 3, 12, 12)
    assert [p["meta"]["split"] for p in data.iter_pairs(out, "test", cfg())] == ["test"] * 12
