"""Reductions: tiny tensors pinned fast within a budget, collapsed links, per-node needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from autotm_optimize import load_problem
from autotm_optimize.reductions import ReductionSettings, reduce

from . import profiles

PAGE = 4096


def test_tiny_tensors_are_pinned_fast_within_the_budget(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("small_network"))
    reduced = reduce(problem, 1000 * PAGE, ReductionSettings(tiny_fraction=0.001, tiny_budget=0.01))
    pinned = {problem.tensors[t].name for t, tier in reduced.fixed.items() if tier == "fast"}
    assert pinned == {"lr", "loss"}  # lr by the profile; loss (1 page) <= 1 page threshold
    assert reduced.counts["tiny_tensors_pinned_fast"] == 1


def test_the_budget_halves_the_threshold(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("small_network"))
    # A threshold of 12 pages would pin nearly everything: far above 10 % of 100 pages.
    reduced = reduce(problem, 100 * PAGE, ReductionSettings(tiny_fraction=0.12, tiny_budget=0.1))
    assert reduced.counts.get("tiny_threshold_bytes", 0) < 12 * 4096


def test_disabled_reductions_keep_the_full_model(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("small_network"))
    reduced = reduce(problem, 1000 * PAGE, ReductionSettings(enabled=False))
    assert reduced.counts["collapsed_tensor_links"] == 0
    assert reduced.counts["linear_time_nodes"] == 0
    assert set(reduced.fixed) == {t.index for t in problem.tensors if t.fixed_tier}


def test_additive_kernels_need_no_options(profile_dir: Callable[[str], Path]) -> None:
    problem = load_problem(profile_dir("small_network"))
    reduced = reduce(problem, 1000 * PAGE, ReductionSettings())
    # Every small_network kernel adds a penalty per slow tensor: all are linear or constant.
    assert reduced.counts["configuration_options"] == 0
    assert (
        reduced.counts["linear_time_nodes"] + reduced.counts["constant_time_nodes"]
        == problem.n_nodes
    )


def test_need_is_scratch_plus_pinned_plus_the_smallest_configuration(
    profile_dir: Callable[[str], Path],
) -> None:
    problem = load_problem(profile_dir("evict_and_fetch"))
    reduced = reduce(problem, 21 * PAGE, ReductionSettings())
    # Every kernel must have all its tensors fast: use_x needs x, w and out.
    assert reduced.need_bytes.tolist() == [10 * PAGE, 10 * PAGE, 20 * PAGE, 21 * PAGE]


def test_approximations_stay_within_the_error_budget(tmp_path: Path) -> None:
    # Two kernels whose times are additive but for 1 % of noise on one configuration.
    def noisy(seconds: float) -> Callable[[profiles.Tiers], float]:
        def cost(tiers: profiles.Tiers) -> float:
            slow = [n for n, tier in tiers.items() if tier == "slow"]
            return seconds * (1 + 0.5 * len(slow) + (0.01 if len(slow) == 2 else 0.0))

        return cost

    spec = profiles.Spec(
        tensors=[profiles.T("x", 4), profiles.T("y", 4), profiles.T("z", 4, "output")],
        nodes=[
            profiles.N("make", [], ["x"], 0.001),
            profiles.N("a", ["x"], ["y"], noisy(0.001)),
            profiles.N("b", ["y"], ["z"], noisy(0.001)),
        ],
    )
    problem = load_problem(profiles.write(tmp_path / "p", spec))
    loose = ReductionSettings(linear_rel_tol=0.02, error_budget=1.0)
    reduced = reduce(problem, 100 * PAGE, loose)
    assert reduced.counts["linear_time_nodes"] == 2
    assert reduced.counts["model_error_bound_s"] == pytest.approx(2e-5)
    # A budget of 1.5e-5 s (0.5 % of the 3 ms lower bound) keeps only one node approximate.
    tight = reduce(problem, 100 * PAGE, replace(loose, error_budget=0.005))
    assert tight.counts["linear_time_nodes"] == 1
    assert tight.counts["model_error_bound_s"] == pytest.approx(1e-5)
    exact = reduce(problem, 100 * PAGE, replace(loose, error_budget=0.0))
    assert exact.counts["linear_time_nodes"] == 0
    assert exact.counts["model_error_bound_s"] == 0
