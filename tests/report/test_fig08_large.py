"""Fig. 8: speedups over 2LM, matched by network, batch and fast budget."""

from __future__ import annotations

import dataclasses

import pytest
from autotm_report.figure import Options
from autotm_report.figures import fig08_large
from autotm_report.inputs import Inputs

from .fixtures import TWO_LM_FACTOR, median_of, read_json


def test_speedup_is_2lm_median_over_run_median(inputs: Inputs) -> None:
    df = fig08_large.data(inputs)
    assert sorted(df["formulation"]) == ["static", "synchronous"]
    for row in df.iter_rows(named=True):
        cache = read_json(row["two_lm_file"])
        assert cache["mode"] == "2lm"
        assert read_json(row["run_file"])["plan"]["fast_limit_bytes"] == cache["fast_limit_bytes"]
        expected = median_of(row["two_lm_file"]) / median_of(row["run_file"])
        assert row["speedup"] == pytest.approx(expected, rel=1e-12)
        assert row["speedup"] > 1  # the toy model makes 2LM slower than both


def test_a_different_budget_is_not_compared(inputs: Inputs) -> None:
    runs = tuple(
        dataclasses.replace(r, fast_limit_bytes=r.fast_limit_bytes * 2)
        if r.formulation == "2lm" and r.fast_limit_bytes
        else r
        for r in inputs.runs
    )
    assert fig08_large.data(dataclasses.replace(inputs, runs=runs)).is_empty()
    assert fig08_large.build(dataclasses.replace(inputs, runs=runs), Options()) is None


def test_toy_model_numbers(inputs: Inputs) -> None:
    # all-slow-like 2LM time over the synchronous time at a quarter of the footprint
    df = fig08_large.data(inputs)
    sync = df.filter(df["formulation"] == "synchronous")["speedup"][0]
    assert sync == pytest.approx((1 + 3.5) / TWO_LM_FACTOR / (1 + 0.8 * 0.75))
