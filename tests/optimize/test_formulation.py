"""Golden plans: tiny profiles whose optimal plans are known by hand (see profiles.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from autotm_optimize import OptimizeOptions, load_problem, optimize
from autotm_optimize.baselines import numa_tiers
from autotm_optimize.formulation import Formulation, FormulationSettings
from autotm_optimize.plan import Plan
from autotm_optimize.reductions import ReductionSettings, reduce
from autotm_optimize.solution import hint_from_placement, hint_from_tiers, placement_of
from autotm_optimize.solve import SolveOptions, solve

PAGE = 4096
COPY_S = 40960 / 1e9  # 10 pages over 1 GB/s

pytestmark = pytest.mark.timeout(60)


def plan_for(profile_dir: Callable[[str], Path], name: str, formulation: str, pages: int) -> Plan:
    problem = load_problem(profile_dir(name))
    options = OptimizeOptions(
        formulation, fast_limit=pages * PAGE, solve=SolveOptions("scip", 20, 0.0, 1)
    )
    return optimize(problem, options, quiet=True)


def moves(plan: Plan) -> list[tuple[str, str, str, int, int]]:
    return [(m.tensor, m.direction, m.kind, m.start_node, m.done_by_node) for m in plan.moves]


def test_a_tensor_that_must_be_evicted_and_fetched_back(profile_dir: Callable[[str], Path]) -> None:
    plan = plan_for(profile_dir, "evict_and_fetch", "synchronous", 21)
    assert moves(plan) == [
        ("x", "fast_to_slow", "sync", 1, 1),
        ("x", "slow_to_fast", "sync", 3, 3),
    ]
    assert plan.predicted.total_s == pytest.approx(0.004 + 2 * COPY_S)
    x = next(t for t in plan.tensors if t.name == "x")
    spans = sorted((r.tier, r.from_node, r.to_node) for r in x.residencies)
    assert spans == [("fast", 0, 1), ("fast", 3, 3), ("slow", 1, 3)]


def test_a_tensor_cheaper_to_leave_in_slow_memory(profile_dir: Callable[[str], Path]) -> None:
    for formulation in ("static", "synchronous"):
        plan = plan_for(profile_dir, "cheaper_slow", formulation, 120)
        assert plan.moves == ()
        assert plan.predicted.total_s == pytest.approx(0.006 + 0.0002)
        x = next(t for t in plan.tensors if t.name == "x")
        assert [r.tier for r in x.residencies] == ["slow"]


def test_an_async_move_hidden_under_a_long_kernel(profile_dir: Callable[[str], Path]) -> None:
    plan = plan_for(profile_dir, "hidden_async", "asynchronous", 25)
    assert ("x", "slow_to_fast", "async", 4, 5) in moves(plan)
    assert plan.predicted.total_s == pytest.approx(0.015)
    assert plan.predicted.async_overlap_s == pytest.approx(plan.predicted.async_move_s)
    sync = plan_for(profile_dir, "hidden_async", "synchronous", 25)
    assert sync.predicted.total_s == pytest.approx(0.015 + 2 * COPY_S)


@pytest.mark.parametrize("kind", ["static", "synchronous", "asynchronous"])
def test_numa_warm_start_is_feasible_and_round_trips(
    profile_dir: Callable[[str], Path], kind: str
) -> None:
    problem = load_problem(profile_dir("small_network"))
    limit = 30 * PAGE
    reduced = reduce(problem, limit, ReductionSettings())
    caps = (limit - problem.scratch_bytes() - reduced.fixed_fast_bytes) // PAGE
    formulation = Formulation(problem, reduced, FormulationSettings(kind), caps, 1e-6, PAGE)
    milp = formulation.build()
    fast, _ = numa_tiers(problem, limit, reduced.fixed)
    hint = hint_from_tiers(formulation, fast)
    assert milp.feasible(hint)
    placement = placement_of(formulation, hint)
    assert [placement.fast_at(t.index, t.birth) for t in problem.tensors] == fast
    # The traced placement maps back onto the very same variables.
    again = hint_from_placement(formulation, placement)
    assert again is not None and np.array_equal(again, hint)


def test_a_synchronous_plan_warm_starts_the_asynchronous_model(
    profile_dir: Callable[[str], Path],
) -> None:
    problem = load_problem(profile_dir("evict_and_fetch"))
    reduced = reduce(problem, 21 * PAGE, ReductionSettings())
    caps = (21 * PAGE - problem.scratch_bytes() - reduced.fixed_fast_bytes) // PAGE
    sync = Formulation(problem, reduced, FormulationSettings("synchronous"), caps, 1e-6, PAGE)
    result = solve(sync.build(), SolveOptions("scip", 10, 0.0, 1), quiet=True)
    assert result.values is not None
    asynchronous = Formulation(
        problem, reduced, FormulationSettings("asynchronous"), caps, 1e-6, PAGE
    )
    milp = asynchronous.build()
    hint = hint_from_placement(asynchronous, placement_of(sync, result.values))
    assert hint is not None and milp.feasible(hint)
    # Node 1 is a candidate point of the asynchronous model, where the synchronous plan's
    # eviction reads as an asynchronous write: the same residencies, never a higher cost.
    assert milp.objective_value(hint) <= sync.milp.objective_value(result.values) + 2


def test_model_families_are_recorded(profile_dir: Callable[[str], Path]) -> None:
    plan = plan_for(profile_dir, "small_network", "synchronous", 30)
    families = plan.reductions["model"]
    assert families["constraints"]["flow_start"] > 0
    assert families["constraints"]["fast_memory"] == 6  # one running sum per node
    assert sum(families["variables"].values()) == plan.solver.variables
