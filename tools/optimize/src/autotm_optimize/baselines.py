"""The baselines: everything fast, everything slow, and first-touch NUMA placement.

None of them moves a tensor; each returns a static :class:`Placement` that
:func:`autotm_optimize.placement.realize` turns into a plan like any ILP result.

- all-fast: the paper's 0:1 ratio; the fast pool is as large as the execution order needs.
- all-slow: the paper's 1:0; only kernel scratch space (always fast) and tensors the runtime pins
  to the fast tier (``fixed_tier``) are in fast memory.
- numa: first touch, as the operating system places pages: at the start of the iteration
  parameters, inputs and constants, then each node's outputs in execution order, go to the fast
  tier if a free range of the fast pool holds them for their whole life, else to the slow tier.
  Kernel scratch is reserved first, at the top of the pool (aligned down, as any buffer is
  aligned), since it must be fast.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from autotm_schemas import InfeasibleError
from autotm_schemas.units import format_bytes

from .addresses import Buffer, FirstFit
from .placement import Placement
from .problem import FAST, SLOW, Problem


def all_fast(problem: Problem) -> Placement:
    return Placement.static(problem, [t.fixed_tier != SLOW for t in problem.tensors])


def all_slow(problem: Problem) -> Placement:
    return Placement.static(problem, [t.fixed_tier == FAST for t in problem.tensors])


def numa_tiers(
    problem: Problem, limit: int, fixed: Mapping[int, str] | None = None
) -> tuple[list[bool], dict[tuple[int, int], int]]:
    """First-touch tiers under a fast limit in bytes, and the fast offsets it chose.

    ``fixed`` overrides tiers (tensor index -> tier) on top of the profile's fixed tiers: the
    ILP driver passes the tensors its reductions pinned, so that the baseline is a valid warm
    start.
    """
    pinned = {t.index: t.fixed_tier for t in problem.tensors if t.fixed_tier}
    pinned.update(fixed or {})
    need = problem.scratch_bytes() + problem.live_bytes(
        [pinned.get(t.index) == FAST for t in problem.tensors]
    )
    if problem.nodes and int(need.max()) > limit:
        node = problem.nodes[int(np.argmax(need))]
        raise InfeasibleError(
            f"the fast limit of {format_bytes(limit)} is below what node {node.name!r} "
            f"({node.op_type}, #{node.index}) needs for its scratch and the tensors pinned to "
            f"fast memory: the smallest feasible fast limit is at least {int(need.max())} bytes"
        )
    pool = FirstFit(limit)
    offsets: dict[tuple[int, int], int] = {}
    for node in problem.nodes:
        scratch = Buffer.scratch(node.index, node.scratch_bytes)
        top = (limit - scratch.size) // scratch.align * scratch.align
        if top < 0:
            raise InfeasibleError(
                f"node {node.name!r} needs {format_bytes(scratch.size)} of fast scratch space, "
                f"over the fast limit of {format_bytes(limit)}"
            )
        offsets[(-1, node.index)] = top if scratch.size else 0
        if scratch.size:
            pool.place_at(scratch, top)
    order = sorted(
        problem.tensors,
        key=lambda t: (pinned.get(t.index) != FAST, t.birth, t.producer is not None, t.index),
    )
    fast = [False] * len(problem.tensors)
    for t in order:
        if pinned.get(t.index) == SLOW:
            continue
        offset = pool.try_place(Buffer.tensor(t.birth, t.death, t.bytes))
        if offset is None:
            if pinned.get(t.index) == FAST:
                raise InfeasibleError(
                    f"tensor {t.name!r} must stay in fast memory but {format_bytes(t.bytes)} "
                    f"does not fit the fast limit of {format_bytes(limit)} next to the others"
                )
            continue
        fast[t.index] = True
        offsets[(t.index, 0)] = offset
    return fast, offsets


def numa(problem: Problem, limit: int) -> Placement:
    return numa_placement(problem, *numa_tiers(problem, limit))


def numa_placement(
    problem: Problem, fast: list[bool], offsets: dict[tuple[int, int], int]
) -> Placement:
    """The static placement of first-touch tiers, with the offsets first touch chose."""
    base = Placement.static(problem, fast)
    return Placement(base.spans, (), preset_fast_offsets=offsets)
