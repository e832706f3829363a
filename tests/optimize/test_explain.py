"""explain: the readable summary of a plan."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from autotm_optimize import OptimizeOptions, explain, load_problem, optimize, placement
from autotm_optimize.explain import static_kernel_seconds
from autotm_optimize.solve import SolveOptions


def test_explain_summarises_moves_shares_and_baselines(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("evict_and_fetch"))
    options = OptimizeOptions(
        "synchronous", fast_limit=21 * 4096, solve=SolveOptions("scip", 10, 0.0, 1)
    )
    plan = optimize(problem, options, quiet=True)
    text = explain(plan, problem)
    assert "synchronous plan for tiny (batch 1)" in text
    assert "moves: 2 (2 sync, 0 async)" in text
    assert "slow -> fast: 1 moves, 40.0 KiB" in text and "fast -> slow: 1 moves, 40.0 KiB" in text
    assert "kernel inputs in fast memory: 100.0% of 3 (100.0% of the bytes)" in text
    assert "against all-fast 0.004 s: 1.020x the time" in text
    assert "solver: cp-sat" not in text and "solver: scip" in text


def test_explain_without_a_profile_still_summarises(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("cheaper_slow"))
    plan = optimize(problem, OptimizeOptions("numa", fast_limit=120 * 4096), quiet=True)
    text = explain(plan)
    assert "moves: 0" in text and "pass --profile" in text and "baseline heuristic" in text


def test_static_kernel_seconds(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("cheaper_slow"))
    everything_fast = [True] * len(problem.tensors)
    assert static_kernel_seconds(problem, everything_fast) == 0.006


def test_explain_tells_what_fragmentation_cost(
    profile_dir: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(placement, "RESTARTS_WITHIN", -1.0)  # the greedy hole forces a re-solve
    problem = load_problem(profile_dir("fragmenting"))
    options = OptimizeOptions("static", fast_limit=9 * 4096, solve=SolveOptions("highs", 20, 0.0))
    text = explain(optimize(problem, options, quiet=True), problem)
    assert "fragmentation: 1 re-solve(s), a headroom of 4.0 KiB (11.1% of the limit)" in text
    assert "costing 1.961% against the first solve; gap against the limit 1.96%" in text
