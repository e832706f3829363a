"""ILP statistics: the plans' solver sections, heuristic plans left out."""

from __future__ import annotations

import dataclasses

from autotm_report.figure import Options
from autotm_report.figures import solver_stats
from autotm_report.inputs import Inputs

from .fixtures import read_json


def test_rows_are_the_plans_solver_sections(inputs: Inputs) -> None:
    df = solver_stats.data(inputs)
    assert df.height == sum(1 for p in inputs.plans if p.is_ilp)
    assert not set(df["formulation"]) & {"numa", "all-slow"}
    for row in df.iter_rows(named=True):
        solver = read_json(row["plan_file"])["solver"]
        for key in ("variables", "constraints", "build_s", "solve_s", "status"):
            assert row[key] == solver[key]


def test_measure_titles_expression() -> None:
    expression = solver_stats._measure_title_expression()
    assert expression.count("?") == len(solver_stats.MEASURES)
    assert "'solve time (s)'" in expression


def test_omitted_with_heuristic_plans_only(inputs: Inputs) -> None:
    plans = tuple(p for p in inputs.plans if not p.is_ilp)
    assert solver_stats.build(dataclasses.replace(inputs, plans=plans), Options()) is None
