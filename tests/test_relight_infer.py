"""relight inference and evaluation through the real pieces: a tiny model trained on the sphere fixture.

Covers ``relight infer`` (one image, rotation strips and GIFs, env maps from
EXR files, procedural names and catalogs, bad input, and what a new user
tries: no alpha, tiny and fully transparent images, a square EXR), ``relight extract``,
``relight eval`` (tables with the copy-input and colour-transfer baselines and per-HDRI rows, the
grid, LPIPS and identity from local fake weights) and the metric helpers.
Nothing downloads: HF_HUB_OFFLINE is set and every weight file is made here.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from assets_manifest import hdri_io, procedural_hdri  # noqa: E402
from relight import cli, config as config_mod, envmaps, eval_nets, infer, inputs, train  # noqa: E402
from tests.relight_fixtures import make_sphere_dataset  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["data.resolution=32", "data.env_size=[32, 32]", "model.block_channels=[16, 32]", "train.batch_size=4",
        "train.val_steps=2", "train.val_pairs=2", "train.max_steps=3", "train.validate_every=0",
        "train.log_every=1", "data.shuffle_buffer=8"]
# one thread: tiny tensors on a shared 2-core machine run several times faster without OpenMP spinning
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}


class TinyEmbed(nn.Module):
    """A stand-in face-embedding network (random weights): what --identity-arch builds in the tests."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 16)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4)
        return self.fc(x.flatten(1))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Dataset, a model trained for 3 steps, a held-out render and local fake weights."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    os.environ["HF_HUB_OFFLINE"] = "1"
    root = tmp_path_factory.mktemp("infer")
    ds = str(root / "ds")
    make_sphere_dataset(ds, groups={"train": 2, "val": 1, "test": 2}, k=3, res=32)
    run = str(root / "run")
    train.run(config_mod.load(None, FAST), ds, run, progress=False)
    held = str(root / "held.png")
    rgba, info = infer.extract_render(ds, "test", None, 1)
    # a non-square, larger portrait: infer must centre-crop and resize it
    canvas = Image.new("RGBA", (80, 60), (0, 0, 0, 0))
    canvas.paste(rgba.resize((60, 60), Image.BICUBIC), (10, 0))
    canvas.save(held)
    exr = str(root / "sky.exr")
    hdri_io.write_exr(exr, procedural_hdri.generate("clear_sky", 5, 128).rgb)
    weights = _fake_weights(root)
    yield {"ds": ds, "model": os.path.join(run, "model"), "held": held, "held_info": info, "exr": exr,
           "root": root, **weights}
    torch.set_num_threads(threads)


def _fake_weights(root) -> dict:
    """LPIPS (lpips-package layout, and torchvision + head files in a folder) and identity nets, random."""
    torch.manual_seed(0)
    lp = eval_nets.LPIPS("alex")
    for lin in lp.lins:
        nn.init.uniform_(lin.weight, 0.0, 0.2)  # lpips heads are non-negative
    slices = {0: 1, 1: 1, 2: 2, 3: 2, 4: 2, 5: 3, 6: 3, 7: 3, 8: 4, 9: 4, 10: 5, 11: 5}
    full = {f"net.slice{slices[int(k.split('.')[0])]}.{k}": v for k, v in lp.features.state_dict().items()}
    heads = {f"lin{i}.model.1.weight": lin.weight.detach().clone() for i, lin in enumerate(lp.lins)}
    lpips_file = str(root / "lpips_alex.pth")
    torch.save({**full, **heads}, lpips_file)
    folder = root / "lpips_dir"
    folder.mkdir()
    torch.save({f"features.{k}": v for k, v in lp.features.state_dict().items()} | {"classifier.1.weight": torch.zeros(2, 2)},
               str(folder / "alexnet-owt-test.pth"))
    torch.save(heads, str(folder / "alex.pth"))
    net = TinyEmbed()
    ts = str(root / "ident.pt")
    torch.jit.script(net).save(ts)
    sd = str(root / "ident_state.pt")
    torch.save(net.state_dict(), sd)
    return {"lpips_file": lpips_file, "lpips_dir": str(folder), "ident_ts": ts, "ident_sd": sd}


def _run(*args, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "relight.cli", *args], capture_output=True, text=True, cwd=ROOT,
                       env=ENV, timeout=300)
    if check:
        assert r.returncode == 0, r.stderr[-2000:]
    return r


# ---------------------------------------------------------------- infer


def test_infer_cli_writes_the_relit_portrait_at_the_model_resolution(world, tmp_path):
    out = str(tmp_path / "relit.png")
    r = _run("infer", "--model", world["model"], "--image", world["held"], "--env", "procedural:studio:3",
             "--rotate", "90", "--steps", "3", "--scheduler", "euler", "--out", out)
    assert "wrote" in r.stdout and "90 deg" in r.stdout and r.stderr.strip() == ""
    img = Image.open(out)
    assert img.size == (32, 32) and img.mode == "RGB"
    assert np.asarray(img).std() > 0


def test_infer_rotations_write_a_strip_and_a_gif_with_n_frames(world, tmp_path, capsys):
    out = str(tmp_path / "strip.png")
    # in process (the subprocess path is covered above): same parser and command, no second torch import
    assert cli.main(["infer", "--model", world["model"], "--image", world["held"], "--env", world["exr"], "--env",
                     "procedural:rim:2", "--rotations", "4", "--steps", "2", "--tile", "64", "--out", out]) == 0
    stdout = capsys.readouterr().out
    gif = str(tmp_path / "strip.gif")
    assert "2 lighting(s) x 4 rotation(s)" in stdout and "8 frames" in stdout
    strip = Image.open(out)
    # input + 4 rotations per row, each cell a 64 px image over a 32 px high env map; two rows
    assert strip.size == (4 + 5 * (64 + 4), 18 + 2 * (96 + 18 + 4) + 4)
    anim = Image.open(gif)
    assert anim.n_frames == 8
    frames = []
    for k in range(anim.n_frames):
        anim.seek(k)
        frames.append(np.asarray(anim.convert("RGB"), dtype=np.float32))
    assert np.abs(frames[0] - frames[1]).mean() > 0.5  # the env strip turns from frame to frame


def _new_user_inputs(world, root) -> dict:
    """What a new user tries: a JPEG on a plain backdrop, a busy RGB photo, 8x8 and 1x1 images, an empty PNG."""
    rgba = Image.open(world["held"])  # 80x60, the sphere in its alpha
    backdrop = Image.new("RGB", rgba.size, (196, 200, 206))
    backdrop.paste(rgba, (0, 0), rgba)
    paths = {name: str(root / name) for name in ("plain.jpg", "busy.png", "8.png", "1.png", "empty.png")}
    backdrop.save(paths["plain.jpg"], quality=90)
    rng = np.random.default_rng(3)
    busy = np.asarray(backdrop.convert("RGB")).copy()
    busy[:20] = rng.integers(0, 256, busy[:20].shape)  # a busy photo: no plain border
    busy[-20:] = rng.integers(0, 256, busy[-20:].shape)
    Image.fromarray(busy).save(paths["busy.png"])
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(paths["8.png"])
    Image.new("RGB", (1, 1), (180, 120, 90)).save(paths["1.png"])
    Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(paths["empty.png"])
    return paths


def test_infer_takes_what_a_new_user_tries_silently(world, tmp_path, capsys):
    """Exit 0, nothing on stderr, the model's resolution out; the output line says where the mask came from."""
    paths = _new_user_inputs(world, tmp_path)
    square_exr = str(tmp_path / "square.exr")  # `assets_manifest validate` would refuse it: not 2:1
    hdri_io.write_exr(square_exr, np.ascontiguousarray(procedural_hdri.generate("studio", 2, 64).rgb[:, :32]))
    cases = [("plain.jpg", "procedural:studio:3", "estimated from the plain background"),
             ("busy.png", "procedural:studio:3", "whole image"),
             ("8.png", "procedural:studio:3", "whole image"),
             ("1.png", square_exr, "whole image"),
             ("empty.png", square_exr, "whole image (the alpha is fully transparent)")]
    for name, env, mask_from in cases:
        out = str(tmp_path / f"{name}.out.png")
        if name == "plain.jpg":  # one through a fresh process, exactly as typed
            r = _run("infer", "--model", world["model"], "--image", paths[name], "--env", env, "--steps", "2",
                     "--out", out)
            stdout, stderr = r.stdout, r.stderr
        else:
            assert cli.main(["infer", "--model", world["model"], "--image", paths[name], "--env", env,
                             "--steps", "2", "--out", out]) == 0, name
            stdout, stderr = capsys.readouterr()
        assert stderr.strip() == "", (name, stderr)
        assert stdout.count("\n") == 1 and stdout.rstrip().endswith(f"mask: {mask_from})"), (name, stdout)
        img = Image.open(out)
        assert img.size == (32, 32) and np.isfinite(np.asarray(img, dtype=np.float32)).all()


def test_portrait_masks_alpha_estimate_or_whole_image(world, tmp_path):
    paths = _new_user_inputs(world, tmp_path)
    truth = inputs.read_portrait(world["held"], 32)
    assert truth.mask_from == "alpha channel"
    plain = inputs.read_portrait(paths["plain.jpg"], 32)
    assert plain.mask_from == "estimated from the plain background"
    a, b = truth.mask[0] > 0.5, plain.mask[0] > 0.5
    assert (a & b).sum() / (a | b).sum() > 0.85  # the estimate finds the sphere the alpha outlines
    assert inputs.read_portrait(paths["plain.jpg"], 32, use_alpha=False).mask is None  # --no-mask: none estimated
    for name in ("busy.png", "8.png", "1.png", "empty.png"):
        p = inputs.read_portrait(paths[name], 32)
        assert p.mask is None and p.image.shape == (3, 32, 32), name
    # upscaled, not refused: the 1x1 image is one colour everywhere
    one = inputs.read_portrait(paths["1.png"], 32).image
    assert torch.allclose(one, torch.tensor([180, 120, 90]).div(255).view(3, 1, 1).expand(3, 32, 32), atol=1e-6)
    # a backdrop-coloured face inside the outline stays foreground (the fill starts at the border)
    ring = torch.full((3, 32, 32), 0.8)
    ring[:, 8:24, 8:24] = 0.2
    ring[:, 12:20, 12:20] = 0.8
    m = inputs.estimate_mask(ring)
    assert m is not None and m[0, 8:24, 8:24].min() == 1 and m.sum() == 16 * 16


def test_each_lighting_starts_from_the_same_noise(world):
    pipe = infer.load_pipeline(world["model"], "ddim", "cpu")
    geo = inputs.model_geometry(world["model"], pipe)
    assert (geo.resolution, geo.env_size, geo.mask_input) == (32, (32, 32), True)  # from the run's config.json
    portrait, mask = inputs.load_portrait(world["held"], geo.resolution)
    assert mask is not None and 0.2 < mask.mean() < 0.9  # the alpha channel, cropped like the image
    light = inputs.resolve_env("procedural:studio:3")
    conds = [inputs.env_condition(light, a, 1.0, geo.env_size) for a in (0.0, 0.0, 120.0)]
    s = infer.Settings(steps=3, seed=7, batch=2)  # two pipeline calls: the noise must not depend on the batch
    out = infer.relight(pipe, infer.model_input(portrait, mask, geo), conds, s)
    assert out.shape == (3, 3, 32, 32)
    assert torch.equal(out[0], out[1])
    assert (out[0] - out[2]).abs().mean() > 1e-3
    again = infer.relight(pipe, infer.model_input(portrait, mask, geo), conds[:1], s)
    assert torch.allclose(again[0], out[0], atol=1e-4)  # seeded (a batch of 1 rounds a little differently)


def test_env_from_exr_procedural_and_catalog_names_and_rotation_turns_it(world, tmp_path):
    from assets_manifest.scan import record_for
    from assets_manifest.schema import write_manifest

    exr = inputs.resolve_env(world["exr"])
    assert exr.label == "sky" and np.allclose(exr.rgb, np.maximum(hdri_io.read_hdri(world["exr"]), 0))
    proc = inputs.resolve_env("procedural:overcast:4")
    assert proc.rgb.shape[1] == 2 * proc.rgb.shape[0]
    # a catalog's HDRIs by name (what a machine without bpy uses)
    cat = tmp_path / "cat"
    (cat / "hdri").mkdir(parents=True)
    path = str(cat / "hdri" / "myroom.exr")
    hdri_io.write_exr(path, procedural_hdri.generate("studio", 1, 64).rgb)
    manifest = str(cat / "manifest.parquet")
    row, problems = record_for(path, manifest, "CC0-1.0", "test")
    assert not problems
    write_manifest([{**row, "split": "test"}], manifest)
    assert inputs.resolve_env("myroom", catalog=manifest).rgb.shape == (32, 64, 3)
    with pytest.raises(inputs.InputError, match="unknown HDRI name; did you mean myroom"):
        inputs.resolve_env("myrom", catalog=manifest)

    # rotation turns the camera-frame map about the vertical: 90 degrees moves it a quarter turn
    w = 64
    studio = inputs.resolve_env("procedural:studio:3")  # softboxes: plenty of structure in azimuth
    e0, e90, e360 = (inputs.env_condition(studio, a, 1.0, (w // 2, w))["env"].numpy() for a in (0.0, 90.0, 360.0))
    assert np.allclose(e0, e360, atol=1e-6)
    assert np.abs(e0 - e90).mean() > 0.01
    err = {k: np.abs(np.roll(e0, k, axis=2) - e90).mean() for k in range(w)}
    assert min(err, key=err.get) in (w // 4, 3 * w // 4)
    # exactly what `relight envmap` / synthgen produce for that rotation
    ldr = envmaps.camera_frame_ldr(exr.rgb, 90.0, 1.0, 2 * w)
    got = inputs.env_condition(exr, 90.0, 1.0, (w // 2, w))["env_ldr_png"].numpy()
    assert np.array_equal(got, ldr)


def test_bad_inputs_are_one_line_errors_with_their_exit_codes(world, tmp_path, capsys):
    junk = tmp_path / "junk.png"
    junk.write_text("not a png")
    small_mask = tmp_path / "mask.png"
    Image.new("L", (5, 5), 255).save(small_mask)
    base = ["infer", "--model", world["model"], "--image", world["held"], "--env", "procedural:studio:1",
            "--out", str(tmp_path / "o.png")]
    # 1: missing or unreadable input data; 2: a bad flag value (assets_manifest.cli_errors)
    cases = [
        (["--image", str(tmp_path / "missing.png")], "--image", "file not found", 1),
        (["--image", str(junk)], "junk.png", "not a readable image", 1),
        (["--mask", str(small_mask)], "mask.png", "differs from --image", 2),
        (["--env", "no_such_map", "--catalog", str(tmp_path / "none.parquet")], "none.parquet", "file not found", 1),
        (["--env", str(tmp_path / "x.exr")], "x.exr", "file not found", 1),
        (["--env", "procedural:sparkle:1"], "procedural:sparkle:1", "STYLE one of", 2),
        (["--model", str(tmp_path)], str(tmp_path), "no model_index.json", 1),
        (["--model", str(tmp_path / "nomodel")], "nomodel", "no such folder", 1),
        (["--rotations", "0"], "--rotations 0", "must be >= 1", 2),
        (["--exposure", "-1"], "--exposure -1", "must be > 0", 2),
        (["--size", "31"], "--size 31", "multiple of", 2),
    ]
    for extra, names, says, code in cases:
        args = list(base)
        for i in range(0, len(extra), 2):  # replace or append each flag
            if extra[i] in args[:-2]:
                args[args.index(extra[i]) + 1] = extra[i + 1]
            else:
                args += extra[i:i + 2]
        assert cli.main(args) == code, extra
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error: ") and names in err and says in err, (extra, err)
    assert cli.main(["eval", "--model", world["model"], "--shards", world["ds"], "--out", str(tmp_path / "e"),
                     "--split", "nope"]) == 2
    assert "no 'nope' split" in capsys.readouterr().err
    assert cli.main(["extract", "--shards", world["ds"], "--key", "nokey", "--out", str(tmp_path / "x.png")]) == 2
    assert "--key nokey: no such group" in capsys.readouterr().err


def test_unknown_builtin_name_lists_the_available_maps():
    if not inputs.builtin_hdris():
        pytest.skip("bpy (the built-in HDRIs) is not installed")
    with pytest.raises(inputs.InputError, match="did you mean studio.*available: .*forest"):
        inputs.resolve_env("studoi")
    assert inputs.resolve_env("forest").rgb.ndim == 3


# ---------------------------------------------------------------- eval


def test_eval_cli_writes_tables_with_baseline_and_per_hdri_rows_and_a_grid(world, tmp_path):
    out = str(tmp_path / "eval")
    r = _run("eval", "--model", world["model"], "--shards", world["ds"], "--out", out, "--steps", "2",
             "--pairs", "2", "--batch", "4", "--lpips-weights", world["lpips_file"],
             "--identity-weights", world["ident_sd"], "--identity-arch", "tests.test_relight_infer:TinyEmbed",
             "--identity-size", "32", "-q")
    assert "4 pairs of the test split" in r.stdout
    printed = [line.split()[0] for line in r.stdout.splitlines()[2:5]]
    assert printed == ["model", "copy", "colour"] and r.stdout.count(" dB ") == 3  # the three methods side by side
    with open(os.path.join(out, "metrics.csv"), newline="") as f:
        table = list(csv.DictReader(f))
    hdris = sorted({row["hdri"] for row in table} - {"all"})
    assert hdris and all(h.endswith(tuple("0123456789")) for h in hdris)  # names (style_seed), not asset ids
    assert world["held_info"]["hdri"].endswith(tuple("0123456789"))  # `relight extract` names the map too
    assert len(table) == 3 * (1 + len(hdris))
    assert [row["method"] for row in table[:3]] == ["model", "copy input (baseline)", "colour transfer (baseline)"]
    assert sum(int(row["pairs"]) for row in table if row["hdri"] != "all" and row["method"] == "model") == 4
    for row in table:
        for col in ("psnr_masked", "psnr", "ssim_masked", "ssim", "lpips", "lpips_masked", "identity"):
            assert np.isfinite(float(row[col])), (row, col)
    md = open(os.path.join(out, "metrics.md")).read()
    assert "| copy input (baseline) | **all** |" in md and "LPIPS masked" in md and "identity dist." in md
    assert "| metric (all pairs) | model | copy input (baseline) | colour transfer (baseline) |" in md
    with open(os.path.join(out, "pairs.csv"), newline="") as f:
        pairs = list(csv.DictReader(f))
    assert len(pairs) == 12 and {p["method"] for p in pairs} == {"model", "copy input (baseline)",
                                                                  "colour transfer (baseline)"}
    grid = Image.open(os.path.join(out, "grid.png"))
    # input | env | target | colour transfer | prediction, 4 rows
    assert grid.size[0] == 5 * 130 + 2 and grid.size[1] > 4 * 128


def test_eval_in_process_masked_metrics_and_baseline(world, tmp_path):
    from relight import evaluate

    s = evaluate.evaluate(world["model"], world["ds"], str(tmp_path / "e"), infer.Settings(steps=2),
                          evaluate.EvalOptions(pairs=1, batch_size=8, lpips_weights=world["lpips_dir"],
                                               identity_weights=world["ident_ts"], identity_size=32),
                          progress=False)
    assert s["pairs"] == 2 and s["lpips"] == "LPIPS v0.1 alex" and s["identity"]
    assert list(s["overall"]) == ["model", "copy input (baseline)", "colour transfer (baseline)"]
    for name in ("copy input (baseline)", "colour transfer (baseline)"):
        base = s["overall"][name]
        # the baselines on the sphere renders: same subject, other light
        assert 5 < base["psnr_masked"] < 60 and 0 < base["ssim_masked"] <= 1 and base["identity"] >= 0
    assert s["overall"]["copy input (baseline)"] != s["overall"]["colour transfer (baseline)"]
    # the colour-transfer rows are the baseline of each pair's own lightings: input i -> target j
    from relight import baselines, data, metrics

    with open(os.path.join(str(tmp_path / "e"), "pairs.csv"), newline="") as f:
        rows = {r["key"]: float(r["psnr_masked"]) for r in csv.DictReader(f) if r["method"].startswith("colour")}
    irr = baselines.group_irradiance(data.resolve_shards(world["ds"], "test"))
    cfg = data.DataConfig(resolution=32, env_size=(32, 32), mask_input=False, shuffle_buffer=0, resampled=False)
    for pair in data.iter_pairs(world["ds"], "test", cfg, pairs=1):
        g, i, j = pair["meta"]["group_key"], pair["meta"]["i"], pair["meta"]["j"]
        ratio = irr[g][j] / irr[g][i]
        want = metrics.masked_psnr(baselines.colour_transfer(pair["input"][None], ratio[None]), pair["target"][None],
                                   pair["mask"][None])
        assert rows.pop(pair["key"]) == pytest.approx(float(want), abs=1e-3)
    assert rows == {}


def test_masked_metrics_ignore_the_background():
    from relight import metrics

    torch.manual_seed(0)
    target = torch.rand(2, 3, 32, 32)
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    pred = target.clone()
    pred[..., :4, :] = torch.rand(2, 3, 4, 32)  # wrong only outside the mask
    m = metrics.all_metrics(pred, target, mask)
    assert (m["psnr_masked"] >= 99).all() and (m["psnr"] < 30).all()
    assert torch.allclose(m["ssim_masked"], torch.ones(2), atol=1e-4) and (m["ssim"] < 0.99).all()


def test_lpips_and_identity_from_local_weights(world):
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    file_net, dir_net = eval_nets.load_lpips(world["lpips_file"]), eval_nets.load_lpips(world["lpips_dir"])
    d = file_net(a, b)
    assert d.shape == (2,) and (d > 0).all()
    assert torch.allclose(d, dir_net(a, b)) and torch.allclose(d, file_net(b, a))
    assert torch.allclose(file_net(a, a), torch.zeros(2))
    ones = torch.ones(2, 1, 64, 64)
    assert torch.allclose(file_net(a, b, ones), d, rtol=0.05)  # the spatial map averages to the same distance
    ts = eval_nets.load_identity(world["ident_ts"], size=32)
    sd = eval_nets.load_identity(world["ident_sd"], "tests.test_relight_infer:TinyEmbed", size=32)
    assert torch.allclose(ts(a, b), sd(a, b), atol=1e-6) and torch.allclose(ts(a, a), torch.zeros(2), atol=1e-6)
    with pytest.raises(inputs.InputError, match="not a TorchScript file"):
        eval_nets.load_identity(world["ident_sd"])
    with pytest.raises(inputs.InputError, match="no backbone weights"):
        eval_nets.load_lpips(world["ident_sd"])


def test_extract_from_a_missing_path_says_no_such_folder_or_shard(tmp_path):
    """`relight extract --shards nothere`: the path may have been meant as a dataset folder, not only a shard."""
    from conftest import run_cli

    missing = str(tmp_path / "nothere")
    r = run_cli("extract", "--shards", missing, "--out", str(tmp_path / "x.png"), module="relight.cli")
    assert (r.returncode, r.stderr.strip()) == (1, f"error: {missing}: no such folder or shard")  # missing data
    r = run_cli("extract", "--shards", missing + "/train-{000000..000002}.tar", "--out", str(tmp_path / "x.png"),
                module="relight.cli")  # a pattern names shards: the first missing one, and how many more
    assert r.stderr.strip() == f"error: {missing}/train-000000.tar: no such shard (and 2 more)"
