"""The Ray farm with a real local Ray (2 CPUs), real Blender renders and a real S3 server.

Every farm run renders the same tiny job (32 px, 4 samples, 8 groups in 3
shards) and must give a dataset.json identical, shard sha256s included, to
the single-process ``--local`` run: with 1 or 2 workers, with a worker
killed mid-shard, after the driver is interrupted and resumed, and on S3.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import psutil
import pytest

pytest.importorskip("bpy")
pytest.importorskip("ray")

from assets_manifest import hdri_io, procedural_hdri  # noqa: E402
from synthgen import (dataset, farm, job as jobs, plan as planning, provenance, resume, runner,  # noqa: E402
                      shards, storage)
from synthgen.locate import AssetPaths  # noqa: E402
from synthgen.render_process import BlenderProcess, BlenderStartError, GroupFailed  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOB = os.path.join(ROOT, "jobs", "quickstart.toml")
TINY = ["render.resolution=32", "render.samples=4", "render.denoise=false", 'render.passes=["albedo"]',
        "splits.train=6", "splits.val=2", "splits.test=0", "job.shard_size=3",
        "lighting.hdris_per_group=1", "lighting.rotations_per_hdri=2", "lighting.env_width=32"]
SHARDS = ["train-000000", "train-000001", "val-000000"]


def synthgen(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthgen.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, **kw)


def overrides(catalog: str, extra=()) -> list[str]:
    return [f'job.catalogs=["{catalog}"]', *TINY, *extra]


def set_args(catalog: str, extra=()) -> list[str]:
    return [a for s in overrides(catalog, extra) for a in ("--set", s)]


def load_job(catalog: str, extra=()) -> jobs.Job:
    return jobs.load(JOB, overrides(catalog, extra))


def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> str:
    """Sphere heads and one HDRI per split: a world update costs Cycles ~2 s, so groups share maps."""
    import trimesh

    root = tmp_path_factory.mktemp("farm_catalog")
    (root / "heads").mkdir()
    (root / "hdri").mkdir()
    for i, split in enumerate(["train", "train", "val"]):
        m = trimesh.creation.icosphere(subdivisions=3, radius=0.1 + 0.01 * i)
        m.export(str(root / "heads" / f"ball{i}.glb"))
        (root / "heads" / f"ball{i}.glb.asset.json").write_text(json.dumps({"split": split}))
    for i, (style, split) in enumerate([("studio", "train"), ("rim", "val")]):
        hdri_io.write_exr(str(root / "hdri" / f"{style}.exr"), procedural_hdri.generate(style, i, 128).rgb)
        (root / "hdri" / f"{style}.exr.asset.json").write_text(json.dumps({"split": split}))
    (root / "_catalog.json").write_text(json.dumps({"license": "CC0-1.0", "source": "test"}))
    r = synthgen("assets", "scan", str(root), "--out", str(root / "manifest.parquet"), "-q")
    assert r.returncode == 0, r.stderr
    return str(root / "manifest.parquet")


@pytest.fixture(scope="module")
def reference(catalog, tmp_path_factory) -> dict:
    """The single-process run (no Ray) every farm run must reproduce."""
    out = str(tmp_path_factory.mktemp("reference") / "ds")
    r = synthgen("render", JOB, "--out", out, "--local", "-q", *set_args(catalog))
    assert r.returncode == 0, r.stderr[-3000:]
    meta = read_json(os.path.join(out, "dataset.json"))
    assert meta["counts"] == {"planned": 8, "written": 8, "failed": 0, "lightings_per_group": 2, "images": 16}
    return meta


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
    yield
    ray.shutdown()


def assert_same_dataset(out: str, reference: dict) -> None:
    assert read_json(os.path.join(out, "dataset.json")) == reference  # counts, keys' shards, every sha256
    lines, problems = dataset.inspect(out)
    assert not problems, problems
    assert not os.path.exists(os.path.join(out, ".staging"))


def test_one_and_two_workers_give_the_local_dataset(catalog, reference, local_ray, tmp_path):
    job = load_job(catalog)
    one = str(tmp_path / "one")
    # recycling Blender every 2 groups must not change a pixel either
    s1 = farm.run_farm(job, one, farm.FarmOptions(workers=1, cpus_per_worker=1, recycle_groups=2), progress=False)
    assert_same_dataset(one, reference)
    rep = s1["report"]
    assert len(rep["workers"]) == 1 and rep["shards"]["rendered"] == 3
    assert rep["blender"]["recycled_groups"] >= 3 and rep["blender"]["starts"] >= 4
    two = str(tmp_path / "two")
    s2 = farm.run_farm(job, two, farm.FarmOptions(workers=2, cpus_per_worker=1), progress=False)
    assert_same_dataset(two, reference)
    rep = s2["report"]
    assert rep["worker"]["cpus"] == 1 and rep["worker"]["in_flight"] == 2
    assert len(rep["workers"]) == 2, rep["workers"]  # both workers rendered
    assert rep["this_run"]["images"] == 16 and rep["core_s_per_1000_images"] > 0
    assert read_json(os.path.join(two, "farm_report.json")) == rep
    # both Blender logs are kept, one per worker
    assert len(os.listdir(os.path.join(two, "logs"))) == 2


def _kill_a_worker_mid_shard(out: str, killed: list, stop: threading.Event) -> None:
    """SIGKILL the Ray worker rendering a shard while it is inside the shard (staging open, not published)
    and its Blender child is running (polled, not timed: a loaded machine changes the timing)."""
    staging = os.path.join(out, ".staging")
    while not stop.is_set():
        for name in sorted(os.listdir(staging)) if os.path.isdir(staging) else []:
            parts = name.rsplit(".", 2)  # a shard's staging folder is <shard>.<host>.<worker pid>
            if len(parts) != 3 or not parts[2].isdigit():
                continue  # Blender's pass file (synthgen_passes_<pid>.exr) shares the folder
            shard, _host, pid = parts
            try:
                worker = psutil.Process(int(pid))
                blender = [c.pid for c in worker.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            if not blender or os.path.exists(os.path.join(out, "completed", f"{shard}.json")):
                continue  # its Blender is not up yet, or the shard is already published
            assert worker.name().startswith("ray::render_shard_task")  # our Ray task's worker, nothing else
            os.kill(int(pid), signal.SIGKILL)
            killed.append((shard, int(pid), blender))
            return
        time.sleep(0.02)


def test_worker_killed_mid_shard_is_retried_exactly(catalog, reference, local_ray, tmp_path):
    out = str(tmp_path / "ds")
    killed: list = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_a_worker_mid_shard, args=(out, killed, stop), daemon=True)
    watcher.start()
    try:
        summary = farm.run_farm(load_job(catalog), out, farm.FarmOptions(workers=2, cpus_per_worker=1),
                                progress=False)
    finally:
        stop.set()
        watcher.join()
    assert killed, "no worker was killed"
    shard, pid, blender = killed[0]
    rep = summary["report"]
    assert shard in rep["shards"]["retried"] and rep["shards"]["attempts"] >= 4
    assert pid not in {w["pid"] for w in rep["workers"]}  # the killed attempt returned nothing; its retry did
    assert_same_dataset(out, reference)
    # the killed worker's Blender went with it (PR_SET_PDEATHSIG)
    time.sleep(0.5)
    for child in blender:
        assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def _freeze_blenders_of(driver: int, frozen: set, done: threading.Event) -> None:
    """SIGSTOP every Blender child (synthgen.render.worker) under the driver, new ones too, until done."""
    while not done.is_set():
        try:
            children = psutil.Process(driver).children(recursive=True)
        except psutil.Error:
            return
        for c in children:
            try:
                if c.pid not in frozen and "synthgen.render.worker" in " ".join(c.cmdline()):
                    c.suspend()
                    frozen.add(c.pid)
            except psutil.Error:
                pass
        time.sleep(0.01)


def _kill_ray_processes_of(ray_tmp: str) -> None:
    """After a driver is SIGKILLed, Ray leaves some processes behind; end exactly those of that run."""
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get("RAY_TMPDIR") == ray_tmp and p.pid != os.getpid():
                p.kill()
        except psutil.Error:
            pass


def test_interrupted_driver_resumes_to_the_same_dataset(catalog, reference, tmp_path):
    out = str(tmp_path / "ds")
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    cmd = [sys.executable, "-m", "synthgen.cli", "render", JOB, "--out", out, "--workers", "2", "-q",
           *set_args(catalog)]
    completed = os.path.join(out, "completed")

    def start_and_wait(until) -> subprocess.Popen:
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while not until() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.poll() is None, p.communicate()[1][-3000:]
        return p

    try:
        # Ctrl-C once the first shard is published: clean stop, finished shards kept, no dataset.json.
        # From then on every Blender of this run is frozen (SIGSTOP), so no other shard can finish
        # before the interrupt lands, however fast the machine is.
        p = start_and_wait(lambda: os.path.isdir(completed) and os.listdir(completed))
        frozen: set = set()
        done = threading.Event()
        freezer = threading.Thread(target=_freeze_blenders_of, args=(p.pid, frozen, done), daemon=True)
        freezer.start()
        deadline = time.monotonic() + 60
        while not frozen and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        p.send_signal(signal.SIGINT)
        try:
            _, err = p.communicate(timeout=120)
        finally:
            done.set()
            freezer.join()
            for pid in frozen:  # their parents are gone (PR_SET_PDEATHSIG kills them too); make sure
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        assert p.returncode == 130, err[-3000:]
        assert "run the same command again to resume" in err
        first = set(os.listdir(completed))
        assert 1 <= len(first) < len(SHARDS)
        assert not os.path.exists(os.path.join(out, "dataset.json"))
        # the same command again, SIGKILLed while rendering what is left: nothing half-written may count
        p = start_and_wait(lambda: os.path.isdir(os.path.join(out, ".staging"))
                           and os.listdir(os.path.join(out, ".staging")))
        p.kill()
        p.communicate(timeout=60)
        _kill_ray_processes_of(ray_tmp)
        for name in os.listdir(completed):  # whatever was published verifies
            rec = read_json(os.path.join(completed, name))["record"]
            assert shards.file_digest(os.path.join(out, rec["path"])) == rec["sha256"]
        # and once more to the end: the dataset of an uninterrupted run
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "planned 8, written 8, failed 0" in r.stdout
        assert_same_dataset(out, reference)
        rep = read_json(os.path.join(out, "farm_report.json"))
        assert rep["shards"]["kept_from_before"] >= len(first)
        assert rep["shards"]["rendered"] == len(SHARDS) - rep["shards"]["kept_from_before"]
    finally:
        _kill_ray_processes_of(ray_tmp)


def _descendants(pid: int, match) -> list[psutil.Process]:
    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    out = []
    for c in procs:
        try:
            if match(c):
                out.append(c)
        except psutil.Error:
            pass
    return out


def test_lost_progress_actor_and_blender_do_not_stop_the_run(catalog, reference, tmp_path):
    """kill -9 of the progress actor, then of a Blender child, mid-run: exit 0, the same dataset, no traceback."""
    out = str(tmp_path / "ds")
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    cmd = [sys.executable, "-m", "synthgen.cli", "render", JOB, "--out", out, "--workers", "1",
           "--cpus-per-worker", "1", *set_args(catalog)]  # with its progress bar: the driver draws it
    completed = os.path.join(out, "completed")
    try:
        p = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "RAY_TMPDIR": ray_tmp}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        # one shard at a time: once the first is published, two are still to render; Blender is frozen
        # (SIGSTOP) while the actor is killed, so no other shard can finish before both kills land
        _wait_for(lambda: p.poll() is not None or (os.path.isdir(completed) and os.listdir(completed)), 300)
        found: dict[str, list] = {"ray::Progress": [], "Blender": []}
        is_blender = lambda c: "synthgen.render.worker" in " ".join(c.cmdline())  # noqa: E731
        _wait_for(lambda: p.poll() is not None or bool(found["Blender"].extend(_descendants(p.pid, is_blender))
                                                        or found["Blender"]), 60)
        assert p.poll() is None, p.communicate()[1][-3000:]
        blender = found["Blender"][0]
        blender.suspend()
        _wait_for(lambda: bool(found["ray::Progress"].extend(
            _descendants(p.pid, lambda c: c.name().startswith("ray::Progress"))) or found["ray::Progress"]), 60)
        assert found["ray::Progress"], "no ray::Progress process under the driver"
        found["ray::Progress"][0].kill()
        time.sleep(1.0)  # the driver polls its tasks and the actor every 0.5 s
        assert p.poll() is None, p.communicate()[1][-3000:]
        assert len(os.listdir(completed)) < len(SHARDS)  # the kills land mid-run
        blender.kill()  # a Blender crash mid-shard: the group is retried in a fresh Blender
        _, err = p.communicate(timeout=600)
    finally:
        _kill_ray_processes_of(ray_tmp)
    assert p.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    lines = err.replace("\r", "\n").splitlines()
    lost = [line for line in lines if "progress actor" in line or "ActorDied" in line]  # said once, in one line
    assert len(lost) == 1 and lost[0].startswith("warning: the progress actor (ray::Progress) was lost ("), lost
    assert_same_dataset(out, reference)
    rep = read_json(os.path.join(out, "farm_report.json"))
    assert rep["shards"]["rendered"] == len(SHARDS) and rep["counts"]["failed"] == 0


def test_s3_output_resume_and_repair(catalog, reference, local_ray, tmp_path):
    from s3_server import S3Server

    server = S3Server(str(tmp_path / "weed")).start()
    try:
        fs = server.filesystem()
        fs.mkdir("synthgen")
        url = "s3://synthgen/runs/tiny"
        stage = tmp_path / "stage"
        opts = farm.FarmOptions(workers=2, cpus_per_worker=1, storage_options=server.storage_options(),
                                stage_dir=str(stage))
        job = load_job(catalog)
        summary = farm.run_farm(job, url, opts, progress=False)
        assert summary["out"] == url
        fs.invalidate_cache()
        assert json.loads(fs.cat("synthgen/runs/tiny/dataset.json")) == reference
        names = set(fs.find("synthgen/runs/tiny"))
        for shard in SHARDS:
            assert f"synthgen/runs/tiny/shards/{shard}.tar" in names
            assert f"synthgen/runs/tiny/completed/{shard}.json" in names
        for f in ("plan.parquet", "index.parquet", "failures.parquet", "train.wids.json", "preview.png",
                  "farm_report.json"):
            assert f"synthgen/runs/tiny/{f}" in names
        assert not list(stage.rglob("*.tar"))  # staged shards are removed once uploaded
        # a shard read back from S3 is a valid relight-wds/2 shard
        local = str(tmp_path / "back.tar")
        fs.get("synthgen/runs/tiny/shards/val-000000.tar", local)
        assert len(shards.validate_tar(local)) == 2
        from synthgen.cli import main

        opt_args = [a for k, v in server.storage_options().items() for a in ("--storage-option", f"{k}={v}")]
        assert main(["inspect", url, *opt_args]) == 0
        # damage one shard in the bucket: inspect names it, a re-run renders exactly that shard again
        fs.pipe("synthgen/runs/tiny/shards/train-000001.tar", b"not a tar")
        lines, problems = dataset.inspect(url, server.storage_options())
        assert problems == [f"{url}/shards/train-000001.tar: sha256 differs from dataset.json (changed or truncated)"]
        summary = farm.run_farm(job, url, opts, progress=False)
        assert summary["report"]["shards"]["rendered"] == 1
        assert summary["report"]["shards"]["kept_from_before"] == 2
        fs.invalidate_cache()
        assert json.loads(fs.cat("synthgen/runs/tiny/dataset.json")) == reference
        # other settings at the same URL: refused from the records there, before Ray or any render
        other = load_job(catalog, ["render.samples=8"])
        with pytest.raises(provenance.SettingsMismatch) as e:
            farm.run_farm(other, url, opts, progress=False)
        assert str(e.value) == (f"{url}: shard train-000000 was rendered with render.samples=4, this job has 8; "
                                "run with --overwrite to re-render everything, or use a new --out")
        # --overwrite removes the previous run there first (dataset.json, records, shards, the rest)
        resume.prepare(other, storage.open_dest(url, server.storage_options()), overwrite=True)
        fs.invalidate_cache()
        assert {p for p in fs.find("synthgen/runs/tiny") if "/logs/" not in p} == {"synthgen/runs/tiny/plan.parquet"}
    finally:
        server.stop()


def test_s3_outage_then_same_command_finishes(catalog, tmp_path):
    """The store dies mid-run, is down, comes back on the same data: the same command finishes the dataset.

    14 groups, so the preview (its first 12) needs only some shards: the others must not be read locally."""
    from s3_server import S3Server

    server = S3Server(str(tmp_path / "weed")).start()
    url = "s3://synthgen/outage"
    # fewer client retries than botocore's default: the same failures, sooner
    opts = {**server.storage_options(), "config_kwargs": {"retries": {"total_max_attempts": 2}}}
    opt_args = [a for k, v in opts.items()
                for a in ("--storage-option", f"{k}={json.dumps(v) if isinstance(v, dict) else v}")]
    cmd = [sys.executable, "-m", "synthgen.cli", "render", JOB, "--out", url, "--workers", "1", "--num-cpus", "1",
           "--max-retries", "1", "--stage-dir", str(tmp_path / "stage"), "-q", *opt_args,
           *set_args(catalog, ["splits.train=12", "job.shard_size=4"])]
    fs = server.filesystem()
    records = "synthgen/outage/completed"
    try:
        fs.mkdir("synthgen")
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while p.poll() is None and time.monotonic() < deadline:
            fs.invalidate_cache()
            if len(fs.ls(records) if fs.exists(records) else []) >= 2:
                break
            time.sleep(0.05)
        assert p.poll() is None, p.communicate()[1][-3000:]
        server.kill()  # the outage, two shards in
        _, err = p.communicate(timeout=300)
        assert p.returncode == 1, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        assert server.endpoint in err.strip().splitlines()[-1]
        # while it is down (as while it starts): one line naming the endpoint, exit 1
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
        assert r.stderr.strip().splitlines()[-1].startswith(
            f"error: {url}: cannot reach the store at {server.endpoint} ("), r.stderr[-3000:]
        server.start()  # back, on the same data
        _wait_for(lambda: _writable(server), timeout=60)  # its gateway answers before its volumes take writes
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        fs = server.filesystem()
        meta = json.loads(fs.cat("synthgen/outage/dataset.json"))
        assert meta["counts"] == {"planned": 14, "written": 14, "failed": 0, "lightings_per_group": 2, "images": 28}
        report = json.loads(fs.cat("synthgen/outage/farm_report.json"))
        assert report["shards"]["kept_from_before"] >= 2 and report["shards"]["rendered"] >= 1
        lines, problems = dataset.inspect(url, server.storage_options())
        assert not problems, problems
        assert fs.exists("synthgen/outage/preview.png")
    finally:
        server.stop()


def test_blender_process_timeout_crash_error_and_rss_recycling(catalog, tmp_path):
    job = load_job(catalog, ["render.resolution=96", "render.samples=64"])
    assets = AssetPaths.from_catalogs(job.job.catalogs)
    plan_rows = planning.make_plan(job).to_pylist()
    rows = [assets.locate(r) for r in plan_rows]  # Blender renders rows that say where the files are
    cfg = job.to_dict()["render"]
    log = str(tmp_path / "blender.log")

    slow = BlenderProcess(dict(cfg, samples=4096), threads=1, log_path=log, timeout_s=1)
    with pytest.raises(GroupFailed, match=r"^TimeoutError: group took longer than render.timeout_s = 1 s"):
        slow.render_group(rows[0])  # 96 px at 4096 samples on one thread: tens of seconds, stopped at 1 s
    assert slow.stats.timeouts == 1 and slow.proc is None  # killed, not left running
    slow.close()

    bp = BlenderProcess(cfg, threads=1, log_path=log, timeout_s=300)
    killer = threading.Thread(target=lambda: (_wait_for(lambda: bp.pid), time.sleep(0.3), os.kill(bp.pid, 9)))
    killer.start()
    renders, timings = bp.render_group(rows[0])  # Blender killed mid-render: retried once in a fresh one
    killer.join()
    assert bp.stats.crashes == 1 and bp.stats.starts == 2 and len(renders.rgba) == 2 and len(timings.render_s) == 2
    assert bp.device == "CPU" and bp.software["blender"].startswith("5.")

    # a head file missing on this node fails its group (named, with Blender's traceback), not the shard
    missing = str(tmp_path / "missing.glb")
    broken = dict(plan_rows[1], head_asset_id="head-missing")
    here = AssetPaths(assets.catalogs, dict(assets.paths, **{"head-missing": missing}))
    result = runner.render_shard(str(tmp_path / "ds"), rows[0]["shard"], [broken, plan_rows[2]], job.to_dict(), bp,
                                 runner.HdriCache(), assets=here)
    assert result.record.groups == 1 and result.record.keys == [rows[2]["key"]]
    (failure,) = result.failures
    assert failure["error"] == f"FileNotFoundError: {missing}: no such head file on this node"
    assert "Traceback" in failure["traceback"] and "import_asset" in failure["traceback"]
    assert bp.stats.starts == 2  # Blender lives on

    bp.max_rss_bytes = 1  # past the cap after the next group: Blender is recycled
    bp.render_group(rows[1])
    assert bp.stats.recycled_rss == 1 and bp.proc is None and bp.stats.peak_rss_bytes > 50 * 2**20
    bp.close()
    assert os.path.getsize(log) > 0  # Blender's console output went to the log


@pytest.mark.skipif(bool(shutil.which("nvidia-smi")), reason="this machine may have a GPU Cycles can use")
def test_blender_that_cannot_start_is_a_start_error(catalog):
    cfg = dict(load_job(catalog).to_dict()["render"], device="gpu")
    bp = BlenderProcess(cfg)
    with pytest.raises(BlenderStartError, match=r"^RuntimeError: render.device = 'gpu' but Cycles found no "):
        bp.software  # noqa: B018 (starting Blender is the point)
    assert bp.proc is None


def _writable(server) -> bool:
    try:
        server.filesystem().pipe("synthgen/probe", b"x")
        return True
    except OSError:
        return False


def _wait_for(cond, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)


# -- no Blender needed ----------------------------------------------------------

NODE = {"CPU": 16.0, "memory": 64e9}
GPU_NODE = {"CPU": 8.0, "GPU": 2.0}


@pytest.mark.parametrize("nodes, opts, device, want", [
    ([NODE], farm.FarmOptions(), "auto", (4.0, 0.0, 64, 4)),  # 4 fit, all shards queued (Ray runs what fits)
    ([NODE], farm.FarmOptions(workers=3), "auto", (5.0, 0.0, 3, 5)),  # an even share, capped in flight
    ([NODE, GPU_NODE], farm.FarmOptions(), "auto", (2.0, 1.0, 64, 2)),  # one Blender per GPU
    ([NODE, GPU_NODE], farm.FarmOptions(), "cpu", (4.0, 0.0, 64, 4)),
    ([GPU_NODE], farm.FarmOptions(gpus_per_worker=0.5, cpus_per_worker=1), "gpu", (1.0, 0.5, 64, 1)),
    ([{"CPU": 2.0}], farm.FarmOptions(workers=8), "auto", (1.0, 0.0, 8, 1)),
    ([], farm.FarmOptions(), "auto", (4.0, 0.0, 64, 4)),  # autoscaler with no workers yet
])
def test_worker_shape(nodes, opts, device, want):
    s = farm.resolve_shape(nodes, opts, device)
    assert (s.cpus, s.gpus, s.in_flight, s.threads) == want


def test_worker_shape_errors():
    with pytest.raises(ValueError, match="render.device = 'gpu' but the workers get no GPU"):
        farm.resolve_shape([NODE], farm.FarmOptions(), "gpu")
    with pytest.raises(ValueError, match="--cpus-per-worker"):
        farm.resolve_shape([NODE], farm.FarmOptions(cpus_per_worker=0), "auto")
    with pytest.raises(ValueError, match=r"^no Ray node fits a worker of 32 CPUs and 0 GPUs \(16 CPUs/0 GPUs\)"):
        farm.resolve_shape([NODE], farm.FarmOptions(cpus_per_worker=32), "auto", can_grow=False)
    assert farm.resolve_shape([NODE], farm.FarmOptions(cpus_per_worker=32), "auto").in_flight == 64  # autoscaler


def test_store_errors_are_one_line_naming_the_endpoint(tmp_path):
    import errno

    from synthgen import storage

    dest = storage.Dest("s3://bucket/ds", {"endpoint_url": "http://127.0.0.1:9", "key": "k", "secret": "s"})
    with pytest.raises(storage.StoreError, match=r"^s3://bucket/ds: the store at http://127.0.0.1:9 answered with "
                                                 r"a server error \(OSError: \[Errno 121\] We encountered an "
                                                 r"internal error, please try again.\); if it is starting"):
        with dest.reaching():  # what s3fs raises for a 500 InternalError (a gateway whose volumes are not up)
            raise OSError(errno.EREMOTEIO, "We encountered an internal error, please try again.")
    with pytest.raises(FileNotFoundError):  # not the store's fault: left alone
        with dest.reaching():
            raise FileNotFoundError(errno.ENOENT, "no such key")
    local = storage.Dest(str(tmp_path))
    with pytest.raises(OSError) as e, local.reaching():
        raise OSError(errno.EIO, "disk")
    assert type(e.value) is OSError


def test_render_cli_errors(tmp_path, capsys):
    from synthgen.cli import main

    def err(*argv: str) -> tuple[int, str]:
        try:
            code = main(["render", JOB, *argv])
        except SystemExit as e:  # argparse
            code = e.code
        return code, capsys.readouterr().err.strip().splitlines()[-1]

    assert err("--workers", "0") == (2, "synthgen render: error: argument --workers: '0': expected a whole number >= 1")
    assert err("--local", "--out", "s3://bucket/ds") == (
        2, "error: --out s3://bucket/ds: --local writes to a local folder; leave out --local for fsspec URLs")
    code, line = err("--out", str(tmp_path / "x"), "--storage-option", "endpoint_url")
    assert code == 2 and line.startswith("error: --storage-option 'endpoint_url': expected KEY=VALUE")
    code, line = err("--out", "nosuchproto://bucket/ds")
    assert code == 2 and line.startswith("error: --out nosuchproto://bucket/ds: ")
