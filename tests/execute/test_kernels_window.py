"""Sliding-window geometry: output sizes, auto_pad, taps and counts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from autotm_execute.kernels import BindError
from autotm_execute.kernels.window import window_from_attributes


@pytest.mark.parametrize(
    ("attrs", "size", "pads", "out"),
    [
        ({"kernel_shape": [3]}, 7, ((0,), (0,)), (5,)),
        ({"kernel_shape": [3], "pads": [1, 1], "strides": [2]}, 7, ((1,), (1,)), (4,)),
        ({"kernel_shape": [3], "auto_pad": "SAME_UPPER", "strides": [2]}, 8, ((0,), (1,)), (4,)),
        ({"kernel_shape": [4], "auto_pad": "SAME_LOWER"}, 5, ((2,), (1,)), (5,)),
        ({"kernel_shape": [3], "auto_pad": "VALID", "pads": [5, 5]}, 7, ((0,), (0,)), (5,)),
        ({"kernel_shape": [3], "dilations": [2]}, 7, ((0,), (0,)), (3,)),
    ],
)
def test_output_size_and_pads(
    attrs: dict[str, Any], size: int, pads: Any, out: tuple[int, ...]
) -> None:
    window = window_from_attributes(attrs, (size,))
    assert (window.pads_begin, window.pads_end) == pads
    assert window.out_shape == out


def test_ceil_mode_drops_a_window_starting_in_the_end_padding() -> None:
    assert window_from_attributes(
        {"kernel_shape": [2], "strides": [2]}, (5,), ceil_mode=True
    ).out_shape == (3,)
    assert window_from_attributes(
        {"kernel_shape": [1], "strides": [2]}, (2,), ceil_mode=True
    ).out_shape == (1,)


def test_taps_cover_exactly_the_real_inputs() -> None:
    window = window_from_attributes(
        {"kernel_shape": [3, 2], "pads": [1, 0, 1, 1], "strides": [2, 1]}, (5, 4)
    )
    hits = np.zeros(window.out_shape + window.kernel, int)
    for tap in window.taps:
        if tap.empty:
            continue
        rows = range(*tap.out[0].indices(window.out_shape[0]))
        cols = range(*tap.out[1].indices(window.out_shape[1]))
        in_rows = list(range(*tap.inp[0].indices(5)))
        in_cols = list(range(*tap.inp[1].indices(4)))
        assert len(in_rows) == len(rows) and len(in_cols) == len(cols)
        for r, ir in zip(rows, in_rows, strict=True):
            assert ir == r * 2 - 1 + tap.offset[0]
            for c, ic in zip(cols, in_cols, strict=True):
                assert ic == c + tap.offset[1]
                hits[r, c, tap.offset[0], tap.offset[1]] += 1
    assert hits.max() == 1
    counts = window.counts(include_pad=False)
    np.testing.assert_array_equal(hits.sum(axis=(2, 3)), counts)
    assert window.counts(include_pad=True).max() == 6


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"kernel_shape": [3, 3]}, "expected 1 spatial sizes"),
        ({"kernel_shape": [9]}, "larger than the padded input"),
        ({"kernel_shape": [3], "strides": [0]}, "must be positive"),
        ({"kernel_shape": [3], "auto_pad": "SAME"}, "unknown value 'SAME'"),
    ],
)
def test_refuses_bad_attributes(attrs: dict[str, Any], message: str) -> None:
    with pytest.raises(BindError, match=message):
        window_from_attributes(attrs, (5,))
