"""The driver: every formulation and baseline yields a verified plan; budgets and infeasibility."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from autotm_optimize import FORMULATIONS, OptimizeOptions, load_problem, optimize, verify
from autotm_optimize.formulation import FormulationSettings
from autotm_optimize.optimize import _tighten, minimum_limit
from autotm_optimize.placement import PoolOverflow
from autotm_optimize.reductions import ReductionSettings, reduce
from autotm_optimize.solve import SolveOptions
from autotm_schemas import InfeasibleError, validate_document

PAGE = 4096
SCIP = SolveOptions("scip", 20, 0.0, 1)

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_every_formulation_yields_a_valid_verified_plan(
    profile_dir: Callable[[str], Path], formulation: str
) -> None:
    problem = load_problem(profile_dir("small_network"))
    options = OptimizeOptions(formulation, ratio=(1.0, 1.0), ratio_text="1:1", solve=SCIP)
    plan = optimize(problem, options, quiet=True)
    assert verify(plan, problem) == []
    validate_document(plan.to_document(), "plan")
    assert plan.formulation == formulation
    if formulation not in ("all-fast", "all-slow"):
        assert plan.fast_pool_bytes <= plan.fast_limit_bytes == problem.footprint_bytes() // 2


def test_the_static_plan_costs_the_sum_of_the_profiled_times_it_chose(
    profile_dir: Callable[[str], Path],
) -> None:
    problem = load_problem(profile_dir("small_network"))
    plan = optimize(
        problem, OptimizeOptions("static", fast_limit=20 * PAGE, solve=SCIP), quiet=True
    )
    chosen = [
        problem.config_seconds(problem.nodes[k.node], k.input_tiers, k.output_tiers)
        for k in plan.kernels
    ]
    assert None not in chosen
    assert plan.moves == ()
    assert plan.predicted.total_s == pytest.approx(
        sum(c for c in chosen if c is not None), rel=1e-12
    )
    assert plan.predicted.total_s == pytest.approx(plan.solver.objective, rel=1e-6)


def test_ilp_plans_beat_or_match_the_baselines(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("small_network"))
    total = {}
    for formulation in ("numa", "static", "synchronous", "asynchronous"):
        options = OptimizeOptions(formulation, fast_limit=30 * PAGE, solve=SCIP)
        total[formulation] = optimize(problem, options, quiet=True).predicted.total_s
    assert total["static"] <= total["numa"] + 1e-12
    assert total["synchronous"] <= total["static"] + 1e-12
    assert total["asynchronous"] <= total["synchronous"] + 1e-12


def test_a_limit_below_the_largest_kernel_names_it(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("evict_and_fetch"))
    with pytest.raises(InfeasibleError, match=r"node 'use_x'.*at least 86016 bytes"):
        optimize(
            problem, OptimizeOptions("synchronous", fast_limit=15 * PAGE, solve=SCIP), quiet=True
        )


def test_an_infeasible_formulation_reports_the_smallest_limit(
    profile_dir: Callable[[str], Path],
) -> None:
    problem = load_problem(profile_dir("evict_and_fetch"))
    with pytest.raises(InfeasibleError, match=r"smallest feasible fast limit .* is 122880 bytes"):
        optimize(problem, OptimizeOptions("static", fast_limit=21 * PAGE, solve=SCIP), quiet=True)
    reduced = reduce(problem, 21, ReductionSettings())
    assert minimum_limit(problem, reduced, FormulationSettings("synchronous"), SCIP) == (
        86016,
        True,
    )


def test_all_fast_refuses_a_smaller_limit(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("evict_and_fetch"))
    with pytest.raises(InfeasibleError, match="all-fast needs a fast pool"):
        optimize(problem, OptimizeOptions("all-fast", fast_limit=21 * PAGE), quiet=True)
    plan = optimize(problem, OptimizeOptions("all-fast"), quiet=True)
    assert plan.ratio == "0:1" and plan.fast_limit_bytes == plan.fast_pool_bytes


def test_tightening_starts_at_crowded_nodes_and_escalates() -> None:
    caps = np.full(6, 100, dtype=np.int64)
    limit = 100 * PAGE
    top = np.array([50, 120, 120, 120, 60, 60]) * PAGE
    live = np.array([50, 95, 60, 99, 60, 60]) * PAGE
    overflow = PoolOverflow(120 * PAGE, limit, top, live)
    assert _tighten(caps, overflow, 1) == 2
    assert caps.tolist() == [100, 80, 100, 80, 100, 100]
    # Later rounds cut twice as deep, a node wider, and at every overflowing node.
    assert _tighten(caps, overflow, 3) == 6
    assert caps.tolist() == [20, 0, 20, 0, 20, 20]


def test_progress_and_summary_go_to_the_stream(profile_dir: Callable[[str], Path]) -> None:
    import io

    problem = load_problem(profile_dir("small_network"))
    stream = io.StringIO()
    optimize(
        problem, OptimizeOptions("synchronous", fast_limit=30 * PAGE, solve=SCIP), stream=stream
    )
    text = stream.getvalue()
    assert "synchronous model:" in text and "variables" in text and "optimal" in text
