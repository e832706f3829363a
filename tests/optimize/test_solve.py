"""Backends: the same model solved by CP-SAT, SCIP and HiGHS; export; warm-start fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from autotm_optimize.milp import Milp
from autotm_optimize.solve import (
    BACKENDS,
    SolveOptions,
    backend_for,
    choose,
    export_model,
    lp_bound,
    relative_gap,
    solve,
)
from autotm_schemas import BadInputError


def knapsack() -> Milp:
    """max 6a + 5b + 4c s.t. 5a + 4b + 3c <= 8 (as a minimisation): optimum a + c, -10."""
    milp = Milp()
    xs = milp.add_binaries("x", 3)
    milp.add_row("cap", xs, [5, 4, 3], ub=8)
    for x, value in zip(xs, (6, 5, 4), strict=True):
        milp.add_objective(x, -value)
    slack = milp.add_var("slack", 0, 100, integer=False, implied=True)
    milp.add_row("slack", [slack, *xs], [1, 5, 4, 3], 8, 8)
    return milp


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_backend_finds_the_optimum(backend: str) -> None:
    result = solve(knapsack(), SolveOptions(backend, 10, 0.0, 1), quiet=True)
    assert result.status == "optimal"
    assert result.values is not None
    assert result.values[:3].tolist() == [1.0, 0.0, 1.0]
    assert result.objective == pytest.approx(-10)


@pytest.mark.parametrize("backend", ["cp-sat", "scip"])
def test_a_warm_start_is_accepted(backend: str) -> None:
    hint = np.array([0.0, 1.0, 1.0, 1.0])
    result = solve(knapsack(), SolveOptions(backend, 10, 0.0, 1), hint=hint, quiet=True)
    assert result.objective == pytest.approx(-10)


def test_infeasible_models_say_so() -> None:
    milp = knapsack()
    milp.add_row("impossible", [0, 1, 2], [1, 1, 1], lb=4)
    assert solve(milp, SolveOptions("scip", 10, 0.0, 1), quiet=True).status == "infeasible"


@pytest.mark.parametrize("suffix", [".mps", ".lp", ".pb"])
def test_the_model_exports_in_standard_formats(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"model{suffix}"
    export_model(knapsack(), path)
    assert path.stat().st_size > 0
    if suffix == ".mps":
        assert "ROWS" in path.read_text()


def test_unknown_export_format_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="--export-model"):
        export_model(knapsack(), tmp_path / "model.xyz")


def test_relative_gap() -> None:
    assert relative_gap(100.0, 99.0) == pytest.approx(0.01)
    assert relative_gap(100.0, None) is None
    assert relative_gap(100.0, 101.0) == 0.0


def test_the_lp_relaxation_bounds_the_optimum() -> None:
    # Fractional knapsack: c and b whole, a fifth of a: 4 + 5 + 1.2.
    assert lp_bound(knapsack()) == pytest.approx(-10.2)


def test_a_better_warm_start_wins_over_a_worse_answer() -> None:
    milp = knapsack()
    options = SolveOptions("highs", 10, 0.01, 1)
    best = np.array([1.0, 0.0, 1.0, 0.0])
    worse = np.array([0.0, 1.0, 0.0, 4.0])  # b alone: -5
    picked = choose(milp, options, worse, -5.0, False, best, -10.2, 10.0)
    assert picked.used_warm_start and picked.objective == pytest.approx(-10)
    assert picked.status == "time_limit" and picked.gap == pytest.approx(0.02)
    kept = choose(milp, options, best, -10.0, True, worse, None, 1.0)
    assert not kept.used_warm_start and kept.status == "optimal"
    nothing = choose(milp, options, None, None, False, None, None, 1.0)
    assert nothing.status == "no_solution" and nothing.values is None


@pytest.mark.parametrize(
    ("requested", "formulation", "backend"),
    [
        ("auto", "static", "highs"),
        ("auto", "synchronous", "highs"),
        ("auto", "asynchronous", "scip"),
        ("cp-sat", "asynchronous", "cp-sat"),
    ],
)
def test_auto_picks_the_measured_backend(requested: str, formulation: str, backend: str) -> None:
    assert backend_for(requested, formulation) == backend
