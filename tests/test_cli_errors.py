"""One-line errors and exit codes of every command line (assets_manifest.cli_errors): 0 ok, 1 runtime failure,
2 bad usage, 130 interrupted; a traceback only with --debug."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

from assets_manifest import cli_errors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = os.path.join(ROOT, "jobs", "quickstart.toml")


def synthgen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthgen.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


# ---------------------------------------------------------------- the shared wrapper


def _parser(func):
    def build():
        p = argparse.ArgumentParser(prog="x")
        p.add_argument("--debug", action="store_true")
        sub = p.add_subparsers(dest="command", required=True)
        sub.add_parser("go").set_defaults(func=func)
        return p
    return build


def _raise(exc):
    def func(args):
        raise exc
    return func


@pytest.mark.parametrize("exc, code, line", [
    (ValueError("--n 0: must be >= 1"), 2, "error: --n 0: must be >= 1"),
    (cli_errors.usage(RuntimeError("pass --resume")), 2, "error: pass --resume"),
    (cli_errors.runtime(ValueError("x.tar: truncated")), 1, "error: x.tar: truncated"),
    (NotADirectoryError(20, "Not a directory", "/dev/null/x"), 1, "error: /dev/null/x: Not a directory"),
    (KeyError("counts"), 1, "error: KeyError: 'counts' (run with --debug for the traceback)"),
    (RuntimeError("two\nlines"), 1, "error: RuntimeError: two lines (run with --debug for the traceback)"),
    (KeyboardInterrupt(), 130, "error: stopped"),
])
def test_every_failure_is_one_line_with_its_exit_code(exc, code, line, capsys):
    assert cli_errors.run(_parser(_raise(exc)), ["go"], interrupted="stopped") == code
    assert capsys.readouterr().err.splitlines() == [line]


@pytest.mark.parametrize("argv", [["--debug", "go"], ["go", "--debug"]])
def test_debug_before_or_after_the_subcommand_adds_the_traceback(argv, capsys):
    assert cli_errors.run(_parser(_raise(KeyError("counts"))), argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "KeyError: 'counts'" in err
    assert err.splitlines()[-1] == "error: KeyError: 'counts' (run with --debug for the traceback)"


def test_debug_after_a_double_dash_is_an_argument():
    assert cli_errors.take_debug(["go", "--debug", "--", "--debug"]) == (["go", "--", "--debug"], True)
    assert cli_errors.take_debug(["go"]) == (["go"], False)


def test_argparse_usage_errors_still_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli_errors.run(_parser(_raise(ValueError())), ["go", "--nope"])
    assert e.value.code == 2


def test_error_classes_say_their_kind():
    from assets_manifest.schema import AssetError
    from synthgen.job import JobError

    assert (AssetError.exit_code, JobError.exit_code) == (1, 2)
    relight_errors = pytest.importorskip("relight.errors")  # torch-free module
    assert relight_errors.TrainError("no pairs").exit_code == 1
    assert cli_errors.usage(relight_errors.TrainError("pass --resume")).exit_code == 2


# ---------------------------------------------------------------- synthgen


def test_plan_into_an_impossible_folder_is_one_line_and_debug_shows_the_traceback(catalog):
    args = ["plan", QUICK, "--set", f'job.catalogs=["{catalog}"]', "--out", "/dev/null/x"]
    r = synthgen(*args)
    assert (r.returncode, r.stdout, r.stderr.strip()) == (1, "", "error: /dev/null/x: Not a directory")
    for argv in (["--debug", *args], [*args, "--debug"]):
        r = synthgen(*argv)
        assert r.returncode == 1 and "Traceback (most recent call last):" in r.stderr, argv
        assert "NotADirectoryError" in r.stderr and r.stderr.strip().splitlines()[-1] == \
            "error: /dev/null/x: Not a directory"


def test_inspect_a_dataset_json_without_counts(tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "dataset.json").write_text(json.dumps({"format": "relight-wds/1", "job": {}, "splits": {}}))
    r = synthgen("inspect", str(ds))
    assert (r.returncode, r.stdout, r.stderr.strip()) == (
        1, "", f"error: {ds / 'dataset.json'}: no 'counts' key (not a complete synthgen dataset.json)")
    (ds / "dataset.json").write_text("{trunc")
    r = synthgen("inspect", str(ds))
    assert r.returncode == 1 and r.stderr.startswith(f"error: {ds / 'dataset.json'}: not valid JSON (")
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_bad_job_key_is_usage_and_an_unknown_flag_too(tmp_path):
    r = synthgen("plan", QUICK, "--set", "render.nope=1", "--out", str(tmp_path / "p"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "nope" in r.stderr, r.stderr
    r = synthgen("--debug", "plan", QUICK, "--nope")
    assert r.returncode == 2 and "unrecognized arguments: --nope" in r.stderr


# ---------------------------------------------------------------- relight


def test_relight_train_nan_loss_exits_1(tmp_path, monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    from relight import cli, train
    from tests.relight_fixtures import make_sphere_dataset

    ds = str(tmp_path / "ds")
    make_sphere_dataset(ds, groups={"train": 4, "val": 2, "test": 2}, k=2, res=32)
    monkeypatch.setattr(train, "diffusion_loss", lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    sets = [a for s in ["data.resolution=32", "data.env_size=[32, 32]", "model.block_channels=[16, 32]",
                        "train.batch_size=2", "train.validate_every=0"] for a in ("--set", s)]
    code = cli.main(["train", "--shards", ds, "--out", str(tmp_path / "run"), "--max-steps", "2", *sets])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error: " in line]  # after tqdm's bar
    assert code == 1 and len(errors) == 1 and "loss became nan at step 0" in errors[0], errors
    # a config value is still bad usage
    assert cli.main(["train", "--shards", ds, "--out", str(tmp_path / "r2"), "--set", "train.lr=-1"]) == 2
    assert capsys.readouterr().err.strip() == "error: <config>: train.lr = -1.0 must be > 0"
