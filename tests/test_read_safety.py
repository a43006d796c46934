"""Reading untrusted shards (issue 13, finding 5): pipe: opt-in, compressed streams, size limits, links, and
the shard paths of a dataset.json in `synthgen inspect`.

Every test reads real tar files (a synthgen dataset of numpy spheres from
tests/relight_fixtures.py, or tars written here with tarfile) through the real
loader, `relight` CLI or `synthgen inspect`.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import shutil
import struct
import subprocess
import sys
import tarfile

import pytest

torch = pytest.importorskip("torch")
wds = pytest.importorskip("webdataset")

from relight import cli, data  # noqa: E402
from relight.shard_safety import DataError, ReadPolicy, UnsafeShardError, exr_size  # noqa: E402
from tests.relight_fixtures import make_sphere_dataset  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
K = 3
PAIRS = 2 * K * (K - 1)  # a test shard holds two groups


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("safety") / "ds")
    make_sphere_dataset(out, groups={"train": 2, "val": 1, "test": 2}, k=K, res=32, shard_size=2)
    return out


@pytest.fixture(scope="module")
def shard(ds) -> str:
    return data.resolve_shards(ds, "test")[0]


def cfg(**kw) -> data.DataConfig:
    return data.DataConfig(**{"resolution": 32, "env_size": (16, 32), "shuffle_buffer": 0, **kw})


def relight(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "relight.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=ENV, timeout=300)


def one_line_error(r: subprocess.CompletedProcess) -> str:
    err = r.stderr.strip()
    assert r.returncode == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), r.stderr[-2000:]
    return err


def members(shard: str) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(shard) as tf:
        return [(m, tf.extractfile(m).read()) for m in tf.getmembers()]


def rewrite(shard: str, out: str, edit=None, extra: list[tuple[tarfile.TarInfo, bytes | None]] = ()) -> str:
    """Copy a shard member by member (``edit(name, bytes) -> bytes``), then append ``extra`` members."""
    with tarfile.open(out, "w") as tf:
        for info, body in members(shard):
            body = edit(info.name, body) if edit else body
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
        for info, body in extra:
            tf.addfile(info, io.BytesIO(body) if body is not None else None)
    return out


def first_key(shard: str) -> str:
    return members(shard)[0][0].name.split(".")[0]


# ---------------------------------------------------------------- 1. pipe: is its own opt-in


def test_pipe_urls_need_allow_pipe_not_allow_remote(shard):
    url = f"pipe:cat {shard}"
    for c in (cfg(), cfg(allow_remote=True)):
        for read in (lambda: data.make_dataset(url, cfg=c), lambda: list(data.iter_pairs(url, cfg=c))):
            with pytest.raises(DataError) as e:
                read()
            msg = str(e.value)
            assert msg.startswith(f"{url}: pipe: URL refused") and "allow_pipe=True" in msg and "\n" not in msg
    # the opt-in reads it, without allow_remote
    pairs = list(data.iter_pairs(url, cfg=cfg(allow_pipe=True)))
    assert len(pairs) == PAIRS and pairs[0]["meta"]["shard"] == url
    # real portraits go through the same check
    with pytest.raises(DataError, match="allow_pipe=True"):
        data.make_dataset(shard, cfg=cfg(allow_remote=True, real_portraits=url, real_ratio=0.5))
    # http(s) still needs allow_remote, and allow_pipe does not grant it
    with pytest.raises(DataError, match="allow_remote=True"):
        data.resolve_shards("https://example.com/x.tar", allow_pipe=True)


def test_cli_pipe_needs_allow_pipe(shard, tmp_path):
    url = f"pipe:cat {shard}"
    out = str(tmp_path / "r.png")
    err = one_line_error(relight("extract", "--shards", url, "--allow-remote", "--out", out))
    assert url in err and "--allow-pipe" in err and not os.path.exists(out)
    r = relight("extract", "--shards", url, "--allow-pipe", "--out", out)
    assert r.returncode == 0 and os.path.isfile(out), r.stderr[-2000:]
    err = one_line_error(relight("train", "--shards", url, "--allow-remote", "--out", str(tmp_path / "run"),
                                 "--max-steps", "1"))
    assert url in err and "--allow-pipe" in err


def test_every_command_that_reads_shards_takes_the_read_flags(tmp_path):
    flags = ["--allow-remote", "--allow-pipe", "--allow-compressed", "--max-member-mb", "2", "--max-image-side", "64"]
    expect = ReadPolicy(allow_remote=True, allow_pipe=True, allow_compressed=True, max_member_bytes=2 << 20,
                        max_image_side=64)
    parser = cli.build_parser()
    for cmd in (["train", "--shards", "x", "--out", "o"], ["eval", "--model", "m", "--shards", "x", "--out", "o"],
                ["extract", "--shards", "x", "--out", "o.png"]):
        assert cli._read_policy(parser.parse_args(cmd + flags)) == expect, cmd
        assert cli._read_policy(parser.parse_args(cmd)) == ReadPolicy(), cmd


# ---------------------------------------------------------------- 2. compressed streams


COMPRESSORS = {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress,
               "zstd": lambda b: b"\x28\xb5\x2f\xfd" + b"\x00" * 64}  # zstd: the magic is enough to refuse


@pytest.mark.parametrize("kind", list(COMPRESSORS))
def test_compressed_shards_are_refused_unless_allowed(shard, tmp_path, kind):
    packed = tmp_path / f"s.tar.{kind}"
    packed.write_bytes(COMPRESSORS[kind](open(shard, "rb").read()))
    with pytest.raises(UnsafeShardError) as e:
        list(data.iter_pairs(str(packed), cfg=cfg(skip_bad=True)))  # never skipped
    msg = str(e.value)
    assert msg.startswith(f"{packed}: {kind}-compressed shard refused") and "allow_compressed=True" in msg
    assert "\n" not in msg
    if kind != "zstd":  # tarfile reads zstd from Python 3.14 on
        assert len(list(data.iter_pairs(str(packed), cfg=cfg(allow_compressed=True)))) == PAIRS


def test_cli_compressed_shard_needs_allow_compressed(shard, tmp_path):
    packed = tmp_path / "s.tar.gz"
    packed.write_bytes(gzip.compress(open(shard, "rb").read()))
    out = str(tmp_path / "r.png")
    err = one_line_error(relight("extract", "--shards", str(packed), "--out", out))
    assert str(packed) in err and "gzip" in err and "--allow-compressed" in err
    r = relight("extract", "--shards", str(packed), "--allow-compressed", "--out", out)
    assert r.returncode == 0 and os.path.isfile(out), r.stderr[-2000:]


# ---------------------------------------------------------------- 3. size limits


def test_member_size_is_checked_from_the_header_before_reading(shard, tmp_path):
    # a header that claims 300 MiB with no data behind it: refused from the header (default limit),
    # not "unexpected end of data" after trying to read it
    key = first_key(shard)
    big = tarfile.TarInfo(f"{key}.albedo.png")
    big.size = 300 << 20
    with tarfile.open(shard) as tf:
        last = tf.getmembers()[-1]
    end = last.offset_data + -(-last.size // 512) * 512  # after the last member's data: no end-of-archive blocks
    tar = tmp_path / "big.tar"
    tar.write_bytes(open(shard, "rb").read()[:end] + big.tobuf(tarfile.PAX_FORMAT) + b"\0" * 4096)
    with pytest.raises(UnsafeShardError) as e:
        list(data.iter_pairs(str(tar), cfg=cfg(skip_bad=True)))
    msg = str(e.value)
    assert msg.startswith(f"{tar}: member '{key}.albedo.png': {300 << 20} bytes, more than max_member_bytes="
                          f"{256 << 20}") and "\n" not in msg
    # a lower limit refuses a real member, naming it; the default reads the shard
    with pytest.raises(UnsafeShardError, match=r"\.env_00\.exr': \d+ bytes, more than max_member_bytes=1000"):
        list(data.iter_pairs(shard, cfg=cfg(max_member_bytes=1000)))
    assert len(list(data.iter_pairs(shard, cfg=cfg()))) == PAIRS
    with pytest.raises(DataError, match="max_member_bytes must be an integer >= 1"):
        cfg(max_member_bytes=0)


def _with_data_window(exr: bytes, width: int, height: int) -> bytes:
    tag = b"dataWindow\x00box2i\x00" + struct.pack("<i", 16)
    at = exr.index(tag) + len(tag)
    return exr[:at] + struct.pack("<4i", 0, 0, width - 1, height - 1) + exr[at + 16:]


def test_exr_dimensions_are_checked_before_decoding(shard, tmp_path):
    exr = next(b for i, b in members(shard) if i.name.endswith(".env_01.exr"))
    assert exr_size(exr) == (32, 16)
    # the header says 9000 x 1 (the pixels are still 32 x 16): refused from the header, naming shard and member
    forged = rewrite(shard, str(tmp_path / "wide.tar"),
                     lambda n, b: _with_data_window(b, 9000, 1) if n.endswith(".exr") else b)
    with pytest.raises(UnsafeShardError) as e:
        list(data.iter_pairs(forged, cfg=cfg(env_hdr=True, skip_bad=True)))
    msg = str(e.value)
    assert msg.startswith(f"{forged}: sample ") and "member env.exr: EXR of 9000x1 pixels, larger than " \
        "max_image_side=8192" in msg and "\n" not in msg
    # the limit is configurable and covers PNGs too; the fixture's 32 x 16 maps pass the default
    with pytest.raises(UnsafeShardError, match="PNG of 32x32 pixels, larger than max_image_side=31"):
        list(data.iter_pairs(shard, cfg=cfg(max_image_side=31)))
    assert len(list(data.iter_pairs(shard, cfg=cfg(env_hdr=True)))) == PAIRS
    with pytest.raises(DataError, match="truncated OpenEXR header"):
        exr_size(exr[:40])


def test_cli_size_flags(shard, tmp_path, capsys):
    out = str(tmp_path / "r.png")
    assert cli.main(["extract", "--shards", shard, "--max-member-mb", "0.001", "--out", out]) == 1  # bad shard
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and shard in err and "more than max_member_bytes=1048" in err
    assert cli.main(["extract", "--shards", shard, "--max-image-side", "16", "--out", out]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "32x32 pixels, larger than max_image_side=16" in err
    assert cli.main(["extract", "--shards", shard, "--max-member-mb", "0", "--out", out]) == 2
    assert "--max-member-mb 0: must be > 0" in capsys.readouterr().err
    # train passes them to the data config
    assert cli.main(["train", "--shards", shard, "--out", str(tmp_path / "run"), "--max-steps", "1",
                     "--max-member-mb", "0.001"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error: " in line]  # after tqdm's bar
    assert len(errors) == 1 and "more than max_member_bytes=1048" in errors[0]


# ---------------------------------------------------------------- 4. links and other non-regular members


def _link(kind: str, name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = {"symlink": tarfile.SYMTYPE, "hard link": tarfile.LNKTYPE, "device": tarfile.FIFOTYPE}[kind]
    info.linkname = target
    return info


@pytest.mark.parametrize("kind", ["symlink", "hard link", "device"])
def test_links_and_other_non_regular_members_are_refused(shard, tmp_path, kind):
    key = first_key(shard)
    name = f"{key}.albedo.png"
    tar = rewrite(shard, str(tmp_path / "links.tar"),
                  extra=[(_link(kind, name, "/etc/passwd" if kind == "symlink" else f"{key}.mask.png"), None)])
    with pytest.raises(UnsafeShardError) as e:
        list(data.iter_pairs(tar, cfg=cfg(skip_bad=True)))  # never skipped
    msg = str(e.value)
    assert msg.startswith(f"{tar}: member {name!r}: {kind}") and "refused" in msg and "\n" not in msg
    if kind == "symlink":
        assert "'/etc/passwd'" in msg


def test_directory_members_are_skipped(shard, tmp_path):
    # a tar made with `tar cf x.tar folder/` lists the folder itself: no data, nothing to refuse
    folder = tarfile.TarInfo("portraits")
    folder.type = tarfile.DIRTYPE
    tar = rewrite(shard, str(tmp_path / "dirs.tar"), extra=[(folder, None)])
    assert len(list(data.iter_pairs(tar, cfg=cfg()))) == len(list(data.iter_pairs(shard, cfg=cfg())))


def test_cli_refuses_a_symlink_member(shard, tmp_path, capsys):
    key = first_key(shard)
    tar = rewrite(shard, str(tmp_path / "links.tar"), extra=[(_link("symlink", f"{key}.x.png", "/etc/passwd"), None)])
    assert cli.main(["extract", "--shards", tar, "--key", "none", "--out", str(tmp_path / "r.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and tar in err and f"'{key}.x.png': symlink to '/etc/passwd' refused" in err


# ---------------------------------------------------------------- 5. dataset.json shard paths


def with_test_shards(meta: dict, shards: list[dict]) -> dict:
    """``meta`` with the test split listing ``shards``, its counts kept consistent (the reader checks them)."""
    test = dict(meta["splits"]["test"], shards=shards, groups=sum(s["groups"] for s in shards))
    written = meta["counts"]["written"] - meta["splits"]["test"]["groups"] + test["groups"]
    counts = dict(meta["counts"], written=written, planned=written + meta["counts"]["failed"])
    return dict(meta, splits=dict(meta["splits"], test=test), counts=counts)


def test_inspect_and_the_loader_refuse_shard_paths_outside_the_dataset(ds, tmp_path):
    copy = str(tmp_path / "ds")
    shutil.copytree(ds, copy)
    meta = json.load(open(os.path.join(copy, "dataset.json")))
    good = meta["splits"]["test"]["shards"][0]
    outside = str(tmp_path / "outside.tar")  # a valid shard with the right sha256, outside the folder
    shutil.copyfile(os.path.join(copy, good["path"]), outside)
    evil = [outside, "../outside.tar", f"file://{outside}", f"pipe:cat {outside}"]
    meta = with_test_shards(meta, [dict(good, path=p) for p in evil])
    meta["splits"]["val"]["shards"] = [dict(s, path=f"file://{copy}/{s['path']}")  # the folder's own URL: fine
                                       for s in meta["splits"]["val"]["shards"]]
    json.dump(meta, open(os.path.join(copy, "dataset.json"), "w"))
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", "inspect", copy], capture_output=True, text=True,
                       cwd=ROOT, env=ENV, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[-1] == f"error: {copy}: {len(evil)} problem(s)"
    for p, line in zip(evil, lines):
        assert line.startswith(f"{copy}/dataset.json: split 'test': shard path {p!r}") and "not opened" in line
    # relight's reader applies the same check
    for p in evil:
        with open(os.path.join(copy, "dataset.json"), "w") as f:
            json.dump(with_test_shards(meta, [dict(good, path=p)]), f)
        with pytest.raises(DataError) as e:
            data.resolve_shards(copy, "test", allow_pipe=True, allow_remote=True)
        assert f"shard path {p!r}" in str(e.value) and "inside the dataset folder" in str(e.value)
    assert data.resolve_shards(copy, "val") == [p.replace(ds, copy, 1) for p in data.resolve_shards(ds, "val")]
