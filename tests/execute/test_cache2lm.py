"""The emulated 2LM cache: golden traces and agreement with a per-access reference."""

from __future__ import annotations

import numpy as np
import pytest
from autotm_execute.cache2lm import (
    LINE_BYTES,
    CacheState,
    Trace,
    block_lines,
    build_trace,
    ranges,
    simulate,
    simulate_iterations,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def trace(lines: list[int], writes: list[bool], kernels: list[int], n_kernels: int) -> Trace:
    n = len(lines)
    return Trace(
        np.array(lines, np.int64),
        np.array(writes, bool),
        np.array(kernels, np.int64),
        np.arange(n, dtype=np.int64),
        n_kernels,
    )


def reference(t: Trace, n_sets: int, state: CacheState) -> tuple[list[int], list[int], list[int]]:
    """One access at a time, as the hardware would."""
    tag = dict(zip(state.sets.tolist(), state.tags.tolist(), strict=True))
    dirty = dict(zip(state.sets.tolist(), state.dirty.tolist(), strict=True))
    hits, misses, wbs = [0] * t.n_kernels, [0] * t.n_kernels, [0] * t.n_kernels
    for line, write, kernel in zip(
        t.lines.tolist(), t.writes.tolist(), t.kernels.tolist(), strict=True
    ):
        s, g = line % n_sets, line // n_sets
        if tag.get(s) == g:
            hits[kernel] += 1
            dirty[s] = dirty[s] or write
        else:
            misses[kernel] += 1
            if dirty.get(s):
                wbs[kernel] += 1
            tag[s], dirty[s] = g, write
    return hits, misses, wbs


def test_golden_two_sets() -> None:
    # sets = 2: lines 0, 2, 4 share set 0; lines 1, 3 share set 1.
    t = trace(
        lines=[0, 1, 0, 2, 0, 3, 1, 1],
        writes=[True, False, False, False, False, True, False, False],
        kernels=[0, 0, 0, 1, 1, 1, 2, 2],
        n_kernels=3,
    )
    counts, state = simulate(t, 2, CacheState.cold())
    # k0: miss 0 (dirty), miss 1, hit 0
    # k1: miss 2 evicts dirty 0 (wb), miss 0 evicts clean 2, miss 3 evicts clean 1 (3 dirty)
    # k2: miss 1 evicts dirty 3 (wb), hit 1
    assert counts.hits.tolist() == [1, 0, 1]
    assert counts.misses.tolist() == [2, 3, 1]
    assert counts.writebacks.tolist() == [0, 1, 1]
    assert dict(zip(state.sets.tolist(), state.tags.tolist(), strict=True)) == {0: 0, 1: 0}
    assert state.dirty.tolist() == [False, False]


def test_golden_warm_state_carries_lines_and_dirt() -> None:
    t = trace([0, 5], [True, False], [0, 0], 1)
    _, state = simulate(t, 4, CacheState.cold())
    again, _ = simulate(t, 4, state)
    assert again.hits.tolist() == [2] and again.misses.tolist() == [0]
    evict = trace([4], [False], [0], 1)  # line 4 maps to set 0, where dirty line 0 sits
    counts, _ = simulate(evict, 4, state)
    assert counts.misses.tolist() == [1] and counts.writebacks.tolist() == [1]


def test_a_cache_holding_everything_misses_only_when_cold() -> None:
    accesses = [(0, 0, 3 * LINE_BYTES, False), (1, 3 * LINE_BYTES, LINE_BYTES, True)]
    result = simulate_iterations(build_trace(accesses, 2), cache_bytes=16 * LINE_BYTES)
    assert result.cold.totals() == {"hits": 0, "misses": 4, "writebacks": 0}
    assert result.steady.totals() == {"hits": 4, "misses": 0, "writebacks": 0}
    assert result.describe()["lines"] == 16


def test_a_cache_of_one_line_thrashes() -> None:
    accesses = [(0, 0, 2 * LINE_BYTES, True)]
    result = simulate_iterations(build_trace(accesses, 1), cache_bytes=LINE_BYTES)
    assert result.steady.totals() == {"hits": 0, "misses": 2, "writebacks": 2}


def test_build_trace_expands_byte_ranges_into_lines() -> None:
    t = build_trace([(0, 4096, 1, False), (1, 8000, 5000, True), (1, 0, 0, True)], 2)
    assert t.lines.tolist() == [1, 1, 2, 3]
    assert t.writes.tolist() == [False, True, True, True]
    assert t.kernels.tolist() == [0, 1, 1, 1]
    assert t.streams.tolist() == [0, 1, 1, 1]


def test_ranges() -> None:
    assert ranges(np.array([5, 0, 9]), np.array([2, 0, 3])).tolist() == [5, 6, 9, 10, 11]


def test_no_sets_is_an_error() -> None:
    with pytest.raises(ValueError):
        simulate(trace([0], [False], [0], 1), 0, CacheState.cold())


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 30), st.booleans(), st.integers(0, 3)), min_size=0, max_size=80
    ),
    n_sets=st.integers(1, 9),
)
def test_agrees_with_the_reference_cold_and_warm(
    data: list[tuple[int, bool, int]], n_sets: int
) -> None:
    data = sorted(data, key=lambda d: d[2])  # kernels run in order
    t = trace([d[0] for d in data], [d[1] for d in data], [d[2] for d in data], 4)
    counts, state = simulate(t, n_sets, CacheState.cold())
    assert (counts.hits.tolist(), counts.misses.tolist(), counts.writebacks.tolist()) == reference(
        t, n_sets, CacheState.cold()
    )
    warm, _ = simulate(t, n_sets, state)
    assert (warm.hits.tolist(), warm.misses.tolist(), warm.writebacks.tolist()) == reference(
        t, n_sets, state
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(1, 12), st.booleans()),
        min_size=1,
        max_size=25,
    ),
    st.sampled_from([2, 4, 8]),
    st.integers(1, 6),
)
def test_blocked_trace_is_exact_for_tensors_of_whole_blocks(
    raw: list[tuple[int, int, int, bool]], block: int, cache_blocks: int
) -> None:
    """Tensors covering whole blocks of lines: a trace in blocks counts what the per-line
    one does (in 4 KiB lines), for a cache of whole blocks."""
    unit = block * LINE_BYTES
    accesses = sorted(((k, off * unit, n * unit, w) for k, off, n, w in raw), key=lambda a: a[0])
    cache = cache_blocks * unit
    exact = simulate_iterations(build_trace(accesses, 4), cache)
    blocked = simulate_iterations(build_trace(accesses, 4, block), cache)
    assert blocked.n_sets == exact.n_sets
    for mine, reference in ((blocked.cold, exact.cold), (blocked.steady, exact.steady)):
        np.testing.assert_array_equal(mine.hits, reference.hits)
        np.testing.assert_array_equal(mine.misses, reference.misses)
        np.testing.assert_array_equal(mine.writebacks, reference.writebacks)
        np.testing.assert_array_equal(mine.miss_streams, reference.miss_streams)
    assert blocked.describe()["simulated_in_blocks_of_lines"] == block


def test_block_lines_keeps_the_trace_within_its_limit() -> None:
    small = [(0, 0, 10 * LINE_BYTES, False)]
    assert block_lines(small) == 1
    huge = [(k, k * (1 << 40), 1 << 40, bool(k % 2)) for k in range(600)]  # 600 TiB of accesses
    block = block_lines(huge, limit=1 << 24)
    lines = sum(size // LINE_BYTES + 2 for _, _, size, _ in huge)
    assert block & (block - 1) == 0  # a power of two
    assert lines <= (1 << 24) * block < 2 * lines
