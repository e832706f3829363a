"""The verifier accepts good plans and names every kind of broken one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from autotm_optimize import OptimizeOptions, load_problem, optimize, verify
from autotm_optimize.plan import Move, Plan, Residency, TensorPlan
from autotm_optimize.problem import Problem
from autotm_optimize.solve import SolveOptions

PAGE = 4096


@pytest.fixture(scope="module")
def swap_plan(profile_dir: Callable[[str], Path]) -> tuple[Plan, Problem]:
    problem = load_problem(profile_dir("evict_and_fetch"))
    options = OptimizeOptions(
        "synchronous", fast_limit=21 * PAGE, solve=SolveOptions("scip", 10, 0.0, 1)
    )
    return optimize(problem, options, quiet=True), problem


def with_tensor(plan: Plan, name: str, residencies: tuple[Residency, ...]) -> Plan:
    return replace(
        plan,
        tensors=tuple(
            replace(t, residencies=residencies) if t.name == name else t for t in plan.tensors
        ),
    )


def x_of(plan: Plan) -> TensorPlan:
    return next(t for t in plan.tensors if t.name == "x")


def test_a_good_plan_passes(swap_plan: tuple[Plan, Problem]) -> None:
    plan, problem = swap_plan
    assert verify(plan, problem) == []


def test_unaligned_offsets_are_caught(swap_plan: tuple[Plan, Problem]) -> None:
    plan, problem = swap_plan
    bad = with_tensor(
        plan, "x", tuple(replace(r, offset=r.offset + 8) for r in x_of(plan).residencies)
    )
    assert any("not a multiple of 4096" in p for p in verify(bad, problem))


def test_small_tensors_are_checked_against_their_own_alignment(
    profile_dir: Callable[[str], Path],
) -> None:
    problem = load_problem(profile_dir("small_tensors"))
    plan = optimize(problem, OptimizeOptions("numa", fast_limit=27 * PAGE), quiet=True)
    assert verify(plan, problem) == []
    stat = next(t for t in plan.tensors if t.name == "bn0")
    assert any(r.offset % PAGE for t in plan.tensors for r in t.residencies if t.bytes < PAGE)
    shifted = with_tensor(
        plan, "bn0", tuple(replace(r, offset=r.offset + 8) for r in stat.residencies)
    )
    assert any("bn0" in p and "not a multiple of 64" in p for p in verify(shifted, problem))
    # A page-sized scratch at a cache-line offset is caught too.
    kernels = tuple(
        replace(k, scratch_bytes=PAGE, scratch_offset=64) if k.node == 0 else k
        for k in plan.kernels
    )
    problems = verify(replace(plan, kernels=kernels), problem)
    assert any("scratch offset 64 is not a multiple of 4096" in p for p in problems)


def test_a_gap_in_a_life_is_caught(swap_plan: tuple[Plan, Problem]) -> None:
    plan, problem = swap_plan
    only_fast = tuple(r for r in x_of(plan).residencies if r.tier == "fast")
    problems = verify(with_tensor(plan, "x", only_fast), problem)
    assert any("no residency at node 2" in p for p in problems)


def test_a_kernel_reading_a_missing_tier_is_caught(swap_plan: tuple[Plan, Problem]) -> None:
    plan, problem = swap_plan
    kernels = list(plan.kernels)
    kernels[2] = replace(kernels[2], input_tiers=("slow",), predicted_s=kernels[2].predicted_s)
    problems = verify(replace(plan, kernels=tuple(kernels)), problem)
    assert any("was not profiled" in p for p in problems)
    assert any("'y' has no slow residency" in p for p in problems)


def test_a_residency_nobody_fills_is_caught(swap_plan: tuple[Plan, Problem]) -> None:
    plan, problem = swap_plan
    without_fetch = tuple(m for m in plan.moves if m.direction != "slow_to_fast")
    problems = verify(replace(plan, moves=without_fetch), problem)
    assert any("fast residency from node 3: no move fills it" in p for p in problems)


def test_a_move_without_a_source_is_caught(swap_plan: tuple[Plan, Problem]) -> None:
    plan, problem = swap_plan
    ghost = Move("y", "slow_to_fast", "sync", 2, 2, 10 * PAGE)
    problems = verify(replace(plan, moves=(*plan.moves, ghost)), problem)
    assert any("no slow residency covers the copy" in p for p in problems)


def test_async_moves_must_end_later(swap_plan: tuple[Plan, Problem]) -> None:
    plan, problem = swap_plan
    moves = tuple(
        replace(m, kind="async") if m.direction == "slow_to_fast" else m for m in plan.moves
    )
    assert any(
        "does not fit a async move" in p for p in verify(replace(plan, moves=moves), problem)
    )


def test_overlapping_addresses_are_caught(swap_plan: tuple[Plan, Problem]) -> None:
    plan, problem = swap_plan
    y = next(t for t in plan.tensors if t.name == "y")
    w = next(t for t in plan.tensors if t.name == "w")
    clash = with_tensor(
        plan, "w", tuple(replace(r, offset=y.residencies[0].offset) for r in w.residencies)
    )
    assert any("overlap in time and address" in p for p in verify(clash, problem))


def test_a_pool_over_the_limit_is_caught(swap_plan: tuple[Plan, Problem]) -> None:
    plan, problem = swap_plan
    problems = verify(replace(plan, fast_limit_bytes=plan.fast_pool_bytes - PAGE), problem)
    assert any("above the limit" in p for p in problems)


def test_a_wrong_prediction_is_caught(swap_plan: tuple[Plan, Problem]) -> None:
    plan, problem = swap_plan
    kernels = (replace(plan.kernels[0], predicted_s=1.0), *plan.kernels[1:])
    problems = verify(replace(plan, kernels=kernels), problem)
    assert any("the profile says" in p for p in problems)
    assert any("is not the sum" in p for p in problems)


def test_a_plan_for_another_graph_is_caught(swap_plan: tuple[Plan, Problem]) -> None:
    plan, problem = swap_plan
    assert "graph_sha256 differs" in verify(replace(plan, graph_sha256="f" * 64), problem)[0]


def test_a_phantom_copy_at_the_producer_is_caught(swap_plan: tuple[Plan, Problem]) -> None:
    plan, problem = swap_plan
    residencies = (*x_of(plan).residencies, Residency("slow", 0, 0, 0))
    problems = verify(with_tensor(plan, "x", residencies), problem)
    assert any("slow residency from its producer, which writes it fast" in p for p in problems)
