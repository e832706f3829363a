"""From where tensors live (a placement) to a full plan: configurations, prediction, addresses.

Every planner, ILP or baseline, decides a :class:`Placement`: for each tensor the node ranges
it occupies in each tier (spans) and the moves that fill them. :func:`realize` derives the rest
the same way for all of them, so that plans differ only in their decisions:

- each kernel's configuration is read off the spans (a tensor is fast at a node when a fast span
  covers it), and costs that configuration's profiled time;
- sync moves cost bytes over the measured sync bandwidth; async moves cost bytes over the async
  bandwidth, hidden under the kernels they overlap up to those kernels' time;
- spans get aligned offsets (:mod:`autotm_schemas.alignment`: pages for tensors of a page or
  more, cache lines for smaller ones; greedy orders, then a CP-SAT search if none fits); each
  kernel's scratch is a buffer of the fast pool too, so the fast pool's high-water mark is the
  real fast-memory use.

A fast pool above the limit raises :class:`PoolOverflow` with the top address at each node, which
the ILP driver turns into tighter per-node limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import addresses
from .addresses import Buffer
from .kernels import estimate_seconds, tiers_at
from .plan import KernelChoice, Move, Plan, Predicted, Residency, SolverStats, TensorPlan
from .problem import FAST, SLOW, Problem

RESTARTS_WITHIN = 0.01  # randomized restarts only for arrangements this close to the limit


@dataclass(frozen=True)
class Span:
    tier: str
    from_node: int
    to_node: int

    def covers(self, node: int) -> bool:
        return self.from_node <= node <= self.to_node


@dataclass(frozen=True)
class PlannedMove:
    tensor: int
    direction: str  # slow_to_fast | fast_to_slow
    kind: str  # sync | async
    start_node: int
    done_by_node: int


@dataclass(frozen=True)
class Placement:
    spans: tuple[tuple[Span, ...], ...]  # by tensor index
    moves: tuple[PlannedMove, ...] = ()
    preset_fast_offsets: dict[tuple[int, int], int] | None = field(default=None, compare=False)

    @staticmethod
    def static(problem: Problem, fast: Sequence[bool]) -> Placement:
        """Nothing moves: each tensor lives its whole life in one tier."""
        return Placement(
            tuple(
                (Span(FAST if fast[t.index] else SLOW, t.birth, t.death),) for t in problem.tensors
            )
        )

    def fast_at(self, tensor: int, node: int) -> bool:
        return any(s.tier == FAST and s.covers(node) for s in self.spans[tensor])


class PoolOverflow(Exception):
    """The fast pool's addresses do not fit the limit (fragmentation)."""

    def __init__(self, high_water: int, limit: int, top: np.ndarray, live: np.ndarray) -> None:
        self.high_water = high_water
        self.limit = limit
        self.top = top  # highest address in use at each node
        self.live = live  # bytes in use at each node (what no arrangement can go below)
        super().__init__(f"fast pool needs {high_water} bytes, over the limit of {limit}")


def _async_overlap(
    problem: Problem, kernel_s: Sequence[float], moves: Sequence[PlannedMove]
) -> tuple[float, float]:
    """(async transfer seconds, the part hidden under kernels).

    A transfer overlapping kernels start..done-1 hides under their time; transfers sharing a
    kernel share its time (the objective's max(kernel, transfers) per kernel).
    """
    capacity = np.array(kernel_s, dtype=float)
    total = hidden = 0.0
    for move in sorted(moves, key=lambda m: (m.start_node, m.done_by_node)):
        if move.kind != "async":
            continue
        need = problem.copy.seconds(problem.tensors[move.tensor].bytes, move.direction, "async")
        total += need
        for node in range(move.start_node, max(move.start_node + 1, move.done_by_node)):
            take = min(need, capacity[node])
            capacity[node] -= take
            need -= take
            hidden += take
            if need <= 0:
                break
    return total, hidden


def arrange_fast(
    buffers: Sequence[Buffer],
    limit: int | None,
    restarts_s: float = 3.0,
    search_s: float = 7.0,
    threads: int = 2,
    preset: np.ndarray | None = None,
) -> addresses.Assignment:
    """Offsets for the fast pool: a preset arrangement (the NUMA baseline's own addresses)
    when it is valid and fits, else the lowest greedy one; when that does not fit ``limit``,
    randomized greedy restarts for up to ``restarts_s`` seconds (when it misses by little: a
    new order seldom recovers more than a percent), then CP-SAT for up to ``search_s``."""
    if preset is not None and (preset >= 0).all() and not addresses.misaligned(buffers, preset):
        high = max((int(o) + b.size for o, b in zip(preset, buffers, strict=True)), default=0)
        if limit is None or high <= limit:
            return addresses.Assignment(preset, high, "preset")
    fast = addresses.assign(buffers, limit)
    if limit is None or fast.high_water <= limit:
        return fast
    if restarts_s > 0 and fast.high_water - limit <= RESTARTS_WITHIN * limit:
        restarted = addresses.assign(buffers, limit, restarts_s=restarts_s)
        if restarted.high_water < fast.high_water:
            fast = restarted
    if fast.high_water > limit and len(buffers) <= addresses.PACK_MAX_BUFFERS and search_s > 0:
        packed = addresses.pack(buffers, limit, search_s, threads, fast.offsets)
        if packed is not None and packed.high_water < fast.high_water:
            fast = packed
    return fast


def realize(
    problem: Problem,
    placement: Placement,
    *,
    formulation: str,
    ratio: str | None,
    fast_limit: int | None,
    solver: SolverStats,
    reductions: dict[str, Any] | None = None,
    restarts_s: float = 3.0,
    search_s: float = 7.0,
    threads: int = 2,
) -> Plan:
    """Complete a placement into a plan; ``fast_limit`` None sizes the fast pool to fit.

    Addresses come from the best greedy order; when that overflows the limit, from a search
    (:func:`arrange_fast`: ``restarts_s`` of randomized greedy orders, ``search_s`` of CP-SAT)
    before giving up with :class:`PoolOverflow`.
    """
    n = problem.n_nodes
    kernels = []
    kernel_s = []
    estimated = 0
    for node in problem.nodes:
        tier_fast = {t: placement.fast_at(t, node.index) for t in node.tensors}
        ins, outs = tiers_at(node, tier_fast)
        seconds, guessed = estimate_seconds(problem, node, ins, outs)
        estimated += guessed
        kernel_s.append(seconds)
        kernels.append((node, ins, outs, seconds, guessed))

    sync_s = sum(
        problem.copy.seconds(problem.tensors[m.tensor].bytes, m.direction, "sync")
        for m in placement.moves
        if m.kind == "sync"
    )
    async_s, hidden_s = _async_overlap(problem, kernel_s, placement.moves)

    # Address assignment: fast spans and scratch share the fast pool.
    fast_buffers: list[Buffer] = []
    fast_keys: list[tuple[int, int]] = []
    slow_buffers: list[Buffer] = []
    slow_keys: list[tuple[int, int]] = []
    for t in problem.tensors:
        for i, span in enumerate(placement.spans[t.index]):
            buffer = Buffer.tensor(span.from_node, span.to_node, t.bytes)
            if span.tier == FAST:
                fast_buffers.append(buffer)
                fast_keys.append((t.index, i))
            else:
                slow_buffers.append(buffer)
                slow_keys.append((t.index, i))
    for node in problem.nodes:
        fast_buffers.append(Buffer.scratch(node.index, node.scratch_bytes))
        fast_keys.append((-1, node.index))

    preset = None
    if placement.preset_fast_offsets is not None:
        preset = np.array(
            [placement.preset_fast_offsets.get(key, -1) for key in fast_keys], dtype=np.int64
        )
    fast = arrange_fast(fast_buffers, fast_limit, restarts_s, search_s, threads, preset)
    if fast_limit is not None and fast.high_water > fast_limit:
        raise PoolOverflow(
            fast.high_water,
            fast_limit,
            addresses.top_by_node(fast_buffers, fast.offsets, n),
            addresses.live_by_node(fast_buffers, n),
        )
    slow = addresses.assign(slow_buffers)

    offset_of: dict[tuple[str, int, int], int] = {}
    for key, offset in zip(fast_keys, fast.offsets, strict=True):
        offset_of[(FAST, *key)] = int(offset)
    for key, offset in zip(slow_keys, slow.offsets, strict=True):
        offset_of[(SLOW, *key)] = int(offset)

    tensor_plans = tuple(
        TensorPlan(
            t.name,
            t.bytes,
            tuple(
                Residency(s.tier, offset_of[(s.tier, t.index, i)], s.from_node, s.to_node)
                for i, s in enumerate(placement.spans[t.index])
            ),
        )
        for t in problem.tensors
    )
    moves = tuple(
        Move(
            problem.tensors[m.tensor].name,
            m.direction,
            m.kind,
            m.start_node,
            m.done_by_node,
            problem.tensors[m.tensor].bytes,
        )
        for m in sorted(placement.moves, key=lambda m: (m.start_node, m.done_by_node, m.tensor))
    )
    choices = tuple(
        KernelChoice(
            node=node.index,
            kernel_key=node.kernel_key,
            input_tiers=ins,
            output_tiers=outs,
            predicted_s=seconds,
            scratch_bytes=node.scratch_bytes,
            scratch_offset=offset_of.get((FAST, -1, node.index), 0),
            estimated=guessed,
        )
        for node, ins, outs, seconds, guessed in kernels
    )
    notes = dict(reductions or {})
    if estimated:
        notes["estimated_kernel_configurations"] = estimated
    return Plan(
        network=problem.network,
        batch=problem.batch,
        graph_sha256=problem.graph_sha256,
        formulation=formulation,
        ratio=ratio,
        fast_limit_bytes=fast_limit if fast_limit is not None else fast.high_water,
        footprint_bytes=problem.footprint_bytes(),
        tensors=tensor_plans,
        moves=moves,
        kernels=choices,
        predicted=Predicted(
            kernel_s=float(sum(kernel_s)),
            sync_move_s=float(sync_s),
            async_move_s=float(async_s),
            async_overlap_s=float(hidden_s),
        ),
        fast_pool_bytes=fast.high_water,
        slow_pool_bytes=slow.high_water,
        solver=solver,
        provenance=problem.provenance,
        profile_path=problem.profile_path,
        machine_fingerprint=problem.machine_fingerprint,
        reductions=notes,
    )
