"""The build context: .dockerignore must let in what the Dockerfiles copy, and little else.

Docker sends the whole context to the engine before a build; a context holding .venv, out/ or
.git is slow to send and changes with every run, and anything in it could be copied by mistake.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.containers.dockerfile import (
    CONTAINERS,
    ROOT,
    DockerIgnore,
    files_under,
    parse,
    workspace,
)

IGNORE = DockerIgnore.read(ROOT / ".dockerignore")
DOCKERFILES = sorted(CONTAINERS.glob("*/Dockerfile*"))


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_copied_file_is_in_the_context(path: Path) -> None:
    for copy in parse(path).context_copies():
        for source in copy.sources:
            assert (ROOT / source).exists(), f"{path}:{copy.line}: {source} does not exist"
            for file in files_under(ROOT / source):
                relative = file.relative_to(ROOT).as_posix()
                if "__pycache__" in relative:
                    continue
                assert not IGNORE.excludes(relative), f"{path}: {relative} is .dockerignored"


@pytest.mark.parametrize("member", sorted(workspace().values()))
def test_package_sources_and_manifests_are_in(member: str) -> None:
    assert not IGNORE.excludes(f"{member}/pyproject.toml")
    assert not IGNORE.excludes(f"{member}/src/pkg/__init__.py")
    assert not IGNORE.excludes(f"{member}/src/pkg/contracts/json/plan.schema.json")


@pytest.mark.parametrize(
    "relpath",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".tools/bin/uv",
        "tests/graph/test_ir.py",
        "out/default/report/index.html",
        "benchmarks/execute.py",
        "containers/graph/Dockerfile",
        "tools/graph/src/autotm_graph/__pycache__/ir.cpython-311.pyc",
        "tools/graph/README.md",
        "tools/graph/tests/test_x.py",
        "schemas/src/autotm_schemas/x.pyc",
        ".mypy_cache/3.11/x.json",
        "Makefile",
    ],
)
def test_everything_else_stays_out(relpath: str) -> None:
    assert IGNORE.excludes(relpath)


@pytest.mark.parametrize(
    ("patterns", "relpath", "excluded"),
    [
        (["*"], "a", True),
        (["*"], "a/b/c", True),
        (["*", "!a/b"], "a/b/c", False),
        (["*", "!a/*/c"], "a/b/c/d", False),
        (["*", "!a/*/c"], "a/b/d", True),
        (["**/x"], "x", True),
        (["**/x"], "a/b/x/y", True),
        (["*.py[cod]"], "m.pyc", True),
        (["*.py[cod]"], "m.py", False),
        (["a", "!a"], "a/b", False),
    ],
)
def test_matcher_follows_moby(
    patterns: list[str], relpath: str, excluded: bool, tmp_path: Path
) -> None:
    ignore_file = tmp_path / ".dockerignore"
    ignore_file.write_text("\n".join(patterns) + "\n")
    assert DockerIgnore.read(ignore_file).excludes(relpath) is excluded
