"""Address assignment: an aligned offset for every buffer of a pool.

A buffer occupies ``size`` bytes over nodes ``start..end`` (inclusive) and starts at a multiple
of its ``align`` (:mod:`autotm_schemas.alignment`: a page for tensors of a page or more, a cache
line for smaller ones, so that small tensors share pages). Two buffers whose node ranges
intersect must not intersect in address. Finding the smallest pool is dynamic storage allocation
(NP-hard); the greedy planners of TensorFlow Lite and tinygrad do well in practice: take buffers
in some order and put each at the first (or best) fitting gap left by the already-placed buffers
it overlaps in time. We try a few orders, then randomized ones, and keep the lowest high-water
mark; when none fits a limit, :func:`prioritize` reorders the buffers that ended above it to the
front and places again (a "squeaky wheel" search), and CP-SAT's no-overlap-2D (time x address)
searches for an arrangement that does.

The lower bound is the peak of live bytes over nodes, which the ILP keeps under the limit; the
gap between the two is fragmentation, which :mod:`autotm_optimize.optimize` removes by re-solving
with tighter per-node limits where the pool overflowed (as the original AutoTM did).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from autotm_schemas.alignment import PAGE_BYTES, SMALL_ALIGNMENT, alignment

from .problem import scratch_pool_bytes, tensor_pool_bytes

ORDERS = ("size", "size-start", "area", "start", "long")
# (order, fit) pairs tried in turn, most often best first (on plans of the mini networks:
# first fit by decreasing size, then by decreasing area, came within a few percent of the
# peak where the others, best fit included, left 5 to 30 % of the pool in holes). Equal sizes
# in order of birth (size-start) keep a chain of same-sized short-lived activations (the
# backward pass of an Inception block at batch 1024: 1.3 GiB each) alternating between two
# slots; taken longest first, they stack up three high.
STRATEGIES = (
    ("size", "first"),
    ("size-start", "first"),
    ("area", "first"),
    ("size", "best"),
    ("area", "best"),
    ("long", "best"),
    ("start", "first"),
)
RESTART_STRATEGIES = (("size", "first"), ("area", "first"), ("size", "best"))
PRIORITY_ORDERS = ("size", "size-start")  # the chains :func:`prioritize` starts from
PRIORITY_PASSES = 60  # greedy passes of one prioritize search at most
# A chain that has not lowered its own high-water mark in this many passes is dropped: on
# Inception v4 at batch 1024 the successful chains improved at least every 4th pass (the
# overflowing buffers first stack elsewhere, then settle), while on the mini networks' plans,
# which greedy misses by 1 to 3 %, no pass ever beat the first.
STALL_PASSES = 4
SMALL_SCAN = 48  # up to this many overlapping buffers, gaps are found in plain Python
PACK_MAX_BUFFERS = 4000  # beyond this CP-SAT's no-overlap-2D is too slow to be worth starting
LINE = SMALL_ALIGNMENT


@dataclass(frozen=True)
class Buffer:
    start: int
    end: int
    size: int  # bytes it occupies in the pool, a multiple of align
    align: int = PAGE_BYTES  # its offset is a multiple of this

    @staticmethod
    def tensor(start: int, end: int, nbytes: int) -> Buffer:
        """A tensor of ``nbytes`` over nodes start..end, sized and aligned as the pools are."""
        return Buffer(start, end, tensor_pool_bytes(nbytes), alignment(nbytes))

    @staticmethod
    def scratch(node: int, nbytes: int) -> Buffer:
        """A kernel's scratch at one node (empty when the kernel needs none)."""
        return Buffer(node, node, scratch_pool_bytes(nbytes), alignment(nbytes))


@dataclass(frozen=True)
class Assignment:
    offsets: np.ndarray  # int64 by buffer
    high_water: int
    order: str


def _align_up(offset: np.ndarray, align: int) -> np.ndarray:
    return np.asarray(-(-offset // align) * align)


def _arrays(buffers: Sequence[Buffer]) -> tuple[np.ndarray, ...]:
    start = np.fromiter((b.start for b in buffers), dtype=np.int64, count=len(buffers))
    end = np.fromiter((b.end for b in buffers), dtype=np.int64, count=len(buffers))
    size = np.fromiter((b.size for b in buffers), dtype=np.int64, count=len(buffers))
    align = np.fromiter((b.align for b in buffers), dtype=np.int64, count=len(buffers))
    return start, end, size, align


def _order(buffers: Sequence[Buffer], how: str, seed: int | None = None) -> np.ndarray:
    """Placement order; a ``seed`` jitters the sort keys by up to 15 % for randomized restarts."""
    start, end, size, _ = _arrays(buffers)
    length = end - start + 1
    if seed is not None:
        rng = np.random.default_rng(seed)
        size = (size * rng.uniform(0.85, 1.15, len(buffers))).astype(np.int64)
        length = (length * rng.uniform(0.85, 1.15, len(buffers))).astype(np.int64)
    if how == "size":
        keys: tuple[np.ndarray, ...] = (start, -length, -size)  # lexsort: last key first
    elif how == "size-start":
        keys = (-length, start, -size)
    elif how == "area":
        keys = (start, -size, -(size * length))
    elif how == "start":
        keys = (-size, start)
    elif how == "long":
        keys = (start, -size, -length)
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


def _pick(lo: np.ndarray, hi: np.ndarray, size: int, align: int, fit: str) -> int:
    """Offset for a buffer among occupied ranges [lo, hi): first or best fitting gap."""
    if not lo.size:
        return 0
    if lo.size <= SMALL_SCAN:
        return _pick_scan(sorted(zip(lo.tolist(), hi.tolist(), strict=True)), size, align, fit)
    gap_lo, gap_hi = _gaps(lo, hi)
    begin = _align_up(gap_lo, align)
    room = gap_hi - begin
    fits = np.flatnonzero(room >= size)
    if fit == "first":
        return int(begin[fits[0]])
    bounded = fits[fits < len(lo)]  # best fit among bounded gaps; the open top is the fallback
    if bounded.size:
        return int(begin[bounded[np.argmin(room[bounded])]])
    return int(begin[fits[-1]])


def _pick_scan(ranges: list[tuple[int, int]], size: int, align: int, fit: str) -> int:
    """:func:`_pick` over a few occupied ranges sorted by start, in plain Python (numpy's
    per-call cost dominates for the handful of buffers a tensor usually overlaps)."""
    reach = 0
    best = -1
    best_room = 0
    for lo, hi in ranges:
        begin = -(-reach // align) * align
        room = lo - begin
        if room >= size:
            if fit == "first":
                return begin
            if best < 0 or room < best_room:
                best, best_room = begin, room
        if hi > reach:
            reach = hi
    if best >= 0:
        return best
    return -(-reach // align) * align


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
            offset = _pick(
                np.asarray(self._lo)[mask],
                np.asarray(self._hi)[mask],
                buffer.size,
                buffer.align,
                "first",
            )
        if offset + buffer.size > self.capacity:
            return None
        self.place_at(buffer, offset)
        return offset


def greedy(
    buffers: Sequence[Buffer], how: str = "size", fit: str = "best", seed: int | None = None
) -> Assignment:
    """Place buffers in the given order, each at the lowest gap that holds it (``first`` fit)
    or at the tightest one (``best`` fit)."""
    label = f"{how}/{fit}" + ("" if seed is None else f"#{seed}")
    if not buffers:
        return Assignment(np.zeros(0, dtype=np.int64), 0, label)
    offsets, high = _place(buffers, _order(buffers, how, seed), fit)
    return Assignment(offsets, high, label)


def _place(buffers: Sequence[Buffer], order: np.ndarray, fit: str) -> tuple[np.ndarray, int]:
    """Offsets and high-water mark of placing ``buffers`` one by one in ``order``."""
    n = len(buffers)
    offsets = np.zeros(n, dtype=np.int64)
    start, end, size, align = _arrays(buffers)
    p_start = np.empty(n, dtype=np.int64)
    p_end = np.empty(n, dtype=np.int64)
    p_lo = np.empty(n, dtype=np.int64)
    p_hi = np.empty(n, dtype=np.int64)
    placed = 0
    high = 0
    for i in order:
        b_size = int(size[i])
        if b_size == 0:
            continue
        b_start, b_end = start[i], end[i]
        mask = (p_start[:placed] <= b_end) & (p_end[:placed] >= b_start)
        offset = _pick(p_lo[:placed][mask], p_hi[:placed][mask], b_size, int(align[i]), fit)
        offsets[i] = offset
        p_start[placed], p_end[placed] = b_start, b_end
        p_lo[placed], p_hi[placed] = offset, offset + b_size
        placed += 1
        high = max(high, offset + b_size)
    return offsets, high


def prioritize(
    buffers: Sequence[Buffer],
    limit: int,
    time_limit_s: float,
    passes: int = PRIORITY_PASSES,
    orders: Sequence[str] = PRIORITY_ORDERS,
) -> Assignment:
    """An arrangement under ``limit`` by reordering, or the lowest one found.

    Squeaky-wheel search: place by first fit in an order; the buffers that end above the limit
    go to the front of the order (keeping their relative order), and the whole pool is placed
    again, so that what overflowed is placed first next time and the rest fills around it.
    One chain per starting order, taking turns, for at most ``passes`` placements or
    ``time_limit_s`` seconds; it stops at the first arrangement that fits, and drops a chain
    that has not improved in ``STALL_PASSES`` passes.

    Where the greedy orders overflow far above the peak, the overflow is usually local: on the
    Inception v4 plans at batch 1024 a few nodes of the backward pass, where a chain of 1.3 to
    2 GiB short-lived activations stacked three high above long-lived ones. A few passes bring
    such a pool down to its peak of live bytes, where randomized orders stay 10 % above.
    """
    deadline = time.monotonic() + time_limit_s
    lower = peak(buffers)
    size = np.fromiter((b.size for b in buffers), dtype=np.int64, count=len(buffers))
    # Each chain: its order (changed in place), its own best high-water mark, passes since.
    chains = [
        (how, [int(i) for i in _order(buffers, how)], [np.iinfo(np.int64).max, 0]) for how in orders
    ]
    best: Assignment | None = None
    step = 0
    while chains and step < passes:
        if best is not None and best.high_water <= max(limit, lower):
            break
        if step and time.monotonic() >= deadline:
            break
        how, order, progress = chains[step % len(chains)]
        offsets, high = _place(buffers, np.asarray(order, dtype=np.int64), "first")
        if best is None or high < best.high_water:
            best = Assignment(offsets, high, f"{how}/prioritized#{step}")
        progress[:] = [high, 0] if high < progress[0] else [progress[0], progress[1] + 1]
        step += 1
        if progress[1] >= STALL_PASSES:  # no better in a while: this chain is cycling
            chains = [c for c in chains if c[1] is not order]
            continue
        above = offsets + size > limit
        order[:] = [i for i in order if above[i]] + [i for i in order if not above[i]]
    if best is None:
        return greedy(buffers, orders[0] if orders else "size", "first")
    return best


def assign(
    buffers: Sequence[Buffer],
    limit: int | None = None,
    strategies: Sequence[tuple[str, str]] = STRATEGIES,
    restarts_s: float = 0.0,
) -> Assignment:
    """The best of several greedy strategies; stops early once one fits ``limit`` or the peak.

    When none fits ``limit``, randomized restarts of the strongest strategies (sort keys
    jittered) run for up to ``restarts_s`` seconds: a near miss is often a matter of order.
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
    while limit is not None and time.monotonic() < deadline and not done():
        how, fit = RESTART_STRATEGIES[seed % len(RESTART_STRATEGIES)]
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
    """An arrangement under ``capacity`` by CP-SAT's no-overlap-2D (time x address), or None.

    The greedy orders leave gaps a clever arrangement avoids; this is the search for one, for
    when no greedy order fits. Addresses are counted in cache lines; a page-aligned buffer's
    offset is a page count times 64 lines. It stops at the first arrangement that fits (a
    feasibility search, no objective); None when CP-SAT proves none exists or finds none within
    its time limit.
    """
    from ortools.sat.python import cp_model  # imported here: it costs a second to load

    model = cp_model.CpModel()
    cap = capacity // LINE
    x_intervals = []
    y_intervals = []
    offsets: list[tuple[cp_model.IntVar, int] | None] = []
    for i, b in enumerate(buffers):
        size = b.size // LINE
        if size == 0:
            offsets.append(None)
            continue
        if size > cap:
            return None
        step = max(1, b.align // LINE)
        var = model.new_int_var(0, (cap - size) // step, f"offset{i}")
        offsets.append((var, step))
        x_intervals.append(model.new_fixed_size_interval_var(b.start, b.end - b.start + 1, f"t{i}"))
        y_intervals.append(model.new_fixed_size_interval_var(var * step, size, f"a{i}"))
        if hint is not None and int(hint[i]) + b.size <= capacity:
            model.add_hint(var, int(hint[i]) // (step * LINE))
    model.add_no_overlap_2d(x_intervals, y_intervals)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.1, time_limit_s)
    solver.parameters.num_workers = max(1, threads)
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    result = np.array(
        [0 if v is None else int(solver.value(v[0])) * v[1] * LINE for v in offsets],
        dtype=np.int64,
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
    return int(live_by_node(buffers, last + 1).max())


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
    start, end, size, _ = _arrays(buffers)
    lo = np.asarray(offsets, dtype=np.int64)
    hi = lo + size
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


def misaligned(buffers: Sequence[Buffer], offsets: Sequence[int] | np.ndarray) -> list[int]:
    """Buffers whose offset is not a multiple of their alignment."""
    return [
        i
        for i, (b, o) in enumerate(zip(buffers, offsets, strict=True))
        if b.size and int(o) % b.align
    ]
