"""Address assignment: a 4 KiB-aligned offset for every buffer of a pool.

A buffer occupies ``size`` bytes over nodes ``start..end`` (inclusive). Two buffers whose node
ranges intersect must not intersect in address. Finding the smallest pool is dynamic storage
allocation (NP-hard); the greedy planners of TensorFlow Lite and tinygrad do well in practice:
take buffers in some order and put each at the best-fitting gap left by the already-placed
buffers it overlaps in time. We try a few orders and keep the lowest high-water mark.

The lower bound is the peak of live bytes over nodes, which the ILP keeps under the limit; the
gap between the two is fragmentation, which :mod:`autotm_optimize.optimize` removes by re-solving
with tighter per-node limits where the pool overflowed (as the original AutoTM did).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .problem import PAGE

ORDERS = ("size", "area", "start")
# (order, fit) pairs tried in turn; first fit by decreasing size measured best on our plans.
STRATEGIES = (("size", "first"), ("size", "best"), ("area", "first"), ("start", "first"))
PACK_MAX_BUFFERS = 600  # CP-SAT packing finds good arrangements quickly up to about this many


@dataclass(frozen=True)
class Buffer:
    start: int
    end: int
    size: int  # bytes, a multiple of PAGE


@dataclass(frozen=True)
class Assignment:
    offsets: np.ndarray  # int64 by buffer
    high_water: int
    order: str


def _order(buffers: Sequence[Buffer], how: str, seed: int | None = None) -> np.ndarray:
    """Placement order; a ``seed`` jitters sizes by up to 10 % for randomized restarts."""
    start = np.array([b.start for b in buffers], dtype=np.int64)
    end = np.array([b.end for b in buffers], dtype=np.int64)
    size = np.array([b.size for b in buffers], dtype=np.int64)
    if seed is not None:
        jitter = np.random.default_rng(seed).uniform(0.9, 1.1, len(buffers))
        size = (size * jitter).astype(np.int64)
    length = end - start + 1
    if how == "size":
        keys: tuple[np.ndarray, ...] = (start, -length, -size)  # lexsort: last key first
    elif how == "area":
        keys = (start, -size, -(size * length))
    elif how == "start":
        keys = (-size, start)
    else:
        raise ValueError(f"unknown order {how!r}; known: {list(ORDERS)}")
    return np.lexsort(keys)


def _gaps(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Free address ranges [gap_lo, gap_hi) between occupied ranges; the last one is open."""
    order = np.argsort(lo, kind="stable")
    reach = np.maximum.accumulate(hi[order])
    gap_lo = np.concatenate(([0], reach))
    gap_hi = np.concatenate((lo[order], [np.iinfo(np.int64).max]))
    return gap_lo, gap_hi


class FirstFit:
    """A pool that places buffers as they come, at the lowest free address, or refuses.

    This is what a first-touch allocator does (the NUMA baseline): no look-ahead, no moving.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._start: list[int] = []
        self._end: list[int] = []
        self._lo: list[int] = []
        self._hi: list[int] = []

    def place_at(self, buffer: Buffer, offset: int) -> None:
        self._start.append(buffer.start)
        self._end.append(buffer.end)
        self._lo.append(offset)
        self._hi.append(offset + buffer.size)

    def try_place(self, buffer: Buffer) -> int | None:
        offset = 0
        if buffer.size and self._start:
            start = np.asarray(self._start)
            end = np.asarray(self._end)
            mask = (start <= buffer.end) & (end >= buffer.start)
            if mask.any():
                gap_lo, gap_hi = _gaps(np.asarray(self._lo)[mask], np.asarray(self._hi)[mask])
                fits = np.flatnonzero(gap_hi - gap_lo >= buffer.size)
                offset = int(gap_lo[fits[0]])
        if offset + buffer.size > self.capacity:
            return None
        self.place_at(buffer, offset)
        return offset


def greedy(
    buffers: Sequence[Buffer], how: str = "size", fit: str = "first", seed: int | None = None
) -> Assignment:
    """Place buffers in the given order, each at the lowest gap that holds it (``first`` fit)
    or at the smallest one (``best`` fit)."""
    n = len(buffers)
    offsets = np.zeros(n, dtype=np.int64)
    if n == 0:
        return Assignment(offsets, 0, how)
    p_start = np.empty(n, dtype=np.int64)
    p_end = np.empty(n, dtype=np.int64)
    p_lo = np.empty(n, dtype=np.int64)
    p_hi = np.empty(n, dtype=np.int64)
    high = 0
    for placed, i in enumerate(_order(buffers, how, seed)):
        b = buffers[int(i)]
        offset = 0
        if b.size > 0 and placed:
            mask = (p_start[:placed] <= b.end) & (p_end[:placed] >= b.start)
            lo = p_lo[:placed][mask]
            if lo.size:
                gap_lo, gap_hi = _gaps(lo, p_hi[:placed][mask])
                width = gap_hi - gap_lo
                fits = np.flatnonzero(width >= b.size)
                if fit == "first":
                    pick = fits[0]
                else:  # best fit among bounded gaps; the open gap on top is the fallback
                    bounded = fits[fits < len(lo)]
                    pick = bounded[np.argmin(width[bounded])] if bounded.size else fits[-1]
                offset = int(gap_lo[pick])
        offsets[int(i)] = offset
        p_start[placed], p_end[placed] = b.start, b.end
        p_lo[placed], p_hi[placed] = offset, offset + b.size
        high = max(high, offset + b.size)
    return Assignment(offsets, high, f"{how}/{fit}")


def assign(
    buffers: Sequence[Buffer],
    limit: int | None = None,
    strategies: Sequence[tuple[str, str]] = STRATEGIES,
    restarts_s: float = 0.0,
) -> Assignment:
    """The best of several greedy strategies; stops early once one fits ``limit`` or the peak.

    When none fits ``limit``, randomized restarts of the first strategy (sizes jittered) run
    for up to ``restarts_s`` seconds: a near miss is often a matter of order.
    """
    best: Assignment | None = None
    lower = peak(buffers)

    def done() -> bool:
        assert best is not None
        return best.high_water <= lower or (limit is not None and best.high_water <= limit)

    for how, fit in strategies:
        result = greedy(buffers, how, fit)
        if best is None or result.high_water < best.high_water:
            best = result
        if done():
            return best
    assert best is not None
    deadline = time.monotonic() + restarts_s
    seed = 0
    how, fit = strategies[0]
    while limit is not None and time.monotonic() < deadline and not done():
        seed += 1
        result = greedy(buffers, how, fit, seed)
        if result.high_water < best.high_water:
            best = result
    return best


def pack(
    buffers: Sequence[Buffer],
    capacity: int,
    time_limit_s: float = 10.0,
    threads: int = 2,
    hint: np.ndarray | None = None,
) -> Assignment | None:
    """Exact packing under ``capacity`` with CP-SAT's no-overlap-2D (time x address), or None.

    The greedy orders leave gaps a clever arrangement avoids; this is the clever arrangement,
    for when the greedy one does not fit. Returns None when CP-SAT proves it impossible or finds
    nothing within its time limit. The pool is also made as low as CP-SAT finds in that time.
    """
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    cap = capacity // PAGE
    x_intervals = []
    y_intervals = []
    offsets: list[cp_model.IntVar | None] = []
    tops = []
    for i, b in enumerate(buffers):
        size = b.size // PAGE
        if size == 0:
            offsets.append(None)
            continue
        if size > cap:
            return None
        offset = model.new_int_var(0, cap - size, f"offset{i}")
        offsets.append(offset)
        x_intervals.append(model.new_fixed_size_interval_var(b.start, b.end - b.start + 1, f"t{i}"))
        y_intervals.append(model.new_fixed_size_interval_var(offset, size, f"a{i}"))
        tops.append(offset + size)
        if hint is not None and hint[i] // PAGE + size <= cap:
            model.add_hint(offset, int(hint[i] // PAGE))
    model.add_no_overlap_2d(x_intervals, y_intervals)
    high = model.new_int_var(0, cap, "high_water")
    for top in tops:
        model.add(high >= top)
    model.minimize(high)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = max(1, threads)
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    result = np.array(
        [0 if v is None else int(solver.value(v)) * PAGE for v in offsets], dtype=np.int64
    )
    high_water = max(
        (int(o) + b.size for o, b in zip(result, buffers, strict=True) if b.size), default=0
    )
    return Assignment(result, high_water, "cp-sat")


def peak(buffers: Sequence[Buffer]) -> int:
    """Largest sum of sizes alive at one node: no assignment can do better."""
    if not buffers:
        return 0
    last = max(b.end for b in buffers)
    delta = np.zeros(last + 2, dtype=np.int64)
    for b in buffers:
        delta[b.start] += b.size
        delta[b.end + 1] -= b.size
    return int(np.cumsum(delta).max())


def top_by_node(buffers: Sequence[Buffer], offsets: np.ndarray, n_nodes: int) -> np.ndarray:
    """Highest address in use at each node (offset + size of the buffers alive there)."""
    top = np.zeros(n_nodes, dtype=np.int64)
    for b, offset in zip(buffers, offsets, strict=True):
        if b.size:
            np.maximum(top[b.start : b.end + 1], int(offset) + b.size, out=top[b.start : b.end + 1])
    return top


def live_by_node(buffers: Sequence[Buffer], n_nodes: int) -> np.ndarray:
    """Bytes of the buffers alive at each node."""
    delta = np.zeros(n_nodes + 1, dtype=np.int64)
    for b in buffers:
        delta[b.start] += b.size
        delta[b.end + 1] -= b.size
    return np.cumsum(delta[:-1])


def conflicts(
    buffers: Sequence[Buffer], offsets: Sequence[int] | np.ndarray, limit: int = 10
) -> list[tuple[int, int]]:
    """Pairs of buffers that overlap both in time and in address (at most ``limit`` of them)."""
    n = len(buffers)
    if n < 2:
        return []
    start = np.array([b.start for b in buffers], dtype=np.int64)
    end = np.array([b.end for b in buffers], dtype=np.int64)
    lo = np.asarray(offsets, dtype=np.int64)
    hi = lo + np.array([b.size for b in buffers], dtype=np.int64)
    found: list[tuple[int, int]] = []
    for i in range(n - 1):
        j = np.arange(i + 1, n)
        clash = (start[j] <= end[i]) & (end[j] >= start[i]) & (lo[j] < hi[i]) & (hi[j] > lo[i])
        clash &= (hi[j] > lo[j]) & (hi[i] > lo[i])  # empty buffers clash with nothing
        for k in j[clash]:
            found.append((i, int(k)))
            if len(found) >= limit:
                return found
    return found


def aligned(nbytes: int) -> int:
    """Bytes rounded up to the page, the size a buffer takes in its pool."""
    return -(-nbytes // PAGE) * PAGE
