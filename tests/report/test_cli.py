"""The command line end to end: every figure file, numbers equal to the records, clean errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import polars as pl
import pytest
from autotm_report.cli import main
from autotm_report.figures import ALL_FIGURES, FigureSpec

from .conftest import Report
from .fixtures import Config, Suite, median_of, write_suite


def run_cli(args: list[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(args, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("spec", ALL_FIGURES, ids=lambda s: s.id)
def test_every_figure_file_exists(report: Report, spec: FigureSpec) -> None:
    figure_id = spec.id
    for name in (
        f"figures/{figure_id}.png",
        f"figures/{figure_id}.svg",
        f"figures/{figure_id}.vl.json",
        f"data/{figure_id}.parquet",
    ):
        path = report.folder / name
        assert path.is_file() and path.stat().st_size > 0, name
    assert pl.read_parquet(report.folder / f"data/{figure_id}.parquet").height > 0
    assert f'src="figures/{figure_id}.svg"' in (report.folder / "index.html").read_text()


def test_stdout_names_the_page_and_nothing_was_omitted(report: Report) -> None:
    assert report.stdout.strip() == str(report.folder / "index.html")
    assert "not drawn" not in report.stderr
    assert sorted(p.name for p in report.folder.parent.iterdir()) == ["report"]
    for name in ("claims", "runs", "plans", "profiles"):
        assert pl.read_parquet(report.folder / "data" / f"{name}.parquet").height > 0


def test_parquet_speedups_equal_the_run_records(report: Report) -> None:
    fig7 = pl.read_parquet(report.folder / "data/fig07-speedup-over-all-slow.parquet")
    for row in fig7.iter_rows(named=True):
        expected = median_of(row["all_slow_file"]) / median_of(row["run_file"])
        assert row["speedup"] == pytest.approx(expected, rel=1e-12)
    fig8 = pl.read_parquet(report.folder / "data/fig08-large-speedup-over-2lm.parquet")
    for row in fig8.iter_rows(named=True):
        expected = median_of(row["two_lm_file"]) / median_of(row["run_file"])
        assert row["speedup"] == pytest.approx(expected, rel=1e-12)
    runs = pl.read_parquet(report.folder / "data/runs.parquet")
    for row in runs.iter_rows(named=True):
        assert row["median_s"] == median_of(row["file"])


def test_claims_on_the_page(report: Report) -> None:
    page = (report.folder / "index.html").read_text()
    assert "27.7 % loss" in page and "about 2x" in page
    claims = pl.read_parquet(report.folder / "data/claims.parquet")
    assert claims["verdict"].str.starts_with("consistent").all()


@pytest.fixture
def small(tmp_path: Path) -> Suite:
    return write_suite(
        tmp_path / "in",
        [
            Config("net", 4, "unified", None, device="cuda"),
            Config("net", 4, "synchronous", None, device="cuda"),
        ],
    )


def test_partial_inputs_omit_figures_with_a_note(small: Suite, tmp_path: Path) -> None:
    target = tmp_path / "report"
    code, _, err = run_cli([str(small.root / "runs"), "-q", "-o", str(target)])
    assert code == 0, err
    page = (target / "index.html").read_text()
    assert "fig12-gpu-speedup-over-unified.svg" in page
    assert "Fig. 7: speedup over all-slow</b>: not drawn; it needs CPU runs" in page
    assert "Fig. 7: speedup over all-slow not drawn" in err
    assert not (target / "figures" / "fig07-speedup-over-all-slow.png").exists()
    assert "cannot check" in page
    assert "drawing figures" not in err  # --quiet


def test_stdin_list_of_runs(small: Suite, tmp_path: Path) -> None:
    listing = "\n".join(str(p) for p in small.runs)
    code, out, err = run_cli(["-", "-q", "-o", str(tmp_path / "r")], stdin=listing)
    assert code == 0, err
    assert out.strip().endswith("index.html")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["iterations"].pop("median_s"), "iterations"),
        (lambda d: d.update(device="tpu"), "device"),
        (lambda d: d["graph"].update(batch=0), "graph.batch"),
    ],
)
def test_bad_run_exits_2_naming_file_and_field(
    small: Suite, tmp_path: Path, mutate: object, field: str
) -> None:
    doc = json.loads(small.runs[1].read_text())
    assert callable(mutate)
    mutate(doc)
    bad = tmp_path / "bad.run.json"
    bad.write_text(json.dumps(doc))
    target = tmp_path / "report"
    code, out, err = run_cli([str(small.runs[0]), str(bad), "-o", str(target)])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and field in lines[0]
    assert out == ""
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.run.json", "in"]


def test_not_json_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    code, _, err = run_cli([str(bad), "-o", str(tmp_path / "r")])
    assert code == 2 and str(bad) in err and "valid JSON" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "r"], "no inputs"),
        (["x.json"], "-o"),
        (["x.json", "-o", "-"], "folder"),
        (["x.json", "--price-ratio", "0", "-o", "r"], "--price-ratio"),
    ],
)
def test_usage_errors_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(args)
    err += capsys.readouterr().err  # argparse writes usage errors to sys.stderr itself
    assert code == 2 and message in err


def test_refuses_a_foreign_folder(small: Suite, tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep")
    code, _, err = run_cli([str(small.root / "runs"), "-o", str(target)])
    assert code == 2 and "not an autotm-report folder" in err
    assert (target / "notes.txt").read_text() == "keep"


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run_cli(["--help"])
    out = capsys.readouterr().out  # argparse prints help to sys.stdout itself
    assert code == 0
    assert "exit codes:" in out and "bad input" in out and "--price-ratio" in out


def test_module_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "autotm_report", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.startswith("autotm-report ")


def test_price_ratio_reaches_the_data(tmp_path: Path) -> None:
    suite = write_suite(
        tmp_path / "in",
        [
            Config("net", 4, "all-fast", Fraction(1)),
            Config("net", 4, "static", Fraction(1, 2)),
        ],
    )
    target = tmp_path / "report"
    code, _, err = run_cli(
        [str(suite.root / "runs"), "--price-ratio", "4", "-q", "-o", str(target)]
    )
    assert code == 0, err
    df = pl.read_parquet(target / "data/fig09-performance-per-cost.parquet")
    assert df["price_ratio"].to_list() == [4.0]
    assert df["relative_cost"].to_list() == pytest.approx([(0.5 * 4 + 0.5) / 4])
