"""Shared fixtures: one fixture suite and one full report, built once per test session."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pytest
from autotm_report.cli import main
from autotm_report.inputs import Inputs, load_inputs

from .fixtures import Suite, write_suite


@dataclass(frozen=True)
class Report:
    """A report folder made by the command line from the fixture suite."""

    folder: Path
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Suite:
    return write_suite(tmp_path_factory.mktemp("suite"))


@pytest.fixture(scope="session")
def inputs(suite: Suite) -> Inputs:
    return load_inputs(
        [str(p) for p in suite.runs],
        [str(p) for p in suite.plans],
        [str(p) for p in suite.profiles],
    )


@pytest.fixture(scope="session")
def report(suite: Suite, tmp_path_factory: pytest.TempPathFactory) -> Report:
    folder = tmp_path_factory.mktemp("out") / "report"
    out, err = io.StringIO(), io.StringIO()
    code = main(
        [
            str(suite.root / "runs"),
            "--plans",
            str(suite.root / "plans" / "*.json"),
            "--profiles",
            str(suite.root / "profiles"),
            "-o",
            str(folder),
        ],
        stdout=out,
        stderr=err,
    )
    assert code == 0, err.getvalue()
    return Report(folder, out.getvalue(), err.getvalue())
