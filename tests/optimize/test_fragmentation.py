"""Fragmentation: tighter per-node limits, the run's deadline, the first solve's bound."""

from __future__ import annotations

import numpy as np
import pytest
from autotm_optimize.fragmentation import (
    PRIORITIZE_S,
    Clock,
    Tightening,
    lower_bound,
    search_budget,
)
from autotm_optimize.placement import PoolOverflow
from autotm_optimize.solve import SolveResult

PAGE = 4096


def test_tightening_cuts_crowded_nodes_and_keeps_a_growing_headroom() -> None:
    caps = np.full(6, 100, dtype=np.int64)  # in units of a page here
    limit = 100 * PAGE
    top = np.array([50, 120, 120, 120, 60, 60]) * PAGE
    live = np.array([50, 95, 60, 99, 60, 60]) * PAGE
    tightening = Tightening(caps, limit, PAGE)
    assert tightening.apply(PoolOverflow(120 * PAGE, limit, top, live)) == 6
    # Crowded nodes 1 and 3 lose the overflow there (20 pages); every node keeps a headroom of
    # the fragmentation seen: 120 pages arranged for a peak of 99 live ones.
    assert tightening.headroom == 21 * PAGE
    assert caps.tolist() == [79, 79, 79, 79, 79, 79]
    # Next overflow, 2 pages over: the headroom grows by the overflow (at least 0.2 % of the
    # limit), doubled each further round, unless the fragmentation seen is larger.
    top2 = np.array([50, 60, 102, 60, 60, 60]) * PAGE
    live2 = np.array([50, 60, 75, 60, 60, 60]) * PAGE
    tightening.apply(PoolOverflow(102 * PAGE, limit, top2, live2))
    assert tightening.headroom == 27 * PAGE  # 102 - 75 > 21 + 2
    assert caps.tolist() == [73, 73, 73, 73, 73, 73]
    tightening.apply(PoolOverflow(101 * PAGE, limit, top2 - PAGE, live2 + 20 * PAGE))
    assert tightening.headroom == 27 * PAGE + 2 * PAGE


def test_the_time_limit_bounds_the_whole_run() -> None:
    clock = Clock(10.0)
    assert clock.left() <= 10.0
    share = clock.share(0.5)
    assert share is not None and share <= 5.0
    assert Clock(None).share(0.5) is None and Clock(None).left() == float("inf")
    budget = search_budget(Clock(10.0))
    assert 0 < budget.restarts_s <= 0.5 and 0 < budget.prioritize_s <= 0.5
    assert budget.search_s == 0.0  # CP-SAT only in the last round
    assert search_budget(Clock(None)).prioritize_s == PRIORITIZE_S


@pytest.mark.parametrize(
    ("status", "objective", "bound", "expected"),
    [
        ("optimal", 100.0, 98.0, 98.0),  # the solver's own bound
        ("optimal", 100.0, None, 99.0),  # proven within the 1 % gap, no bound reported
        ("time_limit", 100.0, None, None),  # nothing proven
    ],
)
def test_the_first_solve_bounds_every_plan_under_the_limit(
    status: str, objective: float, bound: float | None, expected: float | None
) -> None:
    result = SolveResult(status, np.zeros(1), objective, bound, None, 1.0)
    assert lower_bound(result, 0.01) == (None if expected is None else pytest.approx(expected))
