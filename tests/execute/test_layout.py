"""Offsets for plan-less runs never share bytes between live tensors; overlaps are found."""

from __future__ import annotations

import numpy as np
from autotm_execute.layout import Block, assign_offsets, find_overlap, peak_live_bytes
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
    sizes = np.array([-(-max(b.nbytes, 1) // 4096) * 4096 for b in blocks], np.int64)
    firsts = np.array([b.first for b in blocks], np.int64)
    lasts = np.array([b.last for b in blocks], np.int64)
    assert (starts % 4096 == 0).all()
    assert find_overlap(starts, starts + sizes, firsts, lasts) is None
    assert int((starts + sizes).max()) == pool
    assert pool >= peak_live_bytes(sizes, firsts, lasts, int(lasts.max()) + 1)


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
