"""Fig. 11: prediction error from the plan's predicted time and the run's median."""

from __future__ import annotations

import dataclasses

import pytest
from autotm_report.figure import Options
from autotm_report.figures import fig11_accuracy
from autotm_report.inputs import Inputs

from .fixtures import PREDICTION_ERROR, read_json


def test_error_from_run_records(inputs: Inputs) -> None:
    df = fig11_accuracy.data(inputs)
    assert df.height == sum(1 for r in inputs.runs if r.predicted_s is not None)
    for row in df.iter_rows(named=True):
        run = read_json(row["run_file"])
        predicted, measured = run["plan"]["predicted_s"], run["iterations"]["median_s"]
        assert row["error_pct"] == pytest.approx(100 * (predicted - measured) / measured)
        expected = 100 * PREDICTION_ERROR.get(row["formulation"], 0.0)
        assert row["error_pct"] == pytest.approx(expected)


def test_runs_without_plans_are_left_out(inputs: Inputs) -> None:
    df = fig11_accuracy.data(inputs)
    assert not set(df["formulation"]) & {"all-fast", "2lm", "unified"}


def test_omitted_without_plan_runs(inputs: Inputs) -> None:
    runs = tuple(r for r in inputs.runs if r.predicted_s is None)
    assert fig11_accuracy.build(dataclasses.replace(inputs, runs=runs), Options()) is None
