"""relight training through the real pieces: webdataset shards -> tiny UNet -> checkpoints, resume, CLI, Ray Train.

Fast tests train on the numpy sphere fixture (a real relight-wds/2 dataset);
one trains on shards that synthgen rendered with Blender.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from relight import config as config_mod  # noqa: E402
from relight import train  # noqa: E402
from relight.pipeline import RelightPipeline  # noqa: E402
from tests.relight_fixtures import make_sphere_dataset  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["data.resolution=32", "data.env_size=[32, 32]", "model.block_channels=[16, 32]", "train.batch_size=4",
        "train.log_every=2", "train.val_steps=3", "train.val_pairs=2", "train.lr=5e-4"]


@pytest.fixture(scope="module")
def spheres(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("spheres") / "ds")
    make_sphere_dataset(out, groups={"train": 8, "val": 2, "test": 2}, k=4, res=32)
    return out


def _cfg(*extra: str) -> config_mod.TrainConfig:
    return config_mod.load(None, [*FAST, *extra])


def _log(out: str) -> list[dict]:
    with open(os.path.join(out, "train_log.csv"), newline="") as f:
        return list(csv.DictReader(f))


def test_drop_masks_are_independent_with_the_configured_rates():
    tcfg = config_mod.TrainSection(dropout_portrait=0.1, dropout_env=0.2, dropout_text=0.3)
    keep = train.drop_masks(200_000, tcfg, torch.Generator().manual_seed(0))
    dropped = {k: (~v).float() for k, v in keep.items()}
    assert abs(dropped["portrait"].mean() - 0.1) < 0.005
    assert abs(dropped["env"].mean() - 0.2) < 0.005
    assert abs(dropped["text"].mean() - 0.3) < 0.005
    # "portrait dropped, env kept" (the guidance's e(x, 0, E, 0) branch) is trained ~ p_I (1 - p_E) of the time
    both = (dropped["portrait"] * (1 - dropped["env"])).mean()
    assert abs(both - 0.08) < 0.004


def test_train_writes_checkpoints_logs_grid_and_a_loadable_model(spheres, tmp_path):
    out = str(tmp_path / "run")
    cfg = _cfg("train.max_steps=24", "train.checkpoint_every=8", "train.keep_checkpoints=2",
               "train.validate_every=12", "model.text='hashed'")
    summary = train.run(cfg, spheres, out, progress=False)
    assert summary["steps"] == 24
    rows = _log(out)
    losses = [float(r["loss"]) for r in rows if r["loss"]]
    assert len(losses) == 12
    # a fresh diffusion model starts near loss 1 (predicting zeros); it must learn something in 24 steps
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses
    assert [r["step"] for r in rows if r["val_psnr_masked"]] == ["12", "24"]
    ckpts = sorted(os.listdir(os.path.join(out, "checkpoints")))
    assert ckpts == ["checkpoint-000016", "checkpoint-000024"]  # keep_checkpoints=2, oldest removed
    for name in ("loss.png", "validation/step-000012.png", "validation/step-000024.png", "config.json"):
        assert os.path.getsize(os.path.join(out, name)) > 1000 or name == "config.json"
    pipe = RelightPipeline.from_pretrained(os.path.join(out, "model"))
    pipe.set_progress_bar_config(disable=True)
    img = pipe(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), prompt="a person", num_inference_steps=2)
    assert img.shape == (1, 3, 32, 32) and torch.isfinite(img).all()
    # the exported model holds the EMA weights, not the raw ones
    raw = RelightPipeline.from_pretrained(os.path.join(out, "checkpoints", "checkpoint-000024"))
    w_ema, w_raw = pipe.unet.conv_in.weight, raw.unet.conv_in.weight
    assert not torch.equal(w_ema, w_raw)


def test_resume_continues_from_the_newest_checkpoint(spheres, tmp_path):
    out = str(tmp_path / "run")
    first = train.run(_cfg("train.max_steps=6", "train.checkpoint_every=3", "train.validate_every=0"),
                      spheres, out, progress=False)
    assert first["steps"] == 6
    with pytest.raises(RuntimeError, match="pass --resume"):
        train.run(_cfg("train.max_steps=10"), spheres, out, progress=False)
    state = torch.load(os.path.join(out, "checkpoints", "checkpoint-000006", "training_state.pt"), weights_only=True)
    assert state["step"] == 6
    again = train.run(_cfg("train.max_steps=10", "train.checkpoint_every=3", "train.validate_every=0"),
                      spheres, out, resume=True, progress=False)
    assert again["start_step"] == 6 and again["steps"] == 10
    steps = [int(r["step"]) for r in _log(out)]
    assert steps == sorted(set(steps)) and steps[-1] == 10 and 6 in steps  # one log, no duplicated rows
    with pytest.raises(RuntimeError, match="different \\[model\\] section"):
        train.run(_cfg("train.max_steps=12", "model.text='hashed'"), spheres, out, resume=True, progress=False)


def test_fine_tunes_a_local_stable_diffusion_folder(spheres, tmp_path):
    from tests.test_relight_model import _tiny_sd

    sd = _tiny_sd(str(tmp_path / "sd"))
    out = str(tmp_path / "run")
    summary = train.run(_cfg("train.max_steps=3", "train.validate_every=0", "model.source='pretrained'",
                             f"model.pretrained='{sd}'"), spheres, out, progress=False)
    assert summary["steps"] == 3
    pipe = RelightPipeline.from_pretrained(os.path.join(out, "model"))
    assert type(pipe.vae).__name__ == "AutoencoderKL" and pipe.unet.config.in_channels == 12


def test_cli_train_and_its_errors(spheres, tmp_path):
    out = str(tmp_path / "run")
    args = [sys.executable, "-m", "relight.cli", "train", "--shards", spheres, "--out", out, "--max-steps", "2"]
    sets = [a for s in FAST + ["train.validate_every=0"] for a in ("--set", s)]
    r = subprocess.run(args + sets, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "trained 2 steps (to step 2)" in r.stdout and os.path.join(out, "model") in r.stdout
    assert json.load(open(os.path.join(out, "summary.json")))["steps"] == 2
    r = subprocess.run(args + ["--set", "train.lr=-1"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 2 and r.stderr.strip() == "error: <config>: train.lr = -1.0 must be > 0"
    r = subprocess.run(args + sets, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 2 and "pass --resume" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([*args[:5], str(tmp_path / "nothing"), "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 1 and str(tmp_path / "nothing") in r.stderr  # missing data: a runtime failure


def test_ray_train_with_two_cpu_workers(spheres, tmp_path):
    pytest.importorskip("ray")
    import ray

    from relight.distributed import run_distributed

    out = str(tmp_path / "run")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_distributed(_cfg("train.max_steps=4", "train.validate_every=0", "train.checkpoint_every=2"),
                                  spheres, out, workers=2, progress=False)
    finally:
        ray.shutdown()
    assert summary["world_size"] == 2 and summary["steps"] == 4
    assert os.path.isfile(os.path.join(out, "model", "model_index.json"))
    assert sorted(os.listdir(os.path.join(out, "checkpoints"))) == ["checkpoint-000002", "checkpoint-000004"]


def test_trains_on_shards_synthgen_rendered_with_blender(blender_dataset, tmp_path):
    out = str(tmp_path / "run")
    summary = train.run(_cfg("train.max_steps=6", "train.validate_every=3", "train.checkpoint_every=6"),
                        blender_dataset, out, progress=False)
    assert summary["steps"] == 6
    rows = _log(out)
    assert all(float(r["loss"]) > 0 for r in rows if r["loss"])
    # no val split in this dataset: validation falls back to the first train pairs, and still runs
    assert [r["step"] for r in rows if r["val_psnr_masked"]] == ["3", "6"]
    assert os.path.isfile(os.path.join(out, "validation", "step-000006.png"))


@pytest.mark.parametrize("kind", ["sample", "v_prediction"])
def test_other_prediction_types_train_and_export(spheres, tmp_path, kind):
    out = str(tmp_path / kind)
    train.run(_cfg("train.max_steps=2", "train.validate_every=0", f"model.prediction_type='{kind}'"),
              spheres, out, progress=False)
    pipe = RelightPipeline.from_pretrained(os.path.join(out, "model"))
    assert pipe.scheduler.config.prediction_type == kind
    pipe.set_progress_bar_config(disable=True)
    assert torch.isfinite(pipe(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), num_inference_steps=2)).all()
