"""Shrinking the model before it is built; every reduction is counted into the plan.

1. **Tiny tensors stay fast.** A free tensor of at most ``tiny_fraction`` of the fast limit is
   pinned to the fast tier: moving it could never free a useful amount of memory, and reading it
   from fast memory is never slower. The pinned tensors together may take at most
   ``tiny_budget`` of the limit at any node; the threshold halves until they do, and the
   reduction is dropped if it would make some kernel's need exceed the limit.
2. **Kernels whose configurations cost the same collapse** (:mod:`autotm_optimize.kernels`): a
   tensor whose tier does not change a node's time is not linked to that node's choice, and a
   node with a single option costs a constant with no variables; a node whose time adds a fixed
   penalty per slow tensor is linear in the tiers and needs no option variables either. Both
   are exact on derived (emulated) profiles; on measured ones, with their noise, they hold
   within tolerances, and only while the sum over the nodes of the largest difference between
   model and profile stays within ``error_budget`` of the iteration's lower bound (a quarter
   of the optimality gap, from the driver), so the gap the plan reports keeps its meaning;
   the bound is recorded in the plan (``model_error_bound_s``).
3. **Dominated move points** (applied while the formulation is built, counted here): no fetch
   into a use whose kernel does not care where the tensor is (fetching at the next use that
   cares is never worse), and no asynchronous move at a kernel too short to hide it better than
   a synchronous move would.

The per-node need computed here (scratch, pinned tensors, and the smallest configuration) is
also the infeasibility test: a limit below it cannot hold that kernel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from autotm_schemas import BadInputError

from .kernels import NoConfigurationError, NodeChoices, node_choices
from .problem import FAST, Problem

EXACT_REL_TOL = 1e-9  # what floating-point sums of derived times differ by


@dataclass(frozen=True)
class ReductionSettings:
    tiny_fraction: float = 1e-4
    tiny_budget: float = 0.02
    collapse_rel_tol: float | None = 0.002
    linear_rel_tol: float | None = 0.005
    enabled: bool = True
    # The approximations of reduction 2 may together move any plan's predicted kernel time by
    # at most this share of the iteration's lower bound (the sum of each node's fastest
    # configuration); the driver sets it to a quarter of the optimality gap.
    error_budget: float = 0.0025


@dataclass
class Reduced:
    fixed: dict[int, str]  # tensor -> tier, the profile's fixed tiers plus pinned tiny tensors
    choices: tuple[NodeChoices, ...]
    need_bytes: (
        np.ndarray
    )  # smallest fast pool bytes each node needs (scratch, pinned, best option)
    fixed_fast_bytes: np.ndarray  # pool bytes of fast-pinned tensors alive at each node
    counts: dict[str, Any] = field(default_factory=dict)


def _choices(
    problem: Problem, fixed: Mapping[int, str], settings: ReductionSettings
) -> tuple[NodeChoices, ...]:
    """Every node's options; approximate reductions only while their errors, summed over the
    nodes, stay within the budget (the largest errors are made exact first)."""
    collapse = settings.collapse_rel_tol if settings.enabled else None
    linear = settings.linear_rel_tol if settings.enabled else None
    try:
        choices = [node_choices(node, fixed, collapse, linear) for node in problem.nodes]
        budget = settings.error_budget * lower_bound_s(problem)
        total = sum(nc.error_s for nc in choices)
        for nc in sorted(choices, key=lambda c: -c.error_s):
            if total <= budget or nc.error_s == 0.0:
                break
            exact_collapse = EXACT_REL_TOL if collapse is not None else None
            exact_linear = EXACT_REL_TOL if linear is not None else None
            exact = node_choices(problem.nodes[nc.node], fixed, exact_collapse, exact_linear)
            choices[nc.node] = exact
            total += exact.error_s - nc.error_s
        return tuple(choices)
    except NoConfigurationError as exc:
        raise BadInputError(f"{problem.profile_path}/kernels.parquet: {exc}") from None


def lower_bound_s(problem: Problem) -> float:
    """No plan's kernels take less than each node's fastest profiled configuration."""
    return sum(min((c.seconds for c in n.configs), default=0.0) for n in problem.nodes)


def _need(
    problem: Problem, fixed: Mapping[int, str], choices: tuple[NodeChoices, ...]
) -> tuple[np.ndarray, np.ndarray]:
    fixed_fast = problem.live_bytes([fixed.get(t.index) == FAST for t in problem.tensors])
    need = fixed_fast + problem.scratch_bytes()
    for nc in choices:
        sizes = np.array([problem.tensors[t].pool_bytes for t in nc.tensors], dtype=np.int64)
        best = min(int(sizes[list(o.fast)].sum()) if sizes.size else 0 for o in nc.options)
        need[nc.node] += best
    return need, fixed_fast


def reduce(problem: Problem, limit: int, settings: ReductionSettings) -> Reduced:
    """Apply reductions 1 and 2 for a fast limit in bytes; reduction 3 happens in the
    formulation."""
    profile_fixed = {t.index: t.fixed_tier for t in problem.tensors if t.fixed_tier}
    counts: dict[str, Any] = {"fixed_by_profile": len(profile_fixed)}
    base_choices = _choices(problem, profile_fixed, settings)
    base_need, base_fixed = _need(problem, profile_fixed, base_choices)
    best = Reduced(dict(profile_fixed), base_choices, base_need, base_fixed, counts)

    if settings.enabled and problem.tensors:
        threshold = int(limit * settings.tiny_fraction)
        budget = limit * settings.tiny_budget
        while threshold >= 1:
            tiny = {
                t.index: FAST
                for t in problem.tensors
                if t.index not in profile_fixed and t.pool_bytes <= threshold
            }
            live = problem.live_bytes([t.index in tiny for t in problem.tensors])
            if tiny and live.max() <= budget:
                fixed = profile_fixed | tiny
                choices = _choices(problem, fixed, settings)
                need, fixed_fast = _need(problem, fixed, choices)
                if need.max() <= max(limit, int(base_need.max())):
                    best = Reduced(fixed, choices, need, fixed_fast, counts)
                    counts["tiny_tensors_pinned_fast"] = len(tiny)
                    counts["tiny_threshold_bytes"] = threshold
                break
            if not tiny:
                break
            threshold //= 2

    counts["collapsed_tensor_links"] = sum(len(nc.collapsed) for nc in best.choices)
    counts["constant_time_nodes"] = sum(nc.constant is not None for nc in best.choices)
    counts["linear_time_nodes"] = sum(nc.linear is not None for nc in best.choices)
    counts["configuration_options"] = sum(
        len(nc.options) for nc in best.choices if nc.constant is None and nc.linear is None
    )
    # How far the model's kernel times may be from the profile's, for any plan: the plan's
    # gap against the profile is at most its gap against the model plus twice this over its
    # predicted time.
    counts["model_error_bound_s"] = sum(nc.error_s for nc in best.choices)
    return best
