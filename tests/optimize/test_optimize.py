"""The driver: every formulation and baseline yields a verified plan; budgets and infeasibility."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from autotm_optimize import (
    FORMULATIONS,
    OptimizeOptions,
    addresses,
    baselines,
    load_problem,
    optimize,
    placement,
    verify,
)
from autotm_optimize.formulation import FormulationSettings
from autotm_optimize.optimize import minimum_limit
from autotm_optimize.reductions import ReductionSettings, reduce
from autotm_optimize.solve import SolveOptions
from autotm_schemas import InfeasibleError, validate_document

PAGE = 4096
SCIP = SolveOptions("scip", 20, 0.0, 1)
HIGHS = SolveOptions("highs", 20, 0.0, 1)

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
    reduced = reduce(problem, 21 * PAGE, ReductionSettings())
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


def test_progress_and_summary_go_to_the_stream(profile_dir: Callable[[str], Path]) -> None:
    import io

    problem = load_problem(profile_dir("small_network"))
    stream = io.StringIO()
    optimize(
        problem, OptimizeOptions("synchronous", fast_limit=30 * PAGE, solve=SCIP), stream=stream
    )
    text = stream.getvalue()
    assert "synchronous model:" in text and "variables" in text and "optimal" in text


def test_fragmentation_is_resolved_by_a_headroom_and_a_re_solve(
    profile_dir: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Randomized restarts would find the one arrangement that fits: switch them off so that
    # the greedy orders overflow (10 pages for a peak of 9) and the driver must re-solve.
    monkeypatch.setattr(placement, "RESTARTS_WITHIN", -1.0)
    problem = load_problem(profile_dir("fragmenting"))
    limit = 9 * PAGE
    plan = optimize(problem, OptimizeOptions("static", fast_limit=limit, solve=HIGHS), quiet=True)
    assert verify(plan, problem) == []
    assert plan.fast_pool_bytes <= limit
    assert plan.solver.rounds == 2 and plan.reductions["fragmentation_resolves"] == 1
    assert plan.reductions["fragmentation_headroom_bytes"] == PAGE  # the hole greedy left
    assert "fallback" not in plan.reductions
    slow = {t.name for t in plan.tensors if all(r.tier == "slow" for r in t.residencies)}
    assert slow == {"d"}  # the cheapest tensor to give up
    assert plan.predicted.total_s == pytest.approx(0.005 + 0.0001)
    # The first solve, under the limit itself, found 5 ms: the headroom cost 0.1 ms of 5.1.
    assert plan.reductions["fragmentation_cost"] == pytest.approx(0.0001 / 0.0051, rel=1e-6)
    assert plan.reductions["gap_against_limit"] == pytest.approx(0.0001 / 0.0051, rel=1e-6)


def test_reordering_what_overflowed_spares_the_re_solve(
    profile_dir: Callable[[str], Path],
) -> None:
    # The same plan as above, whose greedy orders leave a page-sized hole: putting the buffers
    # that ended above the limit first finds the 9-page arrangement, so the first solve's
    # all-fast plan is kept, without a headroom or a second solve.
    problem = load_problem(profile_dir("fragmenting"))
    limit = 9 * PAGE
    plan = optimize(problem, OptimizeOptions("static", fast_limit=limit, solve=HIGHS), quiet=True)
    assert verify(plan, problem) == [] and plan.fast_pool_bytes == limit
    assert plan.solver.rounds == 1 and plan.reductions["fragmentation_headroom_bytes"] == 0
    assert plan.predicted.total_s == pytest.approx(0.005)
    assert "fallback" not in plan.reductions


def test_the_reordering_arrangement_is_what_the_plan_records(
    profile_dir: Callable[[str], Path],
) -> None:
    from autotm_optimize.optimize import _fast_buffers, _prioritized
    from autotm_optimize.placement import Placement

    problem = load_problem(profile_dir("fragmenting"))
    every = Placement.static(problem, [True] * len(problem.tensors))
    buffers, keys = _fast_buffers(problem, every)
    assert len(buffers) == len(keys) == len(problem.tensors) + problem.n_nodes
    preset, overflow = _prioritized(problem, every, 9 * PAGE, 5.0)
    assert overflow is None and preset is not None and set(preset) == set(keys)
    offsets = [preset[k] for k in keys]
    assert addresses.conflicts(buffers, offsets) == []
    assert max(o + b.size for o, b in zip(offsets, buffers, strict=True)) <= 9 * PAGE
    # Below the peak no order fits: the overflow of the lowest arrangement tells the driver
    # where to tighten.
    preset, overflow = _prioritized(problem, every, 8 * PAGE, 5.0)
    assert preset is None and overflow is not None and overflow.high_water == 9 * PAGE
    assert int(overflow.live.max()) == 9 * PAGE
    assert _prioritized(problem, every, 9 * PAGE, 0.0) == (None, None)  # no time: no search


def test_without_any_arrangement_the_error_names_the_achievable_limit(
    profile_dir: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(placement, "RESTARTS_WITHIN", -1.0)
    monkeypatch.setattr(addresses, "PACK_MAX_BUFFERS", 0)  # no CP-SAT search either

    def no_baseline(problem: object, limit: int, fixed: object = None) -> object:
        raise InfeasibleError("no first-touch placement")

    monkeypatch.setattr(baselines, "numa_tiers", no_baseline)
    problem = load_problem(profile_dir("fragmenting"))
    options = OptimizeOptions("static", fast_limit=9 * PAGE, solve=HIGHS, max_rounds=1)
    with pytest.raises(InfeasibleError, match=r"smallest achievable fast limit found is 40960 "):
        optimize(problem, options, quiet=True)
    # ... and that limit is achievable indeed.
    plan = optimize(problem, replace(options, fast_limit=40960), quiet=True)
    assert plan.fast_pool_bytes <= 40960 and verify(plan, problem) == []


def test_the_last_round_searches_with_cp_sat(
    profile_dir: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(placement, "RESTARTS_WITHIN", -1.0)
    problem = load_problem(profile_dir("fragmenting"))
    options = OptimizeOptions("static", fast_limit=9 * PAGE, solve=HIGHS, max_rounds=1)
    plan = optimize(problem, options, quiet=True)
    assert plan.fast_pool_bytes == 9 * PAGE and plan.solver.rounds == 1
    assert plan.predicted.total_s == pytest.approx(0.005)  # the all-fast plan, arranged
    assert verify(plan, problem) == []


def test_a_baseline_that_fits_is_the_fallback_when_no_arrangement_does(
    profile_dir: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(placement, "RESTARTS_WITHIN", -1.0)
    monkeypatch.setattr(addresses, "PACK_MAX_BUFFERS", 0)
    problem = load_problem(profile_dir("fragmenting"))
    options = OptimizeOptions("static", fast_limit=9 * PAGE, solve=HIGHS, max_rounds=1)
    plan = optimize(problem, options, quiet=True)
    assert verify(plan, problem) == [] and plan.fast_pool_bytes <= 9 * PAGE
    assert plan.reductions["fallback"].startswith("numa: no arrangement")
    assert plan.formulation == "static" and plan.solver.name == "highs"


@pytest.mark.parametrize("formulation", ["static", "synchronous"])
def test_the_ilp_is_never_predicted_slower_than_numa(
    profile_dir: Callable[[str], Path], formulation: str
) -> None:
    problem = load_problem(profile_dir("small_network"))
    for pages in (14, 20, 30):
        numa = optimize(problem, OptimizeOptions("numa", fast_limit=pages * PAGE), quiet=True)
        options = OptimizeOptions(formulation, fast_limit=pages * PAGE, solve=HIGHS)
        plan = optimize(problem, options, quiet=True)
        assert plan.predicted.total_s <= numa.predicted.total_s + 1e-12
