"""The tiny model's relighting head: a gain over the input (``model.output = "ratio"``), the pooled env
in every block (``model.env_vector``), the head-weighted loss, the model's own sampling defaults, and
``relight eval --seeds``.

Behaviour, not quality: quality thresholds live in benchmarks/relight_quality.py.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from relight import config as config_mod  # noqa: E402
from relight import evaluate, infer, train  # noqa: E402
from relight.model import ModelConfig, build, env_vector, ratio_to_latent  # noqa: E402
from relight.pipeline import RelightPipeline  # noqa: E402
from tests.relight_fixtures import make_sphere_dataset  # noqa: E402

RATIO = ["data.resolution=32", "data.env_size=[32, 32]", "model.block_channels=[16, 32]", "train.batch_size=8",
         "train.log_every=5", "train.val_steps=4", "train.val_pairs=8", "train.lr=2e-3", "train.warmup_steps=0",
         "model.output='ratio'", "model.prediction_type='sample'", "model.env_vector=true", "model.env_hdr=true",
         "data.env_hdr=true", "train.background_weight=0.1", "train.image_guidance=1.0", "train.ema_decay=0.9",
         "train.dropout_portrait=0.0", "train.dropout_env=0.0"]


@pytest.fixture(scope="module")
def spheres(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("ratio") / "ds")
    # many maps and two rotations of each: lighting that generalises to the val split's own maps
    make_sphere_dataset(out, groups={"train": 16, "val": 3, "test": 2}, k=4, res=32, rotations_per_hdri=2,
                        maps_per_split={"train": 24, "val": 4, "test": 2})
    return out


def _pipe(cfg: ModelConfig) -> RelightPipeline:
    m = build(cfg)
    pipe = RelightPipeline(unet=m.unet, vae=m.vae, text_encoder=m.text_encoder, scheduler=m.scheduler,
                           output=cfg.output, default_steps=3, default_image_guidance=1.0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_ratio_to_latent_is_the_input_at_zero_gain_and_scales_it():
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    assert torch.allclose(ratio_to_latent(torch.zeros_like(x), x), x, atol=1e-6)
    doubled = ratio_to_latent(torch.full_like(x, float(np.log(2.0))), x)
    base01 = (x + 1) / 2
    assert torch.allclose((doubled + 1) / 2, 2 * (base01 + 0.02) - 0.02, atol=1e-5)


def test_an_untrained_ratio_model_copies_its_input_whatever_the_noise_and_guidance():
    torch.manual_seed(0)
    pipe = _pipe(ModelConfig(source="tiny", output="ratio", prediction_type="sample", block_channels=[16, 32],
                             env_vector=True))
    portrait, env = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    for guidance, seed in ((1.0, 0), (3.0, 1)):
        out = pipe(portrait, env, image_guidance_scale=guidance, generator=torch.Generator().manual_seed(seed))
        assert torch.allclose(out, portrait, atol=1e-5)


def test_env_vector_pools_each_map_and_reaches_every_block():
    env = torch.zeros(1, 3, 32, 32)
    env[:, 0, :, :4] = 1.0  # red light in the first azimuth column
    v = env_vector(env)
    assert v.shape == (1, 3 * 4 * 8) and v[0, 0] == 1.0 and v[0, 1] == 0.0 and v[0, 32:].abs().sum() == 0
    assert env_vector(env, env).shape == (1, 2 * 96)
    cfg = ModelConfig(source="tiny", block_channels=[16, 32], env_vector=True, env_hdr=True)
    unet = build(cfg).unet
    assert unet.config.class_embed_type == "projection" and unet.config.projection_class_embeddings_input_dim == 192
    x, hidden = torch.randn(1, 12, 16, 16), torch.zeros(1, 1, cfg.text_dim)
    a = unet(x, 10, encoder_hidden_states=hidden, class_labels=torch.zeros(1, 192)).sample
    b = unet(x, 10, encoder_hidden_states=hidden, class_labels=torch.ones(1, 192)).sample
    assert not torch.allclose(a, b)  # the lighting vector changes what the UNet computes


def test_config_refuses_ratio_without_pixel_space_x0_and_background_weight_out_of_range():
    with pytest.raises(config_mod.ConfigError, match="model.output = 'ratio' needs"):
        config_mod.load(None, ["model.output='ratio'", "model.prediction_type='epsilon'"])
    with pytest.raises(config_mod.ConfigError, match="model.env_vector needs model.source = 'tiny'"):
        config_mod.load(None, ["model.env_vector=true", "model.source='pretrained'", "model.pretrained='/x'"])
    with pytest.raises(config_mod.ConfigError, match="train.background_weight = 2.0"):
        config_mod.load(None, ["train.background_weight=2.0"])


def test_background_weight_keeps_the_loss_on_the_head():
    cfg = config_mod.load(None, RATIO)
    model = build(cfg.model)
    b = 2
    batch = {"input": torch.rand(b, 3, 16, 16), "target": torch.rand(b, 3, 16, 16), "env": torch.rand(b, 3, 32, 32),
             "env_hdr": torch.rand(b, 3, 32, 32), "caption": [""] * b, "mask": torch.zeros(b, 1, 16, 16)}
    batch["mask"][..., 4:12, 4:12] = 1.0
    losses = {}
    for w in (1.0, 0.0):
        tcfg = config_mod.TrainSection(background_weight=w)
        losses[w] = train.diffusion_loss(model, model.unet, batch, tcfg, torch.Generator().manual_seed(0),
                                         torch.device("cpu"), None).item()
        # the untrained ratio model predicts the input: the loss is the input-target error where it is weighed
        x0 = batch["input"] * 2 - 1
        err = (x0 - (batch["target"] * 2 - 1)) ** 2
        expect = err.mean() if w == 1.0 else err[..., 4:12, 4:12].mean()
        assert losses[w] == pytest.approx(expect.item(), rel=1e-4)


def test_training_beats_the_untrained_model_on_held_out_pairs_and_saves_its_sampling(spheres, tmp_path):
    """Training lowers validation error: the untrained ratio model is exactly copy-input."""
    out = str(tmp_path / "run")
    cfg = config_mod.load(None, RATIO + ["train.max_steps=60", "train.validate_every=60", "train.checkpoint_every=60"])
    summary = train.run(cfg, spheres, out, progress=False)
    untrained = summary["val_baseline_psnr_masked"]  # copy input == the untrained ratio model (test above)
    assert summary["val_psnr_masked"] > untrained + 0.5, summary
    index = json.load(open(os.path.join(out, "model", "model_index.json")))
    assert index["output"] == "ratio" and index["default_steps"] == 4 and index["default_image_guidance"] == 1.0
    pipe = infer.load_pipeline(os.path.join(out, "model"))
    s = infer.Settings().resolved(pipe)
    assert (s.steps, s.image_guidance) == (4, 1.0)
    assert infer.Settings(steps=2, image_guidance=2.5).resolved(pipe).steps == 2

    # relight eval over three sampling seeds: the model's rows per seed, mean and spread in the tables
    e = evaluate.evaluate(os.path.join(out, "model"), spheres, str(tmp_path / "eval"), infer.Settings(seed=5),
                          evaluate.EvalOptions(pairs=2, seeds=3), progress=False)
    assert e["seeds"] == [5, 6, 7] and e["steps"] == 4 and e["image_guidance"] == 1.0 and e["pairs"] == 4
    with open(os.path.join(tmp_path, "eval", "pairs.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    model_rows = [r for r in rows if r["method"] == "model"]
    assert sorted({r["seed"] for r in model_rows}) == ["5", "6", "7"] and len(model_rows) == 12
    assert {r["seed"] for r in rows if r["method"] != "model"} == {""}
    per_seed = [np.mean([float(r["psnr_masked"]) for r in model_rows if r["seed"] == s]) for s in "567"]
    m = e["overall"]["model"]
    assert m["psnr_masked"] == pytest.approx(np.mean(per_seed), abs=1e-3)
    assert m["psnr_masked_sd"] == pytest.approx(np.std(per_seed), abs=1e-3)
    assert e["overall"]["copy input (baseline)"]["psnr_masked_sd"] == 0.0
    md = open(os.path.join(tmp_path, "eval", "metrics.md")).read()
    assert "seeds 5, 6, 7" in md and f"{m['psnr_masked']:.4f} ± {m['psnr_masked_sd']:.4f}" in md


def test_side_balance_and_light_side_agree_on_which_side_is_right():
    from relight import direction

    img = torch.zeros(1, 3, 8, 8)
    img[..., 4:] = 1.0  # bright right half
    assert direction.side_balance(img)[0] == pytest.approx(1.0)
    assert direction.side_balance(img.flip(-1))[0] == pytest.approx(-1.0)
    env = np.zeros((16, 32, 3))
    env[8, 22] = 100.0  # u = 0.70, 73 degrees toward image right (assets_manifest.envmap's convention)
    assert direction.light_side(env) > 0.9 and direction.light_side(env[:, ::-1]) < -0.9
    assert direction.correlation([1, 2, 3], [2, 4, 7]) > 0.9 and np.isnan(direction.correlation([1, 1], [0, 2]))


def test_rendered_targets_are_brighter_on_the_side_their_light_comes_from(spheres):
    """The convention behind the strip's claim, on real (numpy-shaded) renders: light_side(env) ~ side_balance."""
    from relight import data, direction
    from relight.shard_safety import decode_member, tar_samples
    from synthgen.format import shard as shard_format

    light, face = [], []
    for sample in tar_samples({"url": u} for u in data.resolve_shards(spheres, "train")):
        mask = torch.from_numpy(np.asarray(decode_member(".mask.png", sample["mask.png"], 4096).convert("L"),
                                           np.float32) / 255.0)[None, None]
        for i in range(4):
            rgb = np.asarray(decode_member(".png", sample[shard_format.rgb_field(i)], 4096).convert("RGB"))
            face.append(float(direction.side_balance(torch.from_numpy(rgb / 255.0).permute(2, 0, 1)[None].float(),
                                                     mask)[0]))
            light.append(direction.light_side(decode_member(".exr", sample[shard_format.env_field(i, hdr=True)],
                                                            4096)))
    assert len(face) == 64
    assert direction.correlation(light, face) > 0.5


def test_extract_front_picks_the_most_frontally_lit_render_and_infer_reports_the_light_side(spheres, tmp_path):
    import contextlib
    import io

    from relight import baselines, cli, data, direction
    from relight.shard_safety import decode_member, tar_samples
    from synthgen.format import shard as shard_format

    rgba, info = infer.extract_render(spheres, "test", None, "front")
    first = next(iter(tar_samples({"url": u} for u in data.resolve_shards(spheres, "test"))))
    luma = np.asarray(direction.LUMA)
    shares = []
    for i in range(4):
        env = np.asarray(decode_member(".exr", first[shard_format.env_field(i, hdr=True)], 4096), np.float64)
        shares.append(float(baselines.mean_irradiance(env) @ luma) / float(env.mean(axis=(0, 1)) @ luma))
    assert info["lighting"] == int(np.argmax(shares)) and rgba.mode == "RGBA"

    out = str(tmp_path / "run")
    train.run(config_mod.load(None, RATIO + ["train.max_steps=2", "train.validate_every=0"]), spheres, out,
              progress=False)
    held = str(tmp_path / "held.png")
    rgba.save(held)
    assert cli.main(["extract", "--shards", spheres, "--lighting", "front", "--out", held]) == 0
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(["infer", "--model", os.path.join(out, "model"), "--image", held, "--env",
                         "procedural:studio:3", "--rotations", "4", "--out", str(tmp_path / "strip.png")]) == 0
    text = buf.getvalue()
    assert "4 ddim steps, image guidance 1," in text  # the model's own sampling defaults (train.val_steps)
    assert "left/right: the relit face's right-minus-left brightness follows the light's side with correlation" in text
