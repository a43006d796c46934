"""The cluster recipes in jobs/: they parse, and the synthgen command each runs parses with synthgen's own CLI."""

from __future__ import annotations

import os
import re
import shlex
import subprocess

import pytest
import yaml

from synthgen.cli import build_parser

JOBS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "jobs")


def render_commands(text: str) -> list[list[str]]:
    """Every `synthgen render JOB ...` command in a text: continuation lines joined, an enclosing
    quote (ray exec "...") unwrapped, shell variables given the defaults the script sets."""
    text = re.sub(r"\\\n\s*", " ", text)
    defaults = dict(re.findall(r"^(\w+)=\$\{\w+:-([^}]*)\}", text, re.M))
    out = []
    for line in text.splitlines():
        m = re.search(r"synthgen render (\S+)", line)
        if not m or not re.search(r"(\.toml|\$JOB\"?)$", m.group(1)):
            continue
        i = m.start()
        cmd = line[i:]
        if i and line[i - 1] in "'\"":
            cmd = cmd[: cmd.index(line[i - 1])]
        cmd = re.sub(r"\$(\w+)", lambda v: defaults.get(v.group(1), v.group(0)), cmd)
        cmd = re.sub(r"\s*&\s*$", "", cmd)  # run in the background by the script
        out.append(shlex.split(cmd)[1:])
    return out


def check_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.command == "render" and args.job.endswith(".toml") and not args.local
    assert args.address or os.environ.get("RAY_ADDRESS") is not None or "--address" in argv


def test_ray_cluster_launcher_yaml():
    with open(os.path.join(JOBS, "ray-cluster-aws.yaml")) as f:
        text = f.read()
    cfg = yaml.safe_load(text)
    assert cfg["provider"]["type"] == "aws"
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types and {"cpu_worker", "gpu_worker"} <= set(types)
    assert types["gpu_worker"]["node_config"]["InstanceType"].startswith(("g", "p"))
    assert any("ray start --head" in c for c in cfg["head_start_ray_commands"])
    assert any("ray start --address" in c for c in cfg["worker_start_ray_commands"])
    commands = render_commands(text)
    assert commands
    for argv in commands:
        check_command(argv)
        assert build_parser().parse_args(argv).out.startswith("s3://")


def test_kuberay_rayjob_manifest():
    with open(os.path.join(JOBS, "kuberay-rayjob.yaml")) as f:
        doc = yaml.safe_load(f)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    spec = doc["spec"]
    groups = {g["groupName"]: g for g in spec["rayClusterSpec"]["workerGroupSpecs"]}
    assert {"cpu", "gpu"} <= set(groups)
    gpu = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu["nvidia.com/gpu"] == 1
    assert spec["entrypoint"].startswith("synthgen render ")
    check_command(shlex.split(spec["entrypoint"])[1:])


def test_slurm_sbatch_script():
    path = os.path.join(JOBS, "slurm-ray.sbatch")
    r = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open(path) as f:
        text = f.read()
    assert "#SBATCH --nodes=" in text and "ray start --head" in text and "ray start --address" in text
    commands = render_commands(text)
    assert commands
    for argv in commands:
        check_command(argv)


@pytest.mark.parametrize("name", ["ray-cluster-aws.yaml", "kuberay-rayjob.yaml", "slurm-ray.sbatch"])
def test_recipe_job_files_exist(name):
    with open(os.path.join(JOBS, name)) as f:
        text = f.read()
    for argv in render_commands(text):
        job = build_parser().parse_args(argv).job
        if "$" not in job:
            assert os.path.basename(job) in os.listdir(JOBS), job
