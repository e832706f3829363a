"""Just enough of a Dockerfile and .dockerignore reader to check the images without an engine.

The machine and CI have the docker client but no daemon, so the images cannot be built in the
tests. What can be checked statically is checked here: which files each image copies, what it
runs, what it is labelled, and what the build context lets through. The parser follows the
Dockerfile reference for the subset the project's Dockerfiles use: line continuations, comment
lines (also inside continuations), stages, exec-form JSON arrays, key="value" labels.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS = ROOT / "containers"

# Files at the repository root that an image may copy: uv needs the workspace root and the lock.
ROOT_FILES = frozenset({"pyproject.toml", "uv.lock"})


@dataclass(frozen=True)
class Instruction:
    """One instruction; `stage` is -1 for the global ARGs before the first FROM."""

    keyword: str
    args: str
    line: int
    stage: int


@dataclass(frozen=True)
class Copy:
    """A COPY or ADD: its sources, destination and --from stage (None: the build context)."""

    sources: tuple[str, ...]
    dest: str
    from_stage: str | None
    line: int


@dataclass(frozen=True)
class Dockerfile:
    path: Path
    instructions: tuple[Instruction, ...]

    @property
    def final_stage(self) -> int:
        return max(i.stage for i in self.instructions)

    def stage(self, index: int) -> list[Instruction]:
        return [i for i in self.instructions if i.stage == index]

    def find(self, keyword: str, stage: int | None = None) -> list[Instruction]:
        return [
            i
            for i in self.instructions
            if i.keyword == keyword and (stage is None or i.stage == stage)
        ]

    def global_args(self) -> dict[str, str | None]:
        """ARGs before the first FROM: the only ones a FROM line may use."""
        return dict(_arg(i.args) for i in self.find("ARG", stage=-1))

    def stage_args(self, stage: int) -> dict[str, str | None]:
        return dict(_arg(i.args) for i in self.find("ARG", stage=stage))

    def froms(self) -> list[tuple[str, str | None]]:
        """(image, alias) of every stage, in order."""
        out = []
        for i in self.find("FROM"):
            words = [w for w in i.args.split() if not w.startswith("--")]
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            out.append((words[0], alias))
        return out

    def copies(self) -> list[Copy]:
        out = []
        for i in self.instructions:
            if i.keyword not in ("COPY", "ADD"):
                continue
            words = json.loads(i.args) if i.args.startswith("[") else shlex.split(i.args)
            from_stage = None
            paths = []
            for w in words:
                if w.startswith("--from="):
                    from_stage = w.removeprefix("--from=")
                elif not w.startswith("--"):
                    paths.append(w)
            out.append(Copy(tuple(paths[:-1]), paths[-1], from_stage, i.line))
        return out

    def context_copies(self) -> list[Copy]:
        """The copies that read the build context, i.e. the repository."""
        return [c for c in self.copies() if c.from_stage is None]

    def exec_form(self, keyword: str) -> list[str]:
        """The last ENTRYPOINT or CMD of the final stage, which must be in JSON exec form."""
        found = self.find(keyword, stage=self.final_stage)
        if not found:
            return []
        value = json.loads(found[-1].args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value

    def labels(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in self.find("LABEL", stage=self.final_stage):
            for word in shlex.split(i.args):
                key, _, value = word.partition("=")
                out[key] = value
        return out

    def runs(self, stage: int | None = None) -> list[str]:
        return [i.args for i in self.find("RUN", stage=stage)]


def _arg(text: str) -> tuple[str, str | None]:
    name, eq, default = text.strip().partition("=")
    return name, (shlex.split(default)[0] if default.strip() else "") if eq else None


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Join continuation lines; drop comment and blank lines, also inside a continuation."""
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        yield start, " ".join(buf)
        buf = []
    if buf:
        yield start, " ".join(buf)


def parse(path: Path) -> Dockerfile:
    stage = -1
    instructions = []
    for line, text in _logical_lines(path.read_text()):
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), line, stage))
    return Dockerfile(path, tuple(instructions))


def hadolint_ignores(path: Path) -> list[tuple[int, str, str]]:
    """(line, rules, the comment line just above) for every `# hadolint ignore=` pragma."""
    lines = path.read_text().splitlines()
    out = []
    for index, line in enumerate(lines):
        match = re.match(r"\s*#\s*hadolint\s+ignore=(\S+)", line)
        if match:
            above = lines[index - 1].strip() if index else ""
            out.append((index + 1, match.group(1), above))
    return out


# ---- the workspace: which package lives where, and what it depends on ----


def _toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_name(requirement: str) -> str:
    """The normalised project name of a PEP 508 requirement string."""
    match = _NAME.match(requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


@cache
def workspace() -> dict[str, str]:
    """Package name -> member directory, relative to the repository root."""
    members = _toml(ROOT / "pyproject.toml")["tool"]["uv"]["workspace"]["members"]
    return {_toml(ROOT / m / "pyproject.toml")["project"]["name"]: m for m in members}


def project(member: str) -> dict[str, Any]:
    return dict(_toml(ROOT / member / "pyproject.toml")["project"])


def direct_dependencies(member: str) -> set[str]:
    """Names of the runtime dependencies of a member (not its optional extras)."""
    return {requirement_name(r) for r in project(member).get("dependencies", [])}


def workspace_closure(member: str) -> set[str]:
    """The member and every workspace member it depends on, directly or not."""
    names = workspace()
    seen = {member}
    todo = [member]
    while todo:
        for dep in direct_dependencies(todo.pop()):
            dep_member = names.get(dep)
            if dep_member is not None and dep_member not in seen:
                seen.add(dep_member)
                todo.append(dep_member)
    return seen


def tools() -> list[str]:
    """Tool names (graph, execute, ...): the workspace members under tools/."""
    return sorted(m.removeprefix("tools/") for m in workspace().values() if m.startswith("tools/"))


def member_of(source: str) -> str | None:
    """The workspace member a copied path belongs to, or None for a root file."""
    source = source.rstrip("/")
    for member in workspace().values():
        if source == member or source.startswith(member + "/"):
            return member
    return None


# ---- .dockerignore, with the matching rules of moby's patternmatcher ----


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True)
class DockerIgnore:
    patterns: tuple[tuple[bool, re.Pattern[str]], ...]  # (negated, regex)

    @classmethod
    def read(cls, path: Path) -> DockerIgnore:
        patterns = []
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            cleaned = line.removeprefix("!").strip().strip("/")
            patterns.append((negated, _pattern_regex(cleaned)))
        return cls(tuple(patterns))

    def excludes(self, relpath: str) -> bool:
        """True when the file is left out of the build context: the last pattern that matches
        the path or one of its parent directories decides."""
        parts = relpath.strip("/").split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for negated, regex in self.patterns:
            if any(regex.match(c) for c in candidates):
                excluded = not negated
        return excluded


def files_under(path: Path) -> Iterable[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
