from __future__ import annotations

import pytest
from autotm_schemas.alignment import PAGE_BYTES, alignment, is_aligned, padded_size


@pytest.mark.parametrize(
    ("nbytes", "align", "padded"),
    [
        (0, 64, 64),
        (4, 64, 64),
        (64, 64, 64),
        (65, 64, 128),
        (4095, 64, 4096),
        (4096, 4096, 4096),
        (4097, 4096, 8192),
    ],
)
def test_small_tensors_share_pages_large_ones_do_not(nbytes: int, align: int, padded: int) -> None:
    assert alignment(nbytes) == align
    assert padded_size(nbytes) == padded
    assert padded_size(nbytes) % align == 0


def test_is_aligned() -> None:
    assert is_aligned(128, 100)
    assert not is_aligned(128, PAGE_BYTES)
    assert is_aligned(2 * PAGE_BYTES, PAGE_BYTES + 1)
