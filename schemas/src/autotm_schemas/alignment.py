"""Where a tensor may start in a pool: the one alignment rule every tool shares.

Tensors of a page (4 KiB) or more start on a page boundary, so that a pool file on DAX, a NUMA
binding or the 2LM cache's 4 KiB lines never split a page between two tensors' different
fates. Smaller tensors (BatchNormalization statistics, biases, the loss: in a CNN training
graph often half of all tensors) start on a cache line and share pages: giving each its own
page would make thousands of them cost as much fast memory as the activations of a small
network, and change no access's cost.
"""

from __future__ import annotations

PAGE_BYTES = 4096
SMALL_ALIGNMENT = 64  # a cache line


def alignment(nbytes: int) -> int:
    """The alignment a tensor (or scratch buffer) of ``nbytes`` bytes needs in a pool."""
    return PAGE_BYTES if nbytes >= PAGE_BYTES else SMALL_ALIGNMENT


def padded_size(nbytes: int) -> int:
    """Bytes a tensor occupies in a pool: its size rounded up to its own alignment (at least
    one alignment unit, so that zero-byte tensors still get distinct addresses)."""
    unit = alignment(nbytes)
    return max(unit, -(-nbytes // unit) * unit)


def is_aligned(offset: int, nbytes: int) -> bool:
    return offset % alignment(nbytes) == 0
