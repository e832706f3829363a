"""Byte offsets for runs without a plan (all-fast, 2lm, unified), and overlap checks for plans.

A run without a plan still needs every tensor at an offset in one pool. Giving each tensor its
own bytes would make the pool the sum of all tensors, several times the footprint; instead
tensors whose lifetimes do not intersect share bytes. The assignment is greedy first-fit by
size: largest tensors first, each at the lowest offset allowed by its alignment that no already
placed tensor with an intersecting lifetime occupies. Alignment and occupied size follow the
rule every tool shares (:mod:`autotm_schemas.alignment`): tensors of a page or more start on a
page and occupy whole pages; smaller ones start on a cache line and occupy whole lines, so the
many small tensors of a training graph (biases, BatchNormalization statistics) share pages
instead of costing one each. Placed last, they fill the gaps the large ones leave. The pool
then comes close to the footprint (the peak of live bytes), which is what the paper's all-fast
baseline uses.

:func:`find_overlap` is the converse check for plans: two blocks of one pool whose node
intervals and byte ranges both intersect (callers pass padded sizes, so a tensor's padding is
as much its own as its bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from autotm_schemas.alignment import alignment, padded_size

from .pools import ALIGNMENT, align_up


@dataclass(frozen=True)
class Block:
    """``nbytes`` bytes live from just before node ``first`` until node ``last`` finishes."""

    name: str
    nbytes: int
    first: int
    last: int


def assign_offsets(blocks: Sequence[Block]) -> tuple[dict[str, int], int]:
    """Aligned offsets such that blocks live at the same node never share (padded) bytes.

    Each block starts at a multiple of ``alignment(nbytes)`` and occupies
    ``padded_size(nbytes)`` bytes. Returns the offsets by name and the pool size (the end of
    the highest padded block; a multiple of 64, of 4096 when a large block ends last).
    """
    order = sorted(range(len(blocks)), key=lambda i: (-blocks[i].nbytes, blocks[i].first, i))
    placed_first = np.empty(len(blocks), np.int64)
    placed_last = np.empty(len(blocks), np.int64)
    placed_start = np.empty(len(blocks), np.int64)
    placed_end = np.empty(len(blocks), np.int64)
    offsets: dict[str, int] = {}
    pool = 0
    for count, i in enumerate(order):
        block = blocks[i]
        size = padded_size(block.nbytes)
        unit = alignment(block.nbytes)
        live = (placed_first[:count] <= block.last) & (placed_last[:count] >= block.first)
        starts = placed_start[:count][live]
        ends = placed_end[:count][live]
        offset = 0
        for index in np.argsort(starts, kind="stable"):
            if starts[index] >= offset + size:
                break  # the gap before this block fits
            offset = max(offset, align_up(int(ends[index]), unit))
        offsets[block.name] = offset
        placed_first[count], placed_last[count] = block.first, block.last
        placed_start[count], placed_end[count] = offset, offset + size
        pool = max(pool, offset + size)
    return offsets, pool


def find_overlap(
    starts: np.ndarray, ends: np.ndarray, firsts: np.ndarray, lasts: np.ndarray
) -> tuple[int, int] | None:
    """Indices of two blocks sharing bytes while both live, or None.

    Byte ranges are ``[start, end)``; node intervals ``[first, last]``. A new overlap can only
    begin where some block begins, so the check looks at the live set at each distinct
    ``first`` and compares neighbours after sorting by start.
    """
    nonempty = ends > starts
    for node in np.unique(firsts[nonempty]):
        live = np.flatnonzero(nonempty & (firsts <= node) & (lasts >= node))
        if len(live) < 2:
            continue
        order = live[np.lexsort((ends[live], starts[live]))]
        reach = np.maximum.accumulate(ends[order])
        clash = np.flatnonzero(starts[order][1:] < reach[:-1])
        if len(clash):
            second = int(order[clash[0] + 1])
            # the earlier block that still reaches past the second one's start
            earlier = order[: clash[0] + 1]
            first = int(earlier[np.flatnonzero(ends[earlier] > starts[second])[0]])
            return first, second
    return None


def peak_live_bytes(nbytes: np.ndarray, firsts: np.ndarray, lasts: np.ndarray, nodes: int) -> int:
    """The most bytes live at any one node (a tier's high-water mark)."""
    if nodes <= 0 or len(nbytes) == 0:
        return 0
    delta = np.zeros(nodes + 1, np.int64)
    np.add.at(delta, np.clip(firsts, 0, nodes), nbytes)
    np.add.at(delta, np.clip(lasts + 1, 0, nodes), -nbytes)
    return int(np.cumsum(delta[:-1]).max())


__all__ = ["ALIGNMENT", "Block", "assign_offsets", "find_overlap", "peak_live_bytes"]
