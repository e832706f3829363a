"""Fig. 7: speedups over all-slow equal the run records' medians, divided."""

from __future__ import annotations

import dataclasses

import pytest
from autotm_report.figure import Options
from autotm_report.figures import fig07_speedup
from autotm_report.inputs import Inputs

from .fixtures import median_of, read_json


def test_speedup_is_all_slow_median_over_run_median(inputs: Inputs) -> None:
    df = fig07_speedup.data(inputs)
    assert df.height == 2 * (3 * 3 + 1)  # two networks: 3 formulations x 3 ratios + all-fast
    for row in df.iter_rows(named=True):
        run = read_json(row["run_file"])
        slow = read_json(row["all_slow_file"])
        assert slow["plan"]["formulation"] == "all-slow"
        assert run["graph"]["network"] == slow["graph"]["network"] == row["network"]
        expected = median_of(row["all_slow_file"]) / median_of(row["run_file"])
        assert row["speedup"] == pytest.approx(expected, rel=1e-12)
        if row["formulation"] == "all-fast":
            assert run["mode"] == "all-fast"
        else:
            assert row["ratio"] in ("8:1", "4:1", "1:1")
            assert run["plan"]["ratio"] == row["ratio"]


def test_no_gpu_and_no_case_study_ratios(inputs: Inputs) -> None:
    df = fig07_speedup.data(inputs)
    assert "densenet264-mini" not in df["network"].to_list()
    assert set(df["ratio"]) <= {"8:1", "4:1", "1:1", "0:1"}


def test_omitted_without_all_slow(inputs: Inputs) -> None:
    runs = tuple(r for r in inputs.runs if r.formulation != "all-slow")
    assert fig07_speedup.build(dataclasses.replace(inputs, runs=runs), Options()) is None


def test_chart_is_labelled_with_provenance(inputs: Inputs) -> None:
    figure = fig07_speedup.build(inputs, Options())
    assert figure is not None
    spec = figure.chart.to_dict()
    assert "emulated (optane-dc-2019)" in " ".join(spec["title"]["subtitle"])
    assert spec["facet"]["field"] == "workload"
    assert figure.provenance == ("emulated (optane-dc-2019)",)
