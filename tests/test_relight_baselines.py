"""The colour-transfer baseline of ``relight eval`` (relight/baselines.py) on cases computed by hand.

Mean irradiance of a camera-frame map over the camera-facing hemisphere,
``E = sum L max(0, d.z) dw / sum max(0, d.z) dw``:

* a constant map ``a``: ``E = a`` (so two constant maps give the ratio ``b / a``);
* light only where ``d.z <= 0`` (behind the subject, seen from the camera): ``E = 0``;
* ``L = max(0, d.z)``: ``int cos^2 dw / int cos dw = (2 pi / 3) / pi = 2 / 3``;
* a cap of half-angle 60 degrees around ``+z``: ``int_cap cos dw / pi = sin^2 60 = 3 / 4``.

And against the sphere fixture, whose renders are shaded from the same
``env_XX`` maps: the centre pixel (normal ``+z``) of two renders of one group
changes by the ratio of their irradiances.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from assets_manifest import envmap  # noqa: E402
from relight import baselines, data  # noqa: E402
from synthgen.format import codecs  # noqa: E402
from tests.relight_fixtures import make_sphere_dataset  # noqa: E402


def _rgb(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[..., None], 3, axis=-1)


def test_a_constant_map_has_its_value_as_irradiance_and_two_give_their_ratio():
    a, b = np.full((32, 64, 3), 0.25), np.full((32, 64, 3), 3.0)
    assert baselines.mean_irradiance(a) == pytest.approx([0.25] * 3, rel=1e-14)
    ratio = baselines.irradiance_ratio(baselines.mean_irradiance(a), baselines.mean_irradiance(b))
    assert ratio == pytest.approx([12.0] * 3, rel=1e-14)
    # per channel: a red map relit to a blue one
    red, blue = np.zeros((16, 32, 3)), np.zeros((16, 32, 3))
    red[..., 0], red[..., 2], blue[..., 0], blue[..., 2] = 2.0, 1.0, 1.0, 4.0
    e_red, e_blue = baselines.mean_irradiance(red), baselines.mean_irradiance(blue)
    assert baselines.irradiance_ratio(e_red, e_blue) == pytest.approx([0.5, 1.0, 4.0], rel=1e-14)  # G: 0 -> 0 gives 1


def test_light_behind_the_subject_gives_no_irradiance_and_the_front_half_counts_fully():
    h, w = 32, 64
    back = np.zeros((h, w, 3))
    back[:, : w // 4], back[:, 3 * w // 4:] = 100.0, 100.0  # |azimuth| > 90 degrees: d.z < 0
    assert np.array_equal(baselines.mean_irradiance(back), np.zeros(3))
    front = np.zeros((h, w, 3))
    front[:, w // 4: 3 * w // 4] = 2.0
    assert baselines.mean_irradiance(front) == pytest.approx([2.0] * 3, rel=1e-14)


@pytest.mark.parametrize("h", [128, 256])
def test_cosine_weighting_matches_the_integrals(h):
    d = envmap.directions(h, 2 * h)
    cosine = baselines.mean_irradiance(_rgb(np.maximum(d[..., 2], 0.0)))
    assert cosine == pytest.approx([2 / 3] * 3, abs=1e-4)
    cap = baselines.mean_irradiance(_rgb((d[..., 2] > 0.5).astype(np.float64)))  # within 60 deg of +z
    assert cap == pytest.approx([0.75] * 3, abs=2e-3)
    # an unweighted mean over the hemisphere would give 1/2 and 1/2: the weighting is what is checked
    assert abs(cosine[0] - 0.5) > 0.1 and abs(cap[0] - 0.5) > 0.2


def test_colour_transfer_scales_in_linear_light_and_rounds_like_the_png_encoder():
    codes = np.arange(256, dtype=np.float64) / 255.0
    img = torch.from_numpy(np.broadcast_to(codes, (1, 3, 1, 256)).copy()).float()
    same = baselines.colour_transfer(img, np.ones((1, 3)))
    assert torch.equal((same * 255).round().to(torch.uint8), (img * 255).round().to(torch.uint8))  # ratio 1: unchanged
    gains = np.array([[0.6, 2.0, 0.0]])  # 0.5 would put linear-segment codes on exact .5 ties
    out = (baselines.colour_transfer(img, gains)[0, :, 0] * 255).round().numpy().astype(np.uint8)
    linear = baselines.srgb_decode(codes)
    for c in range(3):
        assert np.array_equal(out[c], codecs.srgb_encode(linear * gains[0, c]))
    assert out[0, 255] == 203  # white under 0.6 of the light: 1.055 * 0.6 ** (1 / 2.4) - 0.055 = 0.7977 -> 203.4
    assert out[1, 255] == 255 and out[2].max() == 0  # clipped; no light
    # the 8-bit tables invert the writer's encoder exactly
    rng = np.random.default_rng(0)
    x = rng.random(10000)
    assert np.array_equal(baselines.srgb_encode8(x), codecs.srgb_encode(x))
    assert np.array_equal(baselines.srgb_encode8(baselines.srgb_decode(codes)), np.arange(256))


def test_the_irradiance_ratio_predicts_the_fixture_renders_centre_pixel(tmp_path):
    ds = str(tmp_path / "ds")
    make_sphere_dataset(ds, groups={"train": 1, "val": 1, "test": 2}, k=3, res=32)
    irr = baselines.group_irradiance(data.resolve_shards(ds, "test"))
    assert len(irr) == 2 and all(len(v) == 3 for v in irr.values())
    cfg = data.DataConfig(resolution=32, env_size=(16, 32), mask_input=False, shuffle_buffer=0, resampled=False)
    got, want = [], []
    for pair in data.iter_pairs(ds, "test", cfg):
        m = pair["meta"]
        want.append(baselines.irradiance_ratio(irr[m["group_key"]][m["i"]], irr[m["group_key"]][m["j"]]))
        centre = (slice(None), slice(15, 17), slice(15, 17))  # normals within 4 degrees of +z
        got.append(baselines.srgb_decode(pair["target"][centre].numpy()).mean(axis=(1, 2))
                   / baselines.srgb_decode(pair["input"][centre].numpy()).mean(axis=(1, 2)))
    got, want = np.log(np.array(got)), np.log(np.array(want))
    assert len(got) == 12
    # 8-bit renders and a small specular lobe: within ~20% per channel, and ratios spanning ~60x
    assert np.abs(got - want).max() < 0.2 and want.max() - want.min() > 2.0
