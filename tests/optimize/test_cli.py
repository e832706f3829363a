"""The command line, called in-process: outputs, exit codes, one-line errors."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from autotm_optimize.cli import main
from autotm_schemas import validate_document

from . import profiles

pytestmark = pytest.mark.timeout(120)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_plan_to_stdout(profile_dir: Callable[[str], Path]) -> None:
    code, out, err = run(
        str(profile_dir("evict_and_fetch")),
        "-f",
        "synchronous",
        "--fast-limit",
        "84KiB",
        "-q",
    )
    assert code == 0, err
    doc = json.loads(out)
    validate_document(doc, "plan")
    assert doc["fast_limit_bytes"] == 84 * 1024 and len(doc["moves"]) == 2
    assert doc["solver"]["name"] == "highs"  # auto: HiGHS for the synchronous formulation
    assert err == ""


def test_plan_to_a_file_with_progress_and_model_export(
    profile_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    model = tmp_path / "model.mps"
    code, out, err = run(
        str(profile_dir("small_network")),
        "--formulation",
        "asynchronous",
        "--ratio",
        "4:1",
        "-o",
        str(plan),
        "--export-model",
        str(model),
        "--solver",
        "scip",
    )
    assert code == 0, err
    assert out == ""
    assert "asynchronous model:" in err and "->" in err
    assert json.loads(plan.read_text())["ratio"] == "4:1"
    assert "ROWS" in model.read_text()


def test_explain_and_verify(profile_dir: Callable[[str], Path], tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    assert (
        run(
            str(profile_dir("evict_and_fetch")),
            "-f",
            "synchronous",
            "--fast-limit",
            "86016",
            "-o",
            str(plan),
            "-q",
        )[0]
        == 0
    )
    code, out, _ = run("explain", str(plan))
    assert code == 0
    assert "moves: 2 (2 sync, 0 async)" in out and "against all-fast" in out
    code, out, _ = run("verify", str(plan))
    assert code == 0 and out.endswith("valid\n")


def test_explain_without_the_profile_says_what_it_needs(
    profile_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    assert (
        run(
            str(profile_dir("evict_and_fetch")),
            "-f",
            "numa",
            "--ratio",
            "1:1",
            "-o",
            str(plan),
            "-q",
        )[0]
        == 0
    )
    doc = json.loads(plan.read_text())
    doc["profile"]["path"] = str(tmp_path / "gone")
    plan.write_text(json.dumps(doc))
    code, out, _ = run("explain", str(plan))
    assert code == 0 and "--profile" in out


def test_infeasible_exits_3_naming_the_kernel(profile_dir: Callable[[str], Path]) -> None:
    code, out, err = run(
        str(profile_dir("evict_and_fetch")), "-f", "static", "--fast-limit", "40KiB", "-q"
    )
    assert code == 3 and out == ""
    assert "node 'use_x'" in err and err.count("\n") == 1


def test_a_missing_file_exits_2_naming_it(tmp_path: Path) -> None:
    root = profiles.write(tmp_path / "p", profiles.evict_and_fetch())
    (root / "tensors.parquet").unlink()
    code, _, err = run(str(root), "-f", "static", "--ratio", "4:1")
    assert code == 2 and "tensors.parquet: (file)" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-f", "static"], "expected --ratio or --fast-limit"),
        (["-f", "static", "--ratio", "four"], "--ratio"),
        (["-f", "static", "--fast-limit", "lots"], "--fast-limit"),
        (["-f", "magic", "--ratio", "4:1"], "invalid choice"),
        (["-f", "static", "--ratio", "4:1", "--fast-limit", "1GB"], "not allowed with"),
        (["-f", "static", "--ratio", "4:1", "--gap", "2"], "relative gap"),
    ],
)
def test_bad_usage_exits_2(
    profile_dir: Callable[[str], Path],
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(str(profile_dir("evict_and_fetch")), *argv)
    # argparse's own usage errors go to the process's stderr.
    assert code == 2 and message in err + capsys.readouterr().err


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run("--help")
    assert code == 0
    assert "3  infeasible request" in capsys.readouterr().out


def test_verify_reports_a_broken_plan(profile_dir: Callable[[str], Path], tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    assert (
        run(
            str(profile_dir("evict_and_fetch")),
            "-f",
            "synchronous",
            "--fast-limit",
            "86016",
            "-o",
            str(plan),
            "-q",
        )[0]
        == 0
    )
    doc = json.loads(plan.read_text())
    doc["moves"] = []
    plan.write_text(json.dumps(doc))
    code, out, err = run("verify", str(plan))
    assert code == 2
    assert "no move fills it" in out and "breaks" in err
