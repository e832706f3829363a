"""The whole workflow on a reduced suite, through every tool, as `make reproduce` runs it.

One tiny network, two ratios: graph -> train -> profile -> optimize (numa, static, synchronous
at 4:1 and 1:1, plus all-fast and all-slow) -> execute with --verify (and 2LM) -> report. The
report must have every figure this suite can feed, its page must render in a real browser, and
the numbers in the figure data must be those of the run records.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from autotm_execute.cli import main as execute_main
from autotm_graph.cli import main as graph_main
from autotm_optimize.cli import main as optimize_main
from autotm_profile.cli import main as profile_main
from autotm_report.cli import main as report_main

from tests.browser import chromium, rendered_charts, requires_browser, severe_console_entries

NETWORK = "resnet50-tiny"
BATCH = 16
RATIOS = ("4:1", "1:1")
FORMULATIONS = ("numa", "static", "synchronous")


@dataclass(frozen=True)
class Suite:
    root: Path
    runs: dict[str, Path]  # configuration name -> run.json
    plans: dict[str, Path]
    report: Path


def call(main: Callable[..., int], argv: Sequence[str]) -> str:
    """Run one tool in-process like a user would on the command line; fail with its stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    assert code == 0, f"{argv[:2]} exited {code}: {err.getvalue()}"
    return out.getvalue()


def run_cli(main: Callable[[Sequence[str]], int], argv: Sequence[str]) -> None:
    assert main(list(argv)) == 0, argv


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Suite:
    root = tmp_path_factory.mktemp("e2e")
    model, train, profile = root / "model.onnx", root / "train.onnx", root / "profile"
    run_cli(graph_main, ["zoo", NETWORK, "--batch", str(BATCH), "-q", "-o", str(model)])
    run_cli(graph_main, ["train", str(model), "--batch", str(BATCH), "-o", str(train)])
    call(profile_main, [str(train), "--quiet", "--cache", str(root / "cache"), "-o", str(profile)])

    plans: dict[str, Path] = {}
    configurations = [(f, r) for f in FORMULATIONS for r in RATIOS] + [
        ("asynchronous", "4:1"),
        ("all-fast", None),
        ("all-slow", None),
    ]
    for formulation, ratio in configurations:
        name = formulation if ratio is None else f"{formulation}@{ratio.replace(':', 'x')}"
        plans[name] = root / "plans" / f"{name}.json"
        argv = [str(profile), "--formulation", formulation, "--quiet", "-o", str(plans[name])]
        call(optimize_main, argv + (["--ratio", ratio] if ratio else []))

    runs: dict[str, Path] = {}
    for name, plan in plans.items():
        runs[name] = root / "runs" / f"{name}.json"
        argv = [str(train), "--plan", str(plan), "--iterations", "2", "--warmup", "1", "--verify"]
        run_cli(execute_main, [*argv, "--quiet", "-o", str(runs[name])])
    limit = json.loads(plans["static@4x1"].read_text())["fast_limit_bytes"]
    runs["2lm@4x1"] = root / "runs" / "2lm@4x1.json"
    argv = [str(train), "--mode", "2lm", "--fast-memory", str(limit), "--iterations", "2"]
    run_cli(execute_main, [*argv, "--quiet", "-o", str(runs["2lm@4x1"])])

    report = root / "report"
    printed = call(
        report_main,
        [
            *map(str, runs.values()),
            "--plans",
            *map(str, plans.values()),
            "--profiles",
            str(profile),
            "--case-study",
            NETWORK,
            "-q",
            "-o",
            str(report),
        ],
    )
    assert printed.strip() == str(report / "index.html")
    return Suite(root, runs, plans, report)


def test_every_run_verified_bit_identical(suite: Suite) -> None:
    for name, path in suite.runs.items():
        record = json.loads(path.read_text())
        if name.startswith("2lm"):
            continue
        assert record["verify"]["identical"] is True, name
        assert record["provenance"].startswith(("emulated:", "measured")), name


def test_plans_respect_their_budget(suite: Suite) -> None:
    for name, path in suite.plans.items():
        plan = json.loads(path.read_text())
        if plan["formulation"] not in ("all-fast", "all-slow"):
            assert plan["pools"]["fast_bytes"] <= plan["fast_limit_bytes"], name


def test_every_figure_this_suite_feeds_exists(suite: Suite) -> None:
    figures = suite.report / "figures"
    stems = {p.name.split(".")[0] for p in figures.iterdir()}
    # Fig. 12 needs GPU runs, which this suite has none of; every other figure has data.
    for prefix in ("fig07", "fig08", "fig09", "fig10", "fig11", "ilp-solve"):
        matching = [s for s in stems if s.startswith(prefix)]
        assert matching, f"no figure {prefix}* in {sorted(stems)}"
        for stem in matching:
            for suffix in (".png", ".svg", ".vl.json"):
                assert (figures / f"{stem}{suffix}").stat().st_size > 0
            assert (suite.report / "data" / f"{stem}.parquet").stat().st_size > 0


def test_figure_data_equals_run_records(suite: Suite) -> None:
    data = next((suite.report / "data").glob("fig07*.parquet"))
    table = pl.read_parquet(data)
    slow = json.loads(suite.runs["all-slow"].read_text())["iterations"]["median_s"]
    checked = 0
    for name, path in suite.runs.items():
        if name in ("all-fast", "all-slow") or name.startswith(("2lm", "asynchronous")):
            continue
        record = json.loads(path.read_text())
        formulation, ratio = name.split("@")
        rows = table.filter(
            (pl.col("formulation") == formulation) & (pl.col("ratio") == ratio.replace("x", ":"))
        )
        assert rows.height == 1, (name, rows)
        assert rows["speedup"][0] == pytest.approx(
            slow / record["iterations"]["median_s"], rel=1e-9
        )
        checked += 1
    assert checked == len(FORMULATIONS) * len(RATIOS)


@requires_browser
def test_report_renders_in_a_browser(suite: Suite) -> None:
    with chromium() as driver:
        charts = rendered_charts(driver, suite.report / "index.html")
        assert charts
        for chart in charts:
            assert chart["complete"] and chart["natural"] > 0 and chart["shown"] > 0, chart
        assert severe_console_entries(driver) == []
