"""relight model pieces: widening, guidance, pipeline save/load, text module, metrics, config errors."""

from __future__ import annotations

import json
import os

import pytest

torch = pytest.importorskip("torch")
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402

from relight import config as config_mod  # noqa: E402
from relight import guidance, metrics  # noqa: E402
from relight.components import CaptionEncoder  # noqa: E402
from relight.model import ModelConfig, build, load_pretrained, widen_conv_in  # noqa: E402
from relight.pipeline import RelightPipeline, scheduler_by_name  # noqa: E402


def _tiny_sd(path: str, clip: bool = False) -> str:
    """A miniature Stable Diffusion folder (random weights), saved the way diffusers saves SD."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(8, 16), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=2, norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4)
    unet.save_pretrained(os.path.join(path, "unet"))
    vae.save_pretrained(os.path.join(path, "vae"))
    if clip:
        _tiny_clip(path, dim=16)
    return path


def _tiny_clip(path: str, dim: int) -> None:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    letters = "abcdefghijklmnopqrstuvwxyz."
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in letters:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    tok_dir = os.path.join(path, "tokenizer")
    os.makedirs(tok_dir)
    with open(os.path.join(tok_dir, "vocab.json"), "w") as f:
        json.dump(vocab, f)
    with open(os.path.join(tok_dir, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")
    tok = CLIPTokenizer(os.path.join(tok_dir, "vocab.json"), os.path.join(tok_dir, "merges.txt"), model_max_length=16)
    tok.save_pretrained(tok_dir)
    CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=dim, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, max_position_embeddings=16)
                  ).save_pretrained(os.path.join(path, "text_encoder"))


def test_widened_unet_computes_what_the_original_did(tmp_path):
    sd = _tiny_sd(str(tmp_path / "sd"))
    original = UNet2DConditionModel.from_pretrained(sd, subfolder="unet").eval()
    model = load_pretrained(ModelConfig(source="pretrained", pretrained=sd))
    assert model.unet.config.in_channels == 12 and model.unet.conv_in.in_channels == 12
    x = torch.randn(2, 4, 8, 8)
    cond = torch.randn(2, 8, 8, 8) * 5  # whatever the conditions hold, zero weights ignore them
    hidden = torch.randn(2, 3, 16)
    with torch.no_grad():
        a = original(x, 10, encoder_hidden_states=hidden).sample
        b = model.unet.eval()(torch.cat([x, cond], 1), 10, encoder_hidden_states=hidden).sample
    assert torch.equal(a, b)
    # the new config is what gets saved, so a widened checkpoint reloads at 12 channels
    model.unet.save_pretrained(str(tmp_path / "wide"))
    assert UNet2DConditionModel.from_pretrained(str(tmp_path / "wide")).config.in_channels == 12


def test_widen_refuses_to_narrow():
    unet = build(ModelConfig()).unet
    with pytest.raises(ValueError, match="cannot narrow"):
        widen_conv_in(unet, 3)


def test_pretrained_folder_errors_name_the_path(tmp_path):
    with pytest.raises(ValueError, match="not a local folder"):
        load_pretrained(ModelConfig(source="pretrained", pretrained=str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no unet/config.json"):
        load_pretrained(ModelConfig(source="pretrained", pretrained=str(tmp_path / "empty")))


def test_guidance_combination_matches_the_paper_formula():
    g = torch.Generator().manual_seed(0)
    e_env, e_img, e_full = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(3))
    lI, lT = 3.0, 2.0
    want = e_env + lT * (e_full - e_img) + lI * (e_img - e_env)
    assert torch.allclose(guidance.combine(e_env, e_img, e_full, lI, lT), want)
    assert torch.allclose(guidance.combine(e_env, e_img, None, lI, lT), e_env + lI * (e_img - e_env))
    # l_I = 1 and no text: just the fully conditioned branch
    assert torch.allclose(guidance.combine(e_env, e_img, None, 1.0, lT), e_img, atol=1e-6)


@pytest.mark.parametrize("prompt", [None, "a person lit from the left"])
def test_batched_branches_equal_separate_branches(prompt):
    torch.manual_seed(0)
    m = build(ModelConfig(text="hashed", block_channels=[16, 32], layers_per_block=1))
    # non-zero condition weights, so dropping the portrait changes the prediction
    torch.nn.init.normal_(m.unet.conv_in.weight, std=0.1)
    pipe = RelightPipeline(m.unet.eval(), m.vae, m.text_encoder, scheduler_by_name("ddim", m.scheduler.config))
    pipe.set_progress_bar_config(disable=True)
    x, env = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 8, 16)
    kw = dict(prompt=prompt, num_inference_steps=3)
    a = pipe(x, env, generator=torch.Generator().manual_seed(1), batched_branches=True, **kw)
    b = pipe(x, env, generator=torch.Generator().manual_seed(1), batched_branches=False, **kw)
    assert a.shape == (2, 3, 16, 16)
    assert torch.allclose(a, b, atol=1e-5)
    c = pipe(x, env, generator=torch.Generator().manual_seed(1), image_guidance_scale=1.0, **kw)
    assert not torch.allclose(a, c, atol=1e-3)  # the guidance scale matters


def test_pipeline_save_load_roundtrip_and_scheduler_swap(tmp_path):
    torch.manual_seed(0)
    m = build(ModelConfig(block_channels=[16, 32]))
    pipe = RelightPipeline(m.unet.eval(), m.vae, m.text_encoder, scheduler_by_name("ddim", m.scheduler.config))
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(str(tmp_path / "p"))
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert index["text_encoder"] == ["relight.components", "CaptionEncoder"]
    assert index["vae"] == ["relight.components", "PixelCodec"]
    again = RelightPipeline.from_pretrained(str(tmp_path / "p"))
    again.set_progress_bar_config(disable=True)
    x, env = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 8, 16)
    a = pipe(x, env, num_inference_steps=2, generator=torch.Generator().manual_seed(3))
    b = again(x, env, num_inference_steps=2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    for name in ("euler", "dpm++"):
        again.scheduler = scheduler_by_name(name, again.scheduler.config)
        out = again(x, env, num_inference_steps=3, generator=torch.Generator().manual_seed(3))
        assert torch.isfinite(out).all() and out.shape == a.shape
    with pytest.raises(ValueError, match="choose one of"):
        scheduler_by_name("plms", again.scheduler.config)


def test_pipeline_with_a_vae_and_clip_from_a_local_folder(tmp_path):
    sd = _tiny_sd(str(tmp_path / "sd"), clip=True)
    m = load_pretrained(ModelConfig(source="pretrained", pretrained=sd, text="clip"))
    assert m.downsample == 2 and m.tokenizer is not None
    pipe = RelightPipeline(m.unet.eval(), m.vae, m.text_encoder, scheduler_by_name("ddim", m.scheduler.config),
                           tokenizer=m.tokenizer)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 8, 16), prompt="a nice person.", num_inference_steps=2)
    assert out.shape == (1, 3, 16, 16)
    pipe.save_pretrained(str(tmp_path / "saved"))
    again = RelightPipeline.from_pretrained(str(tmp_path / "saved"))
    assert type(again.text_encoder).__name__ == "CLIPTextModel" and again.tokenizer is not None


def test_caption_encoder():
    enc = CaptionEncoder(dim=8, vocab_size=64, max_tokens=6)
    a, empty = enc(["A woman, lit from the left", ""])
    assert a.shape == (6, 8)
    assert torch.equal(empty, enc.null[0].expand(6, 8))  # the dropped text is all pads
    assert torch.equal(enc.tokenize(["lit left"]), enc.tokenize(["LIT  left!"]))
    null_only = CaptionEncoder(dim=8)
    assert torch.equal(null_only(["anything"]), null_only([""]))


def test_masked_psnr_ignores_the_background():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 16, 16, generator=g)
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    pred = target.clone()
    pred[..., :2, :] = 1 - pred[..., :2, :]  # damage only outside the mask
    pred[..., 4:12, 4:12] += 0.1
    m = metrics.all_metrics(pred.clamp(0, 1), target, mask)
    assert (m["psnr_masked"] > m["psnr"] + 3).all()
    ones = torch.ones_like(mask)
    assert torch.allclose(metrics.masked_psnr(pred, target, ones), metrics.psnr(pred, target), atol=1e-4)
    assert torch.allclose(metrics.ssim(target, target, mask), torch.ones(2), atol=1e-5)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"train\.max_stpes: unknown key; did you mean train\.max_steps"):
        config_mod.load(None, ["train.max_stpes=3"])
    with pytest.raises(ValueError, match=r"train\.dropout_env = 1\.5 must be in \[0, 1\]"):
        config_mod.load(None, ["train.dropout_env=1.5"])
    with pytest.raises(ValueError, match=r"model\.text = 'bert'"):
        config_mod.load(None, ["model.text='bert'"])
    with pytest.raises(ValueError, match=r"data\.resolution = 30 must be a multiple of 4"):
        config_mod.load(None, ["data.resolution=30"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nmax_steps = 3\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        config_mod.load(str(bad))
    cfg = config_mod.load(None, ["train.max_steps=7", "data.resolution=32"])
    assert cfg.train.max_steps == 7 and cfg.data.resolution == 32


def test_shipped_training_configs_parse():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tiny = config_mod.load(os.path.join(root, "jobs", "relight_tiny.toml"))
    assert tiny.model.source == "tiny" and tiny.data.resolution >= 48 and tiny.model.prediction_type == "sample"
    assert tiny.model.output == "ratio" and tiny.model.timesteps == "terminal" and tiny.train.val_steps == 1
    with pytest.raises(ValueError, match="needs model.pretrained"):
        config_mod.load(os.path.join(root, "jobs", "relight_sd15.toml"))
    sd = config_mod.load(os.path.join(root, "jobs", "relight_sd15.toml"), ["model.pretrained='/models/sd15'"])
    assert sd.train.lr == 1e-5 and sd.data.resolution == 512 and sd.train.mixed_precision == "bf16"
    # the paper's recipe stays the paper's: epsilon on the image at every noise level, l_I 3
    assert (sd.model.prediction_type, sd.model.output, sd.model.timesteps) == ("epsilon", "image", "uniform")
    assert sd.train.image_guidance == 3.0 and not sd.model.env_vector
