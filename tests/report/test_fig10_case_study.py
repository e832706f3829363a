"""Fig. 10: the case study's performance, fast-memory I/O shares and bytes moved."""

from __future__ import annotations

import dataclasses

import pytest
from autotm_report import ratios
from autotm_report.figure import Options
from autotm_report.figures import fig10_case_study as fig10
from autotm_report.inputs import Inputs
from autotm_report.records import Workload

from .fixtures import median_of, read_json

INCEPTION = Workload("cpu", "inception_v4-mini", 8)


def test_picks_the_inception_network(inputs: Inputs) -> None:
    assert fig10.case_study_workload(inputs, Options()) == INCEPTION


def test_named_network(inputs: Inputs) -> None:
    chosen = fig10.case_study_workload(inputs, Options(case_study="vgg19-mini"))
    assert chosen == Workload("cpu", "vgg19-mini", 16)
    assert fig10.case_study_workload(inputs, Options(case_study="nope")) is None
    assert fig10.build_performance(inputs, Options(case_study="nope")) is None


def test_covers_the_papers_shares(inputs: Inputs) -> None:
    df = fig10.performance_data(inputs, INCEPTION)
    shares = set(df.filter(df["formulation"] == "synchronous")["share_label"])
    papers = {str(s) for s in ratios.CASE_STUDY_SHARES if s != 0}
    assert papers <= shares


def test_performance_against_all_fast(inputs: Inputs) -> None:
    df = fig10.performance_data(inputs, INCEPTION)
    fast = next(r for r in inputs.runs if r.workload == INCEPTION and r.formulation == "all-fast")
    for row in df.iter_rows(named=True):
        expected = median_of(fast.file) / median_of(row["run_file"])
        assert row["relative_performance"] == pytest.approx(expected, rel=1e-12)


def test_falls_back_to_time_without_all_fast(inputs: Inputs) -> None:
    runs = tuple(r for r in inputs.runs if r.formulation != "all-fast")
    figure = fig10.build_performance(dataclasses.replace(inputs, runs=runs), Options())
    assert figure is not None
    assert figure.data["relative_performance"].null_count() == figure.data.height
    assert "median iteration time" in figure.caption


def test_io_shares_from_plans(inputs: Inputs) -> None:
    df = fig10.tiers_data(inputs, INCEPTION)
    assert df.height > 0
    for row in df.iter_rows(named=True):
        kernels = read_json(row["plan_file"])["kernels"]
        ins = [t for k in kernels for t in k["input_tiers"] if t]
        outs = [t for k in kernels for t in k["output_tiers"] if t]
        assert row["inputs_fast_share"] == pytest.approx(ins.count("fast") / len(ins))
        assert row["outputs_fast_share"] == pytest.approx(outs.count("fast") / len(outs))


def test_bytes_moved_from_runs(inputs: Inputs) -> None:
    df = fig10.moved_data(inputs, INCEPTION)
    for row in df.iter_rows(named=True):
        moves = read_json(row["run_file"])["moves"]
        for direction in ("slow_to_fast", "fast_to_slow"):
            total = sum(moves[direction][kind]["bytes"] for kind in ("sync", "async"))
            assert row[f"{direction}_bytes"] == total
    moved = df.filter(df["formulation"] == "synchronous")["slow_to_fast_bytes"].to_list()
    assert max(moved) > 0


@pytest.mark.parametrize("build", [fig10.build_performance, fig10.build_tiers, fig10.build_moved])
def test_omitted_without_inception(inputs: Inputs, build: object) -> None:
    other = dataclasses.replace(
        inputs,
        runs=tuple(r for r in inputs.runs if "inception" not in r.workload.network),
        plans=tuple(p for p in inputs.plans if "inception" not in p.network),
    )
    assert callable(build)
    assert build(other, Options()) is None
