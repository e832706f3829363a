"""Baselines: all-fast, all-slow, and first-touch NUMA under a limit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from autotm_optimize import OptimizeOptions, baselines, load_problem, optimize, verify
from autotm_optimize.problem import PAGE, scratch_pool_bytes
from autotm_schemas import InfeasibleError
from autotm_schemas.alignment import is_aligned


def test_all_fast_and_all_slow_respect_fixed_tiers(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("small_network"))
    lr = next(t.index for t in problem.tensors if t.name == "lr")
    fast = baselines.all_fast(problem)
    slow = baselines.all_slow(problem)
    assert all(s[0].tier == "fast" for s in fast.spans)
    assert [s[0].tier for s in slow.spans].count("fast") == 1 and slow.spans[lr][0].tier == "fast"


@pytest.mark.parametrize("pages", [12, 20, 30, 45])
def test_numa_places_first_touched_tensors_while_they_fit(
    profile_dir: Callable[[str], Path], pages: int
) -> None:
    problem = load_problem(profile_dir("small_network"))
    fast, offsets = baselines.numa_tiers(problem, pages * PAGE)
    for (tensor, _), offset in offsets.items():
        if tensor >= 0:
            t = problem.tensors[tensor]
            assert offset + t.pool_bytes <= pages * PAGE
    # Nothing moves, and at every node the fast tensors plus scratch fit the limit.
    live = problem.live_bytes(fast) + problem.scratch_bytes()
    assert int(live.max()) <= pages * PAGE


def test_numa_fills_in_first_touch_order(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("small_network"))
    fast, _ = baselines.numa_tiers(problem, 20 * PAGE)
    names = {t.name: fast[t.index] for t in problem.tensors}
    # Parameters, inputs, constants come first (w 8 + img 6 + lr 1 = 15 of 20, 4 scratch).
    assert names["w"] and names["img"] and names["lr"]
    assert not names["h"]  # 12 more pages do not fit beside them


def test_numa_scratch_must_fit(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("small_network"))
    with pytest.raises(InfeasibleError, match="scratch"):
        baselines.numa_tiers(problem, 3 * PAGE)


@pytest.mark.parametrize("limit", [20 * PAGE + 1000, 20 * PAGE + 4095, 31 * PAGE + 7])
def test_numa_scratch_at_the_top_of_an_unaligned_limit_stays_aligned(
    profile_dir: Callable[[str], Path], limit: int
) -> None:
    # A ratio gives limits that are no multiple of a page (vgg19-mini 8:1: 1201493 bytes);
    # scratch reserved at the top of the pool must still start on its alignment.
    problem = load_problem(profile_dir("small_network"))
    _, offsets = baselines.numa_tiers(problem, limit)
    for node in problem.nodes:
        offset = offsets[(-1, node.index)]
        if node.scratch_bytes:
            assert is_aligned(offset, node.scratch_bytes)
            assert offset + scratch_pool_bytes(node.scratch_bytes) <= limit
    plan = optimize(problem, OptimizeOptions("numa", fast_limit=limit), quiet=True)
    assert verify(plan, problem) == []
