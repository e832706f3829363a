"""Softmax and LogSoftmax against onnx.reference; their gradients against onnxruntime and
finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from tests.execute.kernel_refs import (
    MS,
    assert_close,
    numeric_gradient,
    onnx_reference,
    ort_reference,
    run_kernel,
)

CASES = [((5,), -1), ((3, 4), -1), ((3, 4), 0), ((2, 3, 4), 1), ((2, 3, 4), -1)]


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize(("shape", "axis"), CASES)
def test_forward_matches_onnx_reference(op: str, shape: tuple[int, ...], axis: int) -> None:
    x = (np.random.default_rng(0).standard_normal(shape) * 5).astype(np.float32)
    expected = onnx_reference(op, [x], [(shape, np.float32)], {"axis": axis})[0]
    ours = run_kernel(op, [x], [(shape, np.float32)], {"axis": axis})[0]
    assert_close(ours, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("grad", "forward"), [("SoftmaxGrad_13", "Softmax"), ("LogSoftmaxGrad_13", "LogSoftmax")]
)
@pytest.mark.parametrize(("shape", "axis"), CASES)
def test_grad_matches_onnxruntime(
    grad: str, forward: str, shape: tuple[int, ...], axis: int
) -> None:
    rng = np.random.default_rng(1)
    x, dy = (
        rng.standard_normal(shape).astype(np.float32),
        rng.standard_normal(shape).astype(np.float32),
    )
    y = run_kernel(forward, [x], [(shape, np.float32)], {"axis": axis})[0]
    assert y is not None
    expected = ort_reference(grad, [dy, y], [(shape, np.float32)], {"axis": axis}, MS)[0]
    ours = run_kernel(grad, [dy, y], [(shape, np.float32)], {"axis": axis}, MS)[0]
    assert_close(ours, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("grad", "forward"), [("SoftmaxGrad_13", "Softmax"), ("LogSoftmaxGrad_13", "LogSoftmax")]
)
def test_grad_matches_finite_differences(grad: str, forward: str) -> None:
    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))

    def f(v: np.ndarray) -> np.ndarray:
        out = run_kernel(forward, [v], [(v.shape, np.float64)], {"axis": 1}, repeat=1)[0]
        assert out is not None
        return out

    ours = run_kernel(grad, [dy, f(x)], [(x.shape, np.float64)], {"axis": 1}, MS)[0]
    assert_close(ours, numeric_gradient(f, x, dy), rtol=1e-6, atol=1e-8)
