"""A node's options over tensors: aliases, fixed tiers, collapsing and the affine form."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection

import pytest
from autotm_optimize.kernels import NoConfigurationError, estimate_seconds, node_choices, tiers_at
from autotm_optimize.problem import CopyRates, KernelConfig, Node, Problem

Tiers = dict[int | None, str]
Cost = Callable[[Tiers], float]


def node(
    inputs: tuple[int | None, ...],
    outputs: tuple[int, ...],
    cost: Cost,
    only: Collection[tuple[str, ...]] | None = None,
) -> Node:
    """A node profiled under every configuration (or those in ``only``), timed by ``cost``."""
    configs = []
    positions = (*inputs, *outputs)
    for choice in itertools.product(("fast", "slow"), repeat=len(positions)):
        tiers = tuple("" if t is None else tier for t, tier in zip(positions, choice, strict=True))
        if only is not None and tiers not in only:
            continue
        configs.append(
            KernelConfig(
                tiers[: len(inputs)],
                tiers[len(inputs) :],
                cost(dict(zip(positions, tiers, strict=True))),
            )
        )
    return Node(0, "n", "Op", "k", inputs, outputs, 0, tuple(dict.fromkeys(configs)))


def slow_count(tiers: Tiers) -> float:
    return 1.0 + sum(0.5 * (tier == "slow") for t, tier in tiers.items() if t is not None)


def test_an_aliased_input_keeps_only_agreeing_configurations() -> None:
    n = node((0, 0), (1,), slow_count)
    nc = node_choices(n, {}, None, None)
    assert nc.tensors == (0, 1)
    assert len(nc.options) == 4  # (x, y) tiers; x read twice must agree


def test_fixed_tiers_filter_and_drop_the_tensor() -> None:
    nc = node_choices(node((0, 1), (2,), slow_count), {1: "fast"}, None, None)
    assert nc.tensors == (0, 2)
    assert {o.fast for o in nc.options} == {
        (True, True),
        (True, False),
        (False, True),
        (False, False),
    }


def test_no_agreeing_configuration_is_an_error() -> None:
    only = {("fast", "fast")}
    with pytest.raises(NoConfigurationError, match="fixed tiers"):
        node_choices(node((0,), (1,), slow_count, only), {0: "slow"})


def test_a_tensor_whose_tier_does_not_matter_collapses() -> None:
    def cost(tiers: Tiers) -> float:
        return 1.0 + (tiers[0] == "slow") * 0.5 + (tiers[1] == "slow") * 0.0001

    nc = node_choices(node((0,), (1,), cost), {}, collapse_rel_tol=0.01, linear_rel_tol=None)
    assert nc.collapsed == (1,)
    assert nc.tensors == (0,)
    assert len(nc.options) == 2


def test_a_single_option_is_a_constant() -> None:
    nc = node_choices(node((0,), (1,), lambda tiers: 2.0), {}, collapse_rel_tol=0.001)
    assert nc.constant == 2.0 and nc.tensors == ()


def test_restricted_profiles_never_collapse() -> None:
    nc = node_choices(node((0,), (1,), lambda tiers: 2.0, only={("fast", "fast")}), {})
    assert nc.tensors == (0, 1) and nc.constant == 2.0  # constant, but it dictates the tiers


def test_additive_costs_are_linear() -> None:
    nc = node_choices(
        node((0, 1), (2,), slow_count), {}, collapse_rel_tol=None, linear_rel_tol=1e-9
    )
    assert nc.linear is not None
    assert nc.linear.base == pytest.approx(1.0)
    assert nc.linear.penalty == pytest.approx((0.5, 0.5, 0.5))


def test_non_additive_costs_keep_their_options() -> None:
    def roofline(tiers: Tiers) -> float:
        return max(1.0, 0.4 * sum(tier == "slow" for tier in tiers.values()))

    nc = node_choices(node((0, 1), (2,), roofline), {}, collapse_rel_tol=None, linear_rel_tol=1e-9)
    assert nc.linear is None and len(nc.options) == 8


def test_tied_tensors_count_as_one() -> None:
    only = {(a, a, b) for a in ("fast", "slow") for b in ("fast", "slow")}
    nc = node_choices(
        node((0, 1), (2,), slow_count, only), {}, collapse_rel_tol=None, linear_rel_tol=1e-9
    )
    assert nc.linear is not None
    assert nc.linear.tied == ((1, 0),)
    assert nc.linear.penalty == pytest.approx((1.0, 0.0, 0.5))


def test_estimates_use_the_slowest_nearest_configuration() -> None:
    n = node(
        (0,),
        (1,),
        lambda tiers: 1.0 if tiers[0] == "fast" else 3.0,
        only={("fast", "fast"), ("slow", "fast")},
    )
    problem = Problem("n", 1, "0" * 64, None, None, "simulated", (n,), (), CopyRates(1, 1, 1, 1))
    assert estimate_seconds(problem, n, ("fast",), ("fast",)) == (1.0, False)
    assert estimate_seconds(problem, n, ("slow",), ("slow",)) == (3.0, True)
    assert tiers_at(n, {0: True, 1: False}) == (("fast",), ("slow",))


def nearly_additive(tiers: Tiers) -> float:
    """Half a second per slow tensor, and a millisecond more when both inputs are slow."""
    slow = [t for t, tier in tiers.items() if t is not None and tier == "slow"]
    return 1.0 + 0.5 * len(slow) + (0.001 if {0, 1} <= set(slow) else 0.0)


@pytest.mark.parametrize(("tolerance", "linear", "error"), [(0.005, True, 0.001), (1e-9, False, 0)])
def test_each_node_records_how_far_its_model_is_from_the_profile(
    tolerance: float, linear: bool, error: float
) -> None:
    nc = node_choices(node((0, 1), (2,), nearly_additive), {}, None, tolerance)
    assert (nc.linear is not None) == linear
    assert nc.error_s == pytest.approx(error, abs=1e-12)
    # The model's times are the profile's, up to that error.
    for option in nc.options:
        assert abs(nc.model_seconds(option.fast) - option.seconds) <= nc.error_s + 1e-12


def test_collapsing_near_twins_records_the_averaging_error() -> None:
    def cost(tiers: Tiers) -> float:
        return 2.0 + (0.002 if tiers[0] == "slow" else 0.0)  # tensor 0 barely matters

    nc = node_choices(node((0,), (1,), cost), {}, collapse_rel_tol=0.01, linear_rel_tol=None)
    assert nc.collapsed == (0, 1)  # tensor 1 never mattered
    assert nc.constant == pytest.approx(2.001)
    assert nc.error_s == pytest.approx(0.001)  # the average of 2.0 and 2.002, off by 1 ms
