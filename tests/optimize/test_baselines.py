"""Baselines: all-fast, all-slow, and first-touch NUMA under a limit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from autotm_optimize import baselines, load_problem
from autotm_optimize.problem import PAGE
from autotm_schemas import InfeasibleError


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
            assert offset + t.pages * PAGE <= pages * PAGE
    # Nothing moves, and at every node the fast tensors plus scratch fit the limit.
    live = problem.live_pages(fast) + problem.scratch_pages()
    assert int(live.max()) <= pages


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
