"""Address assignment: no two buffers alive together share an address (tinygrad's check), and
every buffer starts on its own alignment (pages for large tensors, cache lines for small ones)."""

from __future__ import annotations

import numpy as np
import pytest
from autotm_optimize import addresses
from autotm_optimize.addresses import Buffer, FirstFit
from autotm_schemas.alignment import is_aligned, padded_size
from hypothesis import given, settings
from hypothesis import strategies as st

PAGE = 4096
LINE = 64


@st.composite
def buffer_sets(draw: st.DrawFn) -> list[Buffer]:
    n_nodes = draw(st.integers(1, 30))
    count = draw(st.integers(0, 40))
    out = []
    for _ in range(count):
        start = draw(st.integers(0, n_nodes - 1))
        end = draw(st.integers(start, n_nodes - 1))
        if draw(st.booleans()):
            out.append(Buffer(start, end, draw(st.integers(0, 16)) * PAGE))
        else:  # a tensor of any size, small ones included, sized and aligned as the pools do
            out.append(Buffer.tensor(start, end, draw(st.integers(0, 3 * PAGE))))
    return out


@settings(max_examples=150, deadline=None)
@given(buffer_sets(), st.sampled_from(addresses.STRATEGIES))
def test_greedy_never_overlaps_live_buffers(
    buffers: list[Buffer], strategy: tuple[str, str]
) -> None:
    result = addresses.greedy(buffers, *strategy)
    assert addresses.conflicts(buffers, result.offsets) == []
    assert addresses.misaligned(buffers, result.offsets) == []
    assert result.high_water >= addresses.peak(buffers)
    assert result.high_water == max(
        (int(o) + b.size for o, b in zip(result.offsets, buffers, strict=True)), default=0
    )


@settings(max_examples=40, deadline=None)
@given(buffer_sets())
def test_exact_packing_reaches_a_valid_pool(buffers: list[Buffer]) -> None:
    greedy = addresses.assign(buffers)
    packed = addresses.pack(
        buffers, greedy.high_water, time_limit_s=5, threads=1, hint=greedy.offsets
    )
    assert packed is not None
    assert addresses.conflicts(buffers, packed.offsets) == []
    assert addresses.misaligned(buffers, packed.offsets) == []
    assert addresses.peak(buffers) <= packed.high_water <= greedy.high_water


def test_the_checker_finds_a_clash() -> None:
    buffers = [Buffer(0, 3, 2 * PAGE), Buffer(2, 5, PAGE), Buffer(4, 6, PAGE)]
    assert addresses.conflicts(buffers, [0, PAGE, PAGE]) == [(0, 1), (1, 2)]
    assert addresses.conflicts(buffers, [0, 2 * PAGE, 0]) == []


def test_packing_beats_greedy_fragmentation() -> None:
    # Every greedy strategy leaves a hole here; the exact arrangement reaches the peak.
    buffers = [
        Buffer(0, 3, 3 * PAGE),
        Buffer(3, 4, 3 * PAGE),
        Buffer(3, 4, 2 * PAGE),
        Buffer(4, 4, 2 * PAGE),
        Buffer(4, 4, 2 * PAGE),
        Buffer(0, 2, 2 * PAGE),
    ]
    assert addresses.peak(buffers) == 9 * PAGE
    assert addresses.assign(buffers).high_water == 10 * PAGE
    packed = addresses.pack(buffers, 9 * PAGE, time_limit_s=5, threads=1)
    assert packed is not None and packed.high_water == 9 * PAGE
    assert addresses.conflicts(buffers, packed.offsets) == []
    assert addresses.pack(buffers, 8 * PAGE, time_limit_s=5, threads=1) is None


def test_first_fit_refuses_what_does_not_fit() -> None:
    pool = FirstFit(4 * PAGE)
    assert pool.try_place(Buffer(0, 5, 3 * PAGE)) == 0
    assert pool.try_place(Buffer(2, 3, 2 * PAGE)) is None
    assert pool.try_place(Buffer(6, 7, 4 * PAGE)) == 0
    assert pool.try_place(Buffer(1, 1, PAGE)) == 3 * PAGE


def test_tops_and_live_bytes_by_node() -> None:
    buffers = [Buffer(0, 1, PAGE), Buffer(1, 2, 2 * PAGE)]
    offsets = np.array([0, PAGE])
    assert addresses.top_by_node(buffers, offsets, 3).tolist() == [PAGE, 3 * PAGE, 3 * PAGE]
    assert addresses.live_by_node(buffers, 3).tolist() == [PAGE, 3 * PAGE, 2 * PAGE]


@pytest.mark.parametrize(
    ("nbytes", "size", "align"),
    [
        (0, LINE, LINE),
        (1, LINE, LINE),
        (65, 2 * LINE, LINE),
        (PAGE - 1, PAGE, LINE),
        (PAGE, PAGE, PAGE),
        (PAGE + 1, 2 * PAGE, PAGE),
    ],
)
def test_tensor_buffers_follow_the_shared_alignment_rule(
    nbytes: int, size: int, align: int
) -> None:
    buffer = Buffer.tensor(0, 1, nbytes)
    assert (buffer.size, buffer.align) == (size, align) == (padded_size(nbytes), align)
    assert Buffer.scratch(3, 0).size == 0  # no scratch takes no room


def test_small_tensors_share_a_page() -> None:
    # 64 BatchNormalization statistics of 256 bytes alive together: 4 pages, not 64.
    buffers = [Buffer.tensor(0, 9, 256) for _ in range(64)]
    result = addresses.assign(buffers)
    assert result.high_water == 64 * 256 == addresses.peak(buffers)
    assert addresses.conflicts(buffers, result.offsets) == []


def test_a_page_aligned_buffer_after_small_ones_starts_on_a_page() -> None:
    small = Buffer.tensor(0, 5, 200)  # 256 bytes on a cache line
    large = Buffer.tensor(0, 5, PAGE)
    pool = FirstFit(3 * PAGE)
    assert pool.try_place(small) == 0
    offset = pool.try_place(large)
    assert offset == PAGE and is_aligned(offset, PAGE)
    assert pool.try_place(Buffer.tensor(1, 2, 100)) == 256  # the rest of the first page
    greedy = addresses.greedy([small, large, Buffer.tensor(0, 5, 3000)], "start", "first")
    assert addresses.misaligned([small, large, Buffer.tensor(0, 5, 3000)], greedy.offsets) == []


def test_randomized_restarts_can_reach_a_limit_the_fixed_orders_miss() -> None:
    buffers = [
        Buffer(0, 3, 3 * PAGE),
        Buffer(3, 4, 3 * PAGE),
        Buffer(3, 4, 2 * PAGE),
        Buffer(4, 4, 2 * PAGE),
        Buffer(4, 4, 2 * PAGE),
        Buffer(0, 2, 2 * PAGE),
    ]
    assert addresses.assign(buffers, 9 * PAGE).high_water == 10 * PAGE
    restarted = addresses.assign(buffers, 9 * PAGE, restarts_s=2.0)
    assert restarted.high_water == 9 * PAGE  # stops as soon as one fits
    assert addresses.conflicts(buffers, restarted.offsets) == []


def test_equal_sizes_in_order_of_birth_keep_a_chain_in_two_slots() -> None:
    # A chain of same-sized activations, each alive with its neighbours only (as in a backward
    # pass). Longest first puts both long ones at the bottom, and the middle pair, each
    # overlapping one of them, stacks three high; in order of birth they alternate.
    chain = [Buffer(3, 5, 2 * PAGE), Buffer(7, 9, 2 * PAGE), Buffer(6, 7, 2 * PAGE)]
    chain.append(Buffer(5, 6, 2 * PAGE))
    assert addresses.greedy(chain, "size", "first").high_water == 6 * PAGE
    by_birth = addresses.greedy(chain, "size-start", "first")
    assert by_birth.high_water == 4 * PAGE == addresses.peak(chain)
    assert addresses.assign(chain, 4 * PAGE).high_water == 4 * PAGE  # among the fixed orders


def test_prioritizing_what_overflowed_reaches_a_limit_the_fixed_orders_miss() -> None:
    buffers = [
        Buffer(0, 3, 3 * PAGE),
        Buffer(3, 4, 3 * PAGE),
        Buffer(3, 4, 2 * PAGE),
        Buffer(4, 4, 2 * PAGE),
        Buffer(4, 4, 2 * PAGE),
        Buffer(0, 2, 2 * PAGE),
    ]
    assert addresses.assign(buffers, 9 * PAGE).high_water == 10 * PAGE
    found = addresses.prioritize(buffers, 9 * PAGE, time_limit_s=5.0)
    assert found.high_water == 9 * PAGE and "prioritized" in found.order
    assert addresses.conflicts(buffers, found.offsets) == []
    # Without passes it still answers, with the first greedy order's arrangement.
    assert addresses.prioritize(buffers, 9 * PAGE, 5.0, passes=0).high_water == 10 * PAGE


@settings(max_examples=60, deadline=None)
@given(buffer_sets(), st.integers(0, 20))
def test_prioritize_never_overlaps_and_never_does_worse_than_its_first_pass(
    buffers: list[Buffer], pages: int
) -> None:
    limit = pages * PAGE
    found = addresses.prioritize(buffers, limit, time_limit_s=5.0, passes=8)
    assert addresses.conflicts(buffers, found.offsets) == []
    assert addresses.misaligned(buffers, found.offsets) == []
    assert addresses.peak(buffers) <= found.high_water
    assert found.high_water <= addresses.greedy(buffers, "size", "first").high_water
