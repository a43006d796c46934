"""Hair specs without Blender: drawing, the job's [hair] section, resolving, plan rows and catalog specs (issue 15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from assets_manifest import hair
from assets_manifest.hair import BEARD_STYLES, DEFAULT_MIX, STYLES, draw_hair, resolve, summary
from synthgen import job as jobs, plan
from synthgen.job import JobError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = os.path.join(ROOT, "jobs", "quickstart.toml")
LENGTHS = {"shaved": (0.3, 1.0), "buzz": (2, 6), "short": (20, 70), "medium": (80, 180), "long": (200, 400),
           "curly": (40, 200), "tied_back": (150, 350)}


def test_draw_hair_is_deterministic_and_portable_json():
    a, b = draw_hair(17, masculinity=0.8), draw_hair(17, masculinity=0.8)
    assert a == b and json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert draw_hair(18) != draw_hair(17)
    # run in a fresh interpreter: nothing depends on process state
    code = ("import json; from assets_manifest.hair import draw_hair; "
            "print(json.dumps(draw_hair(17, masculinity=0.8), sort_keys=True))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == a


def test_draw_hair_ranges_and_mix():
    specs = [draw_hair(s, masculinity=(s % 11) / 10) for s in range(1500)]
    counts = {st: sum(sp["style"] == st for sp in specs) for st in STYLES}
    for st, w in DEFAULT_MIX.items():  # the drawn mix follows the weights (binomial, 5 sigma)
        assert abs(counts[st] / len(specs) - w) < 5 * (w * (1 - w) / len(specs)) ** 0.5, (st, counts)
    assert counts["short"] == max(counts.values())
    for sp in specs:
        lo, hi = LENGTHS[sp["style"]]
        assert lo <= sp["length_mm"] <= hi and 0 <= sp["style_u"] < 1
        assert sp["version"] == 1 and set(sp) >= {"seed", "density", "clumping", "curl", "curl_radius_mm", "frizz",
                                                  "parting", "hairline", "greying", "roughness", "coat"}
        for k in ("density", "clumping", "curl", "frizz", "greying", "melanin", "redness"):
            assert 0 <= sp[k] <= 1, k
        assert 80 <= sp["lashes"]["count"] <= 130 and 7 <= sp["lashes"]["length_mm"] <= 11
        assert sp["beard"]["style"] in BEARD_STYLES and 0 <= sp["hairline"]["recession"] <= 1
        assert (sp["tie"] != "none") == (sp["style"] == "tied_back")
        if sp["style"] == "curly":
            assert sp["curl"] >= 0.7 and 3 <= sp["curl_radius_mm"] <= 8
    # greying: mostly none, sometimes partial
    grey = [sp["greying"] for sp in specs]
    assert 0.55 < sum(g == 0 for g in grey) / len(grey) < 0.8 and any(0 < g < 0.5 for g in grey)
    # beards and recession rise with masculinity; beards mostly absent
    fem = [sp for s, sp in enumerate(specs) if s % 11 <= 3]
    masc = [sp for s, sp in enumerate(specs) if s % 11 >= 8]
    assert all(sp["beard"]["style"] == "none" for sp in fem)
    assert 0.4 < sum(sp["beard"]["style"] != "none" for sp in masc) / len(masc) < 0.9
    assert sum(sp["beard"]["style"] == "none" for sp in specs) > len(specs) / 2

    def mean_recession(group):
        return sum(sp["hairline"]["recession"] for sp in group) / len(group)

    assert mean_recession(masc) > mean_recession(fem) + 0.1


def test_draw_hair_takes_the_heads_colour_and_coverage():
    from assets_manifest.heads.params import HAIR_MIN_COVERAGE

    sp = draw_hair(5, melanin=0.93, redness=0.12, coverage=0.0)
    assert (sp["melanin"], sp["redness"]) == (0.93, 0.12) and sp["hairline"]["recession"] == 1.0
    assert hair.BALD_COVERAGE == HAIR_MIN_COVERAGE and draw_hair(5, coverage=0.07)["hairline"]["recession"] == 1.0
    assert draw_hair(5, coverage=0.3)["hairline"]["recession"] >= 0.6 - 1e-6
    assert hair.coverage_recession(0.8) == 0.0  # the procedural heads' full-hair band
    only_long = draw_hair(5, mix={"long": 1.0})
    assert only_long["style"] == "long" and only_long["style_u"] == draw_hair(5)["style_u"]


def test_resolve_keeps_the_head_and_applies_the_job():
    spec = draw_hair(123, masculinity=0.7)
    default = jobs.HairSection()
    r = resolve(spec, default)
    assert {k: v for k, v in r.items() if k not in ("facial", "density_scale")} == spec
    assert r["facial"] is True and r["density_scale"] == 1.0
    assert resolve(spec, jobs.HairSection(enabled=False)) is None and resolve(None, default) is None
    # a job mix with only "long": every head long, with its own seed, colour, hairline, brows and beard
    for s in range(40):
        sp = draw_hair(s, masculinity=s / 40)
        lo = resolve(sp, jobs.HairSection(styles={"long": 1.0}, facial=False, density_scale=0.5))
        assert lo["style"] == "long" and 200 <= lo["length_mm"] <= 400
        assert all(lo[k] == sp[k] for k in ("seed", "style_u", "melanin", "redness", "greying", "hairline",
                                             "brows", "lashes", "beard"))
        assert (lo["facial"], lo["density_scale"]) == (False, 0.5)
        # re-deriving a style gives the keys draw_hair gives that style: a head that was long stays identical
        if sp["style"] == "long":
            assert {k: v for k, v in lo.items() if k not in ("facial", "density_scale")} == sp
    assert summary(resolve(spec, default)) == {"style": spec["style"], "length_mm": spec["length_mm"],
                                               "melanin": spec["melanin"], "redness": spec["redness"],
                                               "greying": spec["greying"], "beard": spec["beard"]["style"]}
    assert summary(resolve(spec, jobs.HairSection(facial=False)))["beard"] == "none" and summary(None) is None


@pytest.mark.parametrize("override,message", [
    ("hair.styles={lng=1.0}", "hair.styles.lng: unknown hair style (styles: shaved, buzz,"),
    ("hair.styles={long=-1.0}", "hair.styles.long = -1.0 must be a non-negative number"),
    ("hair.styles={long=0, short=0}", "hair.styles: every weight is 0"),
    ("hair.styles=3", "hair.styles must be a table of style = weight"),
    ("hair.density_scale=-1", "hair.density_scale = -1.0 is out of range"),
    ("hair.enabled=2", "hair.enabled must be true or false"),
    ("hair.curly=1", "hair.curly: unknown key"),
])
def test_bad_hair_keys_are_one_line_errors(override, message):
    with pytest.raises(JobError) as e:
        jobs.load(QUICK, [override])
    assert message in str(e.value) and "\n" not in str(e.value) and "quickstart.toml" in str(e.value)


def test_plan_rows_carry_the_resolved_hair(catalog):
    load = lambda *o: jobs.load(QUICK, [f'job.catalogs=["{catalog}"]', *o])  # noqa: E731
    rows = plan.make_plan(load()).to_pylist()
    heads = {h["asset_id"]: json.loads(h["head"]["generator_params"])["hair"]
             for hs in plan.load_assets([catalog]).heads.values() for h in hs}
    for r in rows:
        assert json.loads(r["hair"]) == {**heads[r["head_asset_id"]], "facial": True, "density_scale": 1.0}
    assert all(r["hair"] is None for r in plan.make_plan(load("hair.enabled=false")).to_pylist())
    long_rows = plan.make_plan(load("hair.styles={long=1}")).to_pylist()
    assert {json.loads(r["hair"])["style"] for r in long_rows} == {"long"}
    # only the hair column changes with the [hair] section
    for a, b in zip(rows, long_rows):
        assert {k: v for k, v in a.items() if k != "hair"} == {k: v for k, v in b.items() if k != "hair"}
    assert plan.PLAN_SCHEMA.field("hair").type == "string"


def test_procedural_heads_get_hair_that_from_dict_can_skip():
    from assets_manifest.builtin import head_generator_params
    from assets_manifest.heads import HeadParams, sample_head_params

    p = sample_head_params(4)
    gp = head_generator_params(p)
    assert gp == json.loads(json.dumps(gp)) and gp == head_generator_params(sample_head_params(4))
    assert (gp["hair"]["melanin"], gp["hair"]["redness"]) == (p.hair_melanin, p.hair_redness)
    assert gp["hair"]["hairline"]["recession"] >= round(hair.coverage_recession(p.hair_coverage), 6)
    assert HeadParams.from_dict({k: v for k, v in gp.items() if k != "hair"}) == p


def _scan(root, files: dict[str, dict | None]):
    from assets_manifest import scan
    from conftest import head_mesh

    root.mkdir(exist_ok=True)
    (root / "_catalog.json").write_text(json.dumps({"license": "CC0-1.0"}))
    for i, (name, sidecar) in enumerate(files.items()):
        m = head_mesh()
        m.apply_scale(1.0 + 0.01 * i)  # distinct contents
        m.export(str(root / name))
        if sidecar is not None:
            (root / (name + ".asset.json")).write_text(json.dumps(sidecar))
    result = scan.scan(str(root), str(root / "manifest.parquet"), progress=False)
    return result, {r["name"]: json.loads(r["head"]["generator_params"] or "null") for r in result.rows}


def test_scanned_heads_get_hair_by_sha256_unless_the_sidecar_says_otherwise(tmp_path):
    files = {"a.glb": None, "b.glb": {"hair": False}, "c.glb": {"hair": {"style": "curly", "beard": {"style": "none"}}},
             "d.glb": {"material_roles": {"*": "hair"}}}
    result, gp = _scan(tmp_path / "one", files)
    assert not result.problems
    sha = {r["name"]: r["sha256"] for r in result.rows}
    assert gp["a"]["hair"] == draw_hair(hair.seed_from_sha256(sha["a"]))
    assert gp["b"] is None and gp["d"] is None  # off, and a head with hair of its own
    assert gp["c"]["hair"]["style"] == "curly" and gp["c"]["hair"]["curl"] >= 0.7
    assert gp["c"]["hair"]["beard"]["style"] == "none"
    # the same files elsewhere: the same specs
    _, again = _scan(tmp_path / "two", files)
    assert again == gp


@pytest.mark.parametrize("value,message", [
    ({"colour": 1}, "hair.colour: unknown key"),
    ({"style": "mohawk"}, "hair.style = 'mohawk' must be one of shaved"),
    ({"beard": {"style": "full"}}, "hair.beard.style = 'full' must be one of none"),
    ({"lashes": {"count": 1.5}}, "hair.lashes.count = 1.5 must be a non-negative integer"),
    ({"hairline": {"recession": 1.5}}, "hair.hairline.recession = 1.5 must be in [0, 1]"),
    ("long", "sidecar hair must be true, false or an object"),
])
def test_bad_sidecar_hair_is_a_one_line_problem(tmp_path, value, message):
    result, _ = _scan(tmp_path, {"a.glb": {"hair": value}})
    assert len(result.problems) == 1 and message in result.problems[0] and "a.glb" in result.problems[0]
