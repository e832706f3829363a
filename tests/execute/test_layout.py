"""Offsets for plan-less runs never share bytes between live tensors; overlaps are found."""

from __future__ import annotations

import numpy as np
from autotm_execute.layout import Block, assign_offsets, find_overlap, peak_live_bytes
from autotm_schemas.alignment import alignment, padded_size
from hypothesis import given, settings
from hypothesis import strategies as st

blocks_strategy = st.lists(
    st.tuples(st.integers(0, 20_000), st.integers(0, 12), st.integers(0, 6)),
    min_size=1,
    max_size=40,
)


def to_blocks(raw: list[tuple[int, int, int]]) -> list[Block]:
    return [Block(f"t{i}", size, first, first + span) for i, (size, first, span) in enumerate(raw)]


@settings(max_examples=150, deadline=None)
@given(blocks_strategy)
def test_assigned_offsets_never_overlap_and_stay_near_the_peak(
    raw: list[tuple[int, int, int]],
) -> None:
    blocks = to_blocks(raw)
    offsets, pool = assign_offsets(blocks)
    starts = np.array([offsets[b.name] for b in blocks], np.int64)
    sizes = np.array([padded_size(b.nbytes) for b in blocks], np.int64)
    firsts = np.array([b.first for b in blocks], np.int64)
    lasts = np.array([b.last for b in blocks], np.int64)
    assert all(offsets[b.name] % alignment(b.nbytes) == 0 for b in blocks)
    assert find_overlap(starts, starts + sizes, firsts, lasts) is None
    assert int((starts + sizes).max()) == pool
    assert pool >= peak_live_bytes(sizes, firsts, lasts, int(lasts.max()) + 1)


def test_small_tensors_share_pages_and_large_ones_start_on_pages() -> None:
    blocks = [
        Block("big", 5000, 0, 3),
        *(Block(f"s{i}", 100, 0, 3) for i in range(10)),
        Block("page", 4096, 2, 5),
    ]
    offsets, pool = assign_offsets(blocks)
    assert offsets["big"] == 0 and offsets["page"] == 8192  # 5000 bytes occupy two pages
    # the small ones after both, one 128-byte slot each (100 bytes padded to cache lines)
    assert sorted(offsets[f"s{i}"] for i in range(10)) == [12288 + 128 * i for i in range(10)]
    assert pool == 12288 + 10 * 128


def test_find_overlap_names_the_two_blocks() -> None:
    starts = np.array([0, 8192, 4096])
    ends = np.array([4096, 12288, 12288])
    firsts = np.array([0, 2, 5])
    lasts = np.array([3, 6, 9])
    assert set(find_overlap(starts, ends, firsts, lasts) or ()) == {1, 2}
    lasts[1] = 4  # no longer live together
    assert find_overlap(starts, ends, firsts, lasts) is None


def test_empty_blocks_never_overlap() -> None:
    assert (
        find_overlap(np.array([0, 0]), np.array([0, 4]), np.array([0, 0]), np.array([1, 1])) is None
    )


def test_peak_live_bytes() -> None:
    assert peak_live_bytes(np.array([10, 20, 5]), np.array([0, 1, 3]), np.array([1, 2, 3]), 4) == 30
