"""ReduceSum and ReduceMean against onnx.reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.execute.kernel_refs import assert_close, onnx_reference, run_kernel

X = np.random.default_rng(5).standard_normal((3, 4, 5)).astype(np.float32)


@pytest.mark.parametrize("axes", [None, [0], [1, -1], [0, 1, 2]])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_sum_matches_onnx_reference(axes: list[int] | None, keepdims: int) -> None:
    axes_in = None if axes is None else np.array(axes, np.int64)
    attrs = {"keepdims": keepdims}
    expected = onnx_reference("ReduceSum", [X, axes_in], [((), np.float32)], attrs)[0]
    ours = run_kernel(
        "ReduceSum", [X, axes_in], [(expected.shape, np.float32)], attrs, consts=(1,)
    )[0]
    assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_reduce_sum_noop_with_empty_axes() -> None:
    attrs: dict[str, Any] = {"noop_with_empty_axes": 1}
    expected = onnx_reference("ReduceSum", [X], [((), np.float32)], attrs)[0]
    ours = run_kernel("ReduceSum", [X], [(expected.shape, np.float32)], attrs)[0]
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("axes", [None, [2], [0, 2]])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_mean_matches_onnx_reference(axes: list[int] | None, keepdims: int) -> None:
    attrs: dict[str, Any] = {"keepdims": keepdims}
    if axes is not None:
        attrs["axes"] = axes
    expected = onnx_reference("ReduceMean", [X], [((), np.float32)], attrs)[0]
    ours = run_kernel("ReduceMean", [X], [(expected.shape, np.float32)], attrs)[0]
    assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    if axes is not None:  # opset 18 form: axes as a constant input
        moved = {"keepdims": keepdims}
        as_input = run_kernel(
            "ReduceMean",
            [X, np.array(axes, np.int64)],
            [(expected.shape, np.float32)],
            moved,
            consts=(1,),
        )[0]
        np.testing.assert_array_equal(as_input, ours)
