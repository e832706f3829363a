"""An emulated 2LM (Intel Memory Mode) DRAM cache: direct-mapped, 4 KiB lines, write-back.

In Memory Mode the operating system sees only the slow tier; DRAM caches it in hardware. The
cache is direct-mapped: line ``L`` (address // 4096) can live only in set ``L % sets``, so a
line hits exactly when the previous access to its set was to the same line. Misses allocate
(reads and writes alike: write-allocate) and evict the set's previous line, which costs a
write to the slow tier when it was dirty (written since it was filled).

That rule makes the simulation a pure array computation (no per-line Python): sort the
accesses by set, keeping their order inside a set; a *run* is a maximal stretch of accesses to
one line within a set. Every run begins with a miss (or continues the line the cache held on
entry), every other access hits, and a run that contains a write is dirty: it costs a
write-back when the next run of its set evicts it. The state left behind is the last run of
every set; it is passed to the next call as pseudo-accesses so that iterations chain.

The trace of one training iteration: for every kernel, in execution order, a read of each
distinct input tensor's lines, then a write of each output tensor's lines. Real kernels
interleave their reads and writes and touch some lines more than once (blocked GEMM); that
detail is below the resolution of a direct-mapped 4 KiB-line model and is left out.

Networks of hundreds of GB (the paper's large suite) touch some 10^9 lines an iteration, more
than the arrays of a per-line simulation fit in memory. Their trace is then taken in *blocks*
of 2^j lines (:func:`block_lines`), with the cache's sets grouped the same way. Where a tensor
covers whole blocks this is exact: line ``L`` maps to set ``L % sets``, so with ``sets`` a
multiple of the block, the lines of one block fall in the same positions of one block of sets
and all hit or miss together. Only the partial blocks at a tensor's two ends are approximated
(counted as whole), an error of at most two blocks per tensor access against tensors of GB.
The counts are always given in 4 KiB lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LINE_BYTES = 4096
#: Most line accesses simulated per iteration (about 2 GB of working arrays); a longer trace
#: is taken in blocks of lines.
MAX_TRACE_LINES = 1 << 24


@dataclass(frozen=True)
class CacheState:
    """Lines held at the end of a trace: per touched set, the line and its dirty bit."""

    sets: np.ndarray  # int64, ascending
    tags: np.ndarray  # int64
    dirty: np.ndarray  # bool

    @classmethod
    def cold(cls) -> CacheState:
        empty = np.empty(0, np.int64)
        return cls(empty, empty.copy(), np.empty(0, bool))


@dataclass(frozen=True)
class CacheCounts:
    """Per-kernel counts of one trace: accesses are 4 KiB lines."""

    hits: np.ndarray
    misses: np.ndarray
    writebacks: np.ndarray
    miss_streams: np.ndarray  # tensors per kernel with at least one missing line

    def totals(self) -> dict[str, int]:
        return {
            "hits": int(self.hits.sum()),
            "misses": int(self.misses.sum()),
            "writebacks": int(self.writebacks.sum()),
        }


@dataclass(frozen=True)
class Trace:
    """Line accesses in order: line index, write flag, kernel index, stream (tensor access) id."""

    lines: np.ndarray
    writes: np.ndarray
    kernels: np.ndarray
    streams: np.ndarray
    n_kernels: int
    block: int = 1  # 4 KiB lines per traced line (see the module docstring)


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(start, start + length)`` for every pair, without a Python loop."""
    lengths = np.asarray(lengths, np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, np.int64)
    base = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return (
        np.arange(total, dtype=np.int64) - base + np.repeat(np.asarray(starts, np.int64), lengths)
    )


def block_lines(
    accesses: Sequence[tuple[int, int, int, bool]], limit: int = MAX_TRACE_LINES
) -> int:
    """The 4 KiB lines per traced line that keep the trace within ``limit`` accesses: 1, or
    the smallest power of two that does."""
    lines = sum(size // LINE_BYTES + 2 for _, _, size, _ in accesses if size > 0)
    block = 1
    while lines > limit * block:
        block *= 2
    return block


def build_trace(
    accesses: Sequence[tuple[int, int, int, bool]], n_kernels: int, block: int = 1
) -> Trace:
    """A trace from ``(kernel, offset, nbytes, is_write)`` tensor accesses, in order, in
    traced lines of ``block`` 4 KiB lines."""
    line_bytes = LINE_BYTES * block
    if not accesses:
        empty = np.empty(0, np.int64)
        return Trace(empty, np.empty(0, bool), empty.copy(), empty.copy(), n_kernels, block)
    table = np.array(
        [(k, off, size, int(w)) for k, off, size, w in accesses if size > 0], np.int64
    ).reshape(-1, 4)
    first = table[:, 1] // line_bytes
    last = (table[:, 1] + table[:, 2] - 1) // line_bytes
    lengths = last - first + 1
    stream_ids = np.arange(len(table), dtype=np.int64)
    return Trace(
        lines=ranges(first, lengths),
        writes=np.repeat(table[:, 3].astype(bool), lengths),
        kernels=np.repeat(table[:, 0], lengths),
        streams=np.repeat(stream_ids, lengths),
        n_kernels=n_kernels,
        block=block,
    )


def simulate(trace: Trace, n_sets: int, state: CacheState) -> tuple[CacheCounts, CacheState]:
    """Run a trace through a direct-mapped write-back cache of ``n_sets`` lines."""
    if n_sets <= 0:
        raise ValueError("a 2LM cache needs at least one 4 KiB line")
    n = trace.n_kernels
    # The state enters as pseudo-accesses (kernel -1) ahead of the trace.
    sets = np.concatenate([state.sets, trace.lines % n_sets])
    tags = np.concatenate([state.tags, trace.lines // n_sets])
    writes = np.concatenate([state.dirty, trace.writes])
    kernels = np.concatenate([np.full(len(state.sets), -1, np.int64), trace.kernels])
    streams = np.concatenate([np.full(len(state.sets), -1, np.int64), trace.streams])
    if len(sets) == 0:
        zeros = np.zeros(n, np.int64)
        return CacheCounts(zeros, zeros.copy(), zeros.copy(), zeros.copy()), state

    order = np.argsort(sets, kind="stable")
    s, t, w, k, st = sets[order], tags[order], writes[order], kernels[order], streams[order]
    new_set = np.ones(len(s), bool)
    new_set[1:] = s[1:] != s[:-1]
    run_start = new_set.copy()
    run_start[1:] |= t[1:] != t[:-1]
    real = k >= 0

    miss = run_start & real
    hit = ~run_start & real
    starts = np.flatnonzero(run_start)
    run_dirty = np.maximum.reduceat(w.astype(np.uint8), starts).astype(bool)
    # Run j is evicted by run j + 1 when that one begins in the same set.
    evicted = run_dirty[:-1] & ~new_set[starts[1:]]
    evictors = starts[1:][evicted]

    hits = np.bincount(k[hit], minlength=n)
    misses = np.bincount(k[miss], minlength=n)
    writebacks = np.bincount(k[evictors], minlength=n)
    missed_streams = np.unique(st[miss])
    stream_kernel = np.zeros(0, np.int64)
    if len(missed_streams):
        first_of_stream = np.searchsorted(trace.streams, missed_streams)
        stream_kernel = trace.kernels[first_of_stream]
    miss_streams = np.bincount(stream_kernel, minlength=n)

    last_of_set = np.r_[np.flatnonzero(new_set)[1:] - 1, len(s) - 1]
    last_run = np.searchsorted(starts, last_of_set, side="right") - 1
    final = CacheState(
        sets=s[last_of_set].astype(np.int64),
        tags=t[last_of_set].astype(np.int64),
        dirty=run_dirty[last_run],
    )
    counts = CacheCounts(
        hits=hits.astype(np.int64),
        misses=misses.astype(np.int64),
        writebacks=writebacks.astype(np.int64),
        miss_streams=miss_streams.astype(np.int64),
    )
    return counts, final


@dataclass(frozen=True)
class TwoLevelResult:
    """Counts of the first (cold) iteration and of every later (steady) one."""

    n_sets: int  # in 4 KiB lines
    cold: CacheCounts
    steady: CacheCounts
    block: int = 1  # 4 KiB lines per simulated line

    def describe(self) -> dict[str, object]:
        described: dict[str, object] = {
            "policy": "direct-mapped, write-back, write-allocate (emulated Intel Memory Mode)",
            "line_bytes": LINE_BYTES,
            "lines": self.n_sets,
            "size_bytes": self.n_sets * LINE_BYTES,
            "cold_iteration": self.cold.totals(),
            "steady_iteration": self.steady.totals(),
        }
        if self.block > 1:
            described["simulated_in_blocks_of_lines"] = self.block
        return described


def simulate_iterations(trace: Trace, cache_bytes: int) -> TwoLevelResult:
    """Simulate a cold iteration, then one from the state it leaves: the steady state.

    The state after any full iteration holds the iteration's last line of every set it
    touches, so the second iteration's counts repeat for every later one.
    """
    block = trace.block
    n_sets = max(1, int(cache_bytes) // (LINE_BYTES * block))
    cold, state = simulate(trace, n_sets, CacheState.cold())
    steady, _ = simulate(trace, n_sets, state)
    return TwoLevelResult(n_sets * block, in_lines(cold, block), in_lines(steady, block), block)


def in_lines(counts: CacheCounts, block: int) -> CacheCounts:
    """Counts of a blocked trace in 4 KiB lines (tensor counts are not scaled)."""
    if block == 1:
        return counts
    return CacheCounts(
        counts.hits * block, counts.misses * block, counts.writebacks * block, counts.miss_streams
    )
