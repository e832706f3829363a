"""Find and read the report's inputs: run records, plans and profile folders.

Arguments may be files, folders (searched recursively for documents of the right kind),
shell-style globs (expanded here too, so a quoted pattern works from Make), or ``-``: standard
input holding either one JSON document or a list of paths, one per line, as ``find`` prints.
Every document is validated against its schema, so a bad file stops the report with one line
naming the file and the field.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from autotm_schemas import BadInputError, SchemaError, read_document, validate_document

from . import ratios
from .records import (
    Plan,
    Profile,
    Run,
    plan_from_document,
    profile_from_documents,
    run_from_document,
)

_FORMATS = {"run": "autotm.run/1", "plan": "autotm.plan/1", "profile": "autotm.profile/1"}
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Inputs:
    """Everything the report was given, validated and typed."""

    runs: tuple[Run, ...]
    plans: tuple[Plan, ...]
    profiles: tuple[Profile, ...]
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class _Source:
    """A document to read: a path, or one already read from standard input."""

    name: str
    document: dict[str, Any] | None = None


def _format_of(path: Path) -> str | None:
    """The ``format`` field of a JSON file, or None when it is not a JSON object."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc.get("format") if isinstance(doc, dict) else None


def _expand_one(arg: str, kind: str) -> list[str]:
    path = Path(arg)
    if path.is_dir():
        if kind == "profile":
            if (path / "profile.json").is_file():
                return [str(path)]
            folders = sorted(str(p.parent) for p in path.rglob("profile.json"))
            if not folders:
                raise BadInputError(f"{arg}: no profile folder (holding profile.json) in here")
            return folders
        found = sorted(str(p) for p in path.rglob("*.json") if _format_of(p) == _FORMATS[kind])
        if not found:
            raise BadInputError(f"{arg}: no {kind} documents ({_FORMATS[kind]}) in this folder")
        return found
    if not path.exists() and _GLOB_CHARS & set(arg):
        matches = sorted(glob.glob(arg, recursive=True))
        if not matches:
            raise BadInputError(f"{arg}: no file matches this pattern")
        return [m for match in matches for m in _expand_one(match, kind)]
    if kind == "profile" and path.name == "profile.json":
        return [str(path.parent)]
    return [arg]


def _expand(args: Iterable[str], kind: str, stdin: TextIO) -> list[_Source]:
    sources: list[_Source] = []
    for arg in args:
        if arg != "-":
            sources.extend(_Source(p) for p in _expand_one(arg, kind))
            continue
        text = stdin.read()
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):
            if kind == "profile":
                raise BadInputError("-: expected profile folder paths, one per line, on stdin")
            sources.append(_Source("-", doc))
            continue
        for line in text.splitlines():
            if line.strip():
                sources.extend(_Source(p) for p in _expand_one(line.strip(), kind))
    seen: set[str] = set()
    unique = []
    for source in sources:
        key = source.name if source.document is not None else os.path.realpath(source.name)
        if key not in seen:
            seen.add(key)
            unique.append(source)
    return unique


def _read(source: _Source, kind: str) -> dict[str, Any]:
    # A document of another kind (a plan given as a run) deserves a clearer message than the
    # schema's first missing field.
    found = source.document.get("format") if source.document else _format_of(Path(source.name))
    if isinstance(found, str) and found != _FORMATS[kind]:
        raise SchemaError(source.name, "format", f"{_FORMATS[kind]!r} (a {kind}), got {found!r}")
    if source.document is not None:
        validate_document(source.document, kind, source.name)
        return source.document
    return read_document(source.name, kind)


def _read_profile(folder: str) -> Profile:
    root = Path(folder)
    if not root.is_dir():
        raise BadInputError(f"{folder}: (file): expected a profile folder holding profile.json")
    profile = read_document(root / "profile.json", "profile")
    machine = read_document(root / "machine.json", "machine")
    return profile_from_documents(profile, machine, folder)


def _plan_footprint(run_doc: dict[str, Any], run_file: str, plans: Sequence[Plan]) -> int | None:
    """The all-fast footprint of a run's graph, from its own plan or a plan of the same graph."""
    by_path = {os.path.realpath(p.file): p for p in plans if p.file != "-"}
    plan = run_doc.get("plan")
    if plan is not None:
        given = Path(plan["path"])
        folder = Path(run_file).parent if run_file != "-" else Path.cwd()
        for candidate in (given, folder / given):
            match = by_path.get(os.path.realpath(candidate))
            if match is not None:
                return match.footprint_bytes
    graph = run_doc["graph"]
    same_graph = [p for p in plans if (p.network, p.batch) == (graph["network"], graph["batch"])]
    return same_graph[0].footprint_bytes if same_graph else None


def _dedupe_runs(runs: list[Run]) -> tuple[list[Run], list[str]]:
    """Keep the latest run of each configuration; repeated runs would make baselines ambiguous."""
    latest: dict[tuple[Any, ...], Run] = {}
    warnings = []
    for run in runs:
        budget = ratios.share_key(run.fast_share)
        key = (run.workload, run.formulation, budget, run.fast_limit_bytes if budget is None else 0)
        other = latest.get(key)
        if other is not None:
            keep, drop = (run, other) if run.finished >= other.finished else (other, run)
            warnings.append(f"{drop.file}: same configuration as {keep.file}; using the later run")
            latest[key] = keep
        else:
            latest[key] = run
    kept = set(map(id, latest.values()))
    return [r for r in runs if id(r) in kept], warnings


def load_inputs(
    runs: Sequence[str],
    plans: Sequence[str] = (),
    profiles: Sequence[str] = (),
    stdin: TextIO | None = None,
) -> Inputs:
    """Read and validate every input; raise :class:`BadInputError` naming the first bad file."""
    if sum(list(group).count("-") for group in (runs, plans, profiles)) > 1:
        raise BadInputError("-: standard input can stand for one argument only")
    stream = stdin or sys.stdin
    plan_records = [
        plan_from_document(_read(s, "plan"), s.name) for s in _expand(plans, "plan", stream)
    ]
    run_records = []
    for source in _expand(runs, "run", stream):
        doc = _read(source, "run")
        footprint = _plan_footprint(doc, source.name, plan_records)
        run_records.append(run_from_document(doc, source.name, footprint))
    profile_records = [_read_profile(s.name) for s in _expand(profiles, "profile", stream)]
    kept, warnings = _dedupe_runs(run_records)
    return Inputs(tuple(kept), tuple(plan_records), tuple(profile_records), tuple(warnings))
