"""containers/containers.mk: the image builds, and the command each workflow stage runs with.

The workflow's Make rules call $(RUN_graph) ... $(RUN_report); RUNNER picks the local venv or a
`docker run` of the stage's image. Make itself is run here (no docker engine is needed): the
variables are printed, the builds dry-run with -n, and a rule built the way the workflow builds
its rules runs a stand-in `docker` that records the argument vector it was given.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.containers.dockerfile import CONTAINERS, ROOT, project, tools

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

MK = CONTAINERS / "containers.mk"
TOOLS = tools()
GPU_TOOLS = ["execute", "profile"]


# The fragment's knobs, which the caller's environment (say, `make test RUNNER=docker`) must not set.
KNOBS = {
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
    "RUNNER",
    "VARIANT",
    "DOCKER",
    "IMAGE_PREFIX",
    "DOCKER_BUILD_FLAGS",
    "DOCKER_GPU_FLAGS",
    "PYTHON_IMAGE",
    "CUDA_IMAGE",
    "SOURCE_URL",
    "REVISION",
    "AUTOTM_GIT_URL",
}


def clean_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if k not in KNOBS and not k.startswith("DOCKER_RUN_")
    }


def make(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-s", "-f", str(MK), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )


def value(name: str, *args: str) -> str:
    result = make(f"print-{name}", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def version(tool: str) -> str:
    return str(project(f"tools/{tool}")["version"])


def docker_prefix() -> str:
    return f'docker run --rm -u {os.getuid()}:{os.getgid()} -v "{ROOT}":/data -w /data'


@pytest.mark.parametrize("tool", TOOLS)
def test_local_runner_is_the_default(tool: str) -> None:
    assert value(f"RUN_{tool}") == f".venv/bin/autotm-{tool}"
    assert value(f"RUN_{tool}", "RUNNER=local") == f".venv/bin/autotm-{tool}"


@pytest.mark.parametrize("tool", TOOLS)
def test_docker_runner(tool: str) -> None:
    expected = f"{docker_prefix()} autotm-{tool}:{version(tool)}"
    assert value(f"RUN_{tool}", "RUNNER=docker") == expected


@pytest.mark.parametrize("tool", TOOLS)
def test_cuda_variant_applies_to_profile_and_execute_only(tool: str) -> None:
    got = value(f"RUN_{tool}", "RUNNER=docker", "VARIANT=cuda")
    if tool in GPU_TOOLS:
        expected = f"{docker_prefix()} --gpus all autotm-{tool}:{version(tool)}-cuda"
    else:
        expected = f"{docker_prefix()} autotm-{tool}:{version(tool)}"
    assert got == expected
    assert value(f"RUN_{tool}", "VARIANT=cuda") == f".venv/bin/autotm-{tool}"


def test_passthrough_flags_every_stage_and_one_stage() -> None:
    args = (
        "RUNNER=docker",
        "DOCKER_RUN_FLAGS=--cap-add SYS_NICE",
        "DOCKER_RUN_FLAGS_execute=-v /mnt/pmem0:/mnt/pmem0 --device /dev/dax0.0",
        "VARIANT=cuda",
        "DOCKER_GPU_FLAGS=--gpus device=1",
        "IMAGE_PREFIX=registry.example/autotm/",
    )
    assert value("RUN_execute", *args) == (
        f"{docker_prefix()} --gpus device=1 --cap-add SYS_NICE -v /mnt/pmem0:/mnt/pmem0 "
        f"--device /dev/dax0.0 registry.example/autotm/autotm-execute:{version('execute')}-cuda"
    )
    assert value("RUN_report", *args) == (
        f"{docker_prefix()} --cap-add SYS_NICE "
        f"registry.example/autotm/autotm-report:{version('report')}"
    )


@pytest.mark.parametrize("bad", ["RUNNER=podman", "VARIANT=rocm"])
def test_unknown_runner_or_variant_is_refused(bad: str) -> None:
    result = make("print-RUN_graph", bad)
    assert result.returncode != 0
    assert bad.split("=")[1] in result.stderr


def build_lines(*args: str) -> list[list[str]]:
    result = make("-n", *args)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines() if line.strip()]


def option_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_images_builds_every_image() -> None:
    lines = build_lines("images", "SOURCE_URL=https://example.org/autotm", "REVISION=abc")
    built = {}
    for argv in lines:
        assert argv[:2] == ["docker", "build"]
        assert argv[-1] == str(ROOT), "the build context is the repository root"
        (dockerfile,) = option_values(argv, "-f")
        path = Path(dockerfile)
        assert path.is_file()
        tool = path.parent.name
        build_args = dict(a.split("=", 1) for a in option_values(argv, "--build-arg"))
        assert build_args["VERSION"] == version(tool)
        assert build_args["SOURCE_URL"] == "https://example.org/autotm"
        assert build_args["REVISION"] == "abc"
        built[(tool, path.name)] = option_values(argv, "-t")
    expected = {(t, "Dockerfile") for t in TOOLS} | {(t, "Dockerfile.cuda") for t in GPU_TOOLS}
    assert set(built) == expected
    for (tool, name), tags in built.items():
        suffix = "-cuda" if name.endswith(".cuda") else ""
        assert tags == [f"autotm-{tool}:{version(tool)}{suffix}", f"autotm-{tool}:latest{suffix}"]


def test_images_cpu_pulls_no_cuda_base_and_mirrors_reach_the_right_images() -> None:
    cpu = build_lines("images-cpu", "PYTHON_IMAGE=mirror.example/python:3.11-slim-bookworm")
    assert len(cpu) == len(TOOLS)
    for argv in cpu:
        assert not option_values(argv, "-f")[0].endswith(".cuda")
        assert "PYTHON_IMAGE=mirror.example/python:3.11-slim-bookworm" in argv
    cuda = build_lines("images-cuda", "CUDA_IMAGE=mirror.example/cuda:12.6.3-runtime-ubuntu24.04")
    assert len(cuda) == len(GPU_TOOLS)
    for argv in cuda:
        assert "CUDA_IMAGE=mirror.example/cuda:12.6.3-runtime-ubuntu24.04" in argv
        assert not any(a.startswith("PYTHON_IMAGE=") for a in argv)


@settings(max_examples=15, deadline=None)
@given(
    user=st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True),
    token=st.from_regex(r"[A-Za-z0-9_]{8,24}", fullmatch=True),
    host=st.sampled_from(["github.com", "gitlab.example.org", "git.example:8443"]),
    path=st.from_regex(r"[a-z]{1,8}/[a-z][a-z-]{0,10}", fullmatch=True),
    dotgit=st.booleans(),
)
def test_source_url_never_carries_credentials(
    user: str, token: str, host: str, path: str, dotgit: bool
) -> None:
    remote = f"https://{user}:{token}@{host}/{path}" + (".git" if dotgit else "")
    url = value("SOURCE_URL", f"AUTOTM_GIT_URL={remote}")
    assert token not in url
    assert url == f"https://{host}/{path}"


@pytest.mark.parametrize(
    ("remote", "url"),
    [
        ("git@github.com:org/autotm.git", "https://github.com/org/autotm"),
        ("https://github.com/org/autotm", "https://github.com/org/autotm"),
        ("", ""),
    ],
)
def test_source_url_forms(remote: str, url: str) -> None:
    assert value("SOURCE_URL", f"AUTOTM_GIT_URL={remote}") == url


# ---- a rule built like the workflow's, with a stand-in docker that records its arguments ----

FAKE_DOCKER = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["ARGV_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
"""

WORKFLOW = """\
include {mk}

define stage_rule
$(OUT)/$(1).json:
\t$(RUN_$(1)) --input 'model file.onnx' -o $$@
endef

OUT := out
$(foreach t,graph execute,$(eval $(call stage_rule,$(t))))

all: $(OUT)/graph.json $(OUT)/execute.json
"""


@pytest.fixture
def workflow_dir(tmp_path: Path) -> Path:
    """A project directory with a space in its name, a Makefile, and a fake docker."""
    project_dir = tmp_path / "my project"
    project_dir.mkdir()
    (project_dir / "Makefile").write_text(WORKFLOW.format(mk=MK))
    fake = tmp_path / "docker"
    fake.write_text(FAKE_DOCKER)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return project_dir


def test_docker_command_survives_eval_call_rules(workflow_dir: Path) -> None:
    log = workflow_dir.parent / "argv.log"
    env = clean_env()
    env["ARGV_LOG"] = str(log)
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-s",
            "all",
            "RUNNER=docker",
            f"DOCKER={workflow_dir.parent / 'docker'}",
            "DOCKER_RUN_FLAGS_execute=--cap-add SYS_NICE",
        ],
        cwd=workflow_dir,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    base = ["run", "--rm", "-u", f"{os.getuid()}:{os.getgid()}"]
    base += ["-v", f"{workflow_dir}:/data", "-w", "/data"]
    stage_args = ["--input", "model file.onnx", "-o"]
    execute_image = f"autotm-execute:{version('execute')}"
    assert calls == [
        [*base, f"autotm-graph:{version('graph')}", *stage_args, "out/graph.json"],
        [*base, "--cap-add", "SYS_NICE", execute_image, *stage_args, "out/execute.json"],
    ]


def test_including_twice_is_harmless(tmp_path: Path) -> None:
    """The root Makefile and reproduce.mk may both include the fragment."""
    (tmp_path / "Makefile").write_text(f"include {MK}\ninclude {MK}\n")
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "images", "RUNNER=docker"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr
    assert len(result.stdout.splitlines()) == len(TOOLS) + len(GPU_TOOLS)


def test_on_its_own_it_prints_usage_and_builds_nothing() -> None:
    result = make()
    assert result.returncode == 0, result.stderr
    assert "make images" in result.stdout and "docker build" not in result.stdout
