"""Realizing a placement: configurations read off spans, predictions, pools, overflow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from autotm_optimize import OptimizeOptions, load_problem, optimize, verify
from autotm_optimize.placement import Placement, PlannedMove, PoolOverflow, Span, realize
from autotm_optimize.plan import SolverStats
from autotm_optimize.solve import SolveOptions

from . import profiles

PAGE = 4096
STATS = SolverStats("heuristic", "heuristic")


def swap() -> Placement:
    """evict_and_fetch's optimal placement, written by hand."""
    return Placement(
        (
            (Span("fast", 0, 1), Span("slow", 1, 3), Span("fast", 3, 3)),  # x
            (Span("fast", 1, 2),),  # y
            (Span("fast", 2, 3),),  # w
            (Span("fast", 3, 3),),  # out
        ),
        (
            PlannedMove(0, "fast_to_slow", "sync", 1, 1),
            PlannedMove(0, "slow_to_fast", "sync", 3, 3),
        ),
    )


def test_realize_reads_configurations_off_the_spans(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("evict_and_fetch"))
    plan = realize(
        problem, swap(), formulation="synchronous", ratio=None, fast_limit=21 * PAGE, solver=STATS
    )
    assert [k.input_tiers for k in plan.kernels] == [(), (), ("fast",), ("fast", "fast")]
    assert plan.predicted.kernel_s == pytest.approx(0.004)
    assert plan.predicted.sync_move_s == pytest.approx(2 * 40960 / 1e9)
    assert plan.fast_pool_bytes <= 21 * PAGE
    assert verify(plan, problem) == []


def test_async_copies_hide_under_the_kernels_they_overlap(
    profile_dir: Callable[[str], Path],
) -> None:
    problem = load_problem(profile_dir("evict_and_fetch"))
    base = swap()
    moves = (
        PlannedMove(0, "fast_to_slow", "async", 1, 2),
        PlannedMove(0, "slow_to_fast", "sync", 3, 3),
    )
    plan = realize(
        problem,
        Placement(base.spans, moves),
        formulation="asynchronous",
        ratio=None,
        fast_limit=21 * PAGE,
        solver=STATS,
    )
    assert plan.predicted.async_move_s == pytest.approx(40960 / 0.5e9)
    assert plan.predicted.async_overlap_s == pytest.approx(
        plan.predicted.async_move_s
    )  # 82 us < 1 ms
    assert plan.predicted.total_s == pytest.approx(0.004 + 40960 / 1e9)


def test_a_pool_that_cannot_fit_raises_overflow(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("evict_and_fetch"))
    with pytest.raises(PoolOverflow) as caught:
        realize(
            problem,
            swap(),
            formulation="synchronous",
            ratio=None,
            fast_limit=19 * PAGE,
            solver=STATS,
        )
    assert caught.value.high_water >= 20 * PAGE
    assert int(caught.value.live.max()) == 21 * PAGE


def test_without_a_limit_the_pool_sizes_itself(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("evict_and_fetch"))
    plan = realize(
        problem,
        Placement.static(problem, [True] * 4),
        formulation="all-fast",
        ratio="0:1",
        fast_limit=None,
        solver=STATS,
    )
    assert plan.fast_limit_bytes == plan.fast_pool_bytes == 30 * PAGE  # x, y, w alive at node 2
    assert plan.footprint_bytes == 30 * PAGE


@pytest.mark.parametrize("formulation", ["numa", "static", "synchronous", "asynchronous"])
def test_small_tensors_share_pages_in_the_fast_pool(
    profile_dir: Callable[[str], Path], formulation: str
) -> None:
    # The resnet200-mini failure: thousands of tiny pinned tensors each took a 4 KiB page and
    # "tensor '...saved_mean' must stay in fast memory but 512 B does not fit the fast limit".
    problem = load_problem(profile_dir("small_tensors"))
    limit = 27 * PAGE
    options = OptimizeOptions(formulation, fast_limit=limit, solve=SolveOptions("scip", 20))
    plan = optimize(problem, options, quiet=True)
    assert verify(plan, problem) == []
    assert plan.fast_pool_bytes <= limit
    stats = [t for t in plan.tensors if t.name.startswith("bn")]
    assert len(stats) == profiles.SMALL_TENSORS
    offsets = [r.offset for t in stats for r in t.residencies if r.tier == "fast"]
    assert len(offsets) == profiles.SMALL_TENSORS and all(o % 64 == 0 for o in offsets)
    pages_used = {o // PAGE for o in offsets}
    assert len(pages_used) == profiles.SMALL_TENSORS * profiles.SMALL_BYTES // PAGE  # 6 pages
    # The footprint counts them as the pools do: 26 pages at node 1, not 68.
    assert problem.footprint_bytes() == (10 + 10 + 6) * PAGE
