"""Elementwise kernels against onnx.reference; activation gradients against onnxruntime and
finite differences."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from autotm_execute.kernels import BindError, TensorSpec, lookup
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.execute.kernel_refs import (
    MS,
    assert_close,
    numeric_gradient,
    onnx_reference,
    ort_reference,
    run_kernel,
)

RNG = np.random.default_rng(7)


def sample(shape: tuple[int, ...], dtype: Any = np.float32, scale: float = 3.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize(
    ("op", "attrs"),
    [
        ("Relu", {}),
        ("Neg", {}),
        ("Identity", {}),
        ("Sigmoid", {}),
        ("HardSigmoid", {}),
        ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}),
        ("HardSwish", {}),
    ],
)
@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4)])
def test_unary_matches_onnx_reference(
    op: str, attrs: dict[str, Any], shape: tuple[int, ...]
) -> None:
    x = sample(shape)
    expected = onnx_reference(op, [x], [(shape, np.float32)], attrs)[0]
    ours = run_kernel(op, [x], [(shape, np.float32)], attrs)[0]
    assert_close(ours, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("bounds", [(None, None), (-1.0, None), (None, 0.5), (0.0, 6.0)])
def test_clip_matches_onnx_reference(bounds: tuple[float | None, float | None]) -> None:
    x = sample((3, 5))
    lo, hi = (None if b is None else np.array(b, np.float32) for b in bounds)
    expected = onnx_reference("Clip", [x, lo, hi], [(x.shape, np.float32)])[0]
    ours = run_kernel("Clip", [x, lo, hi], [(x.shape, np.float32)])[0]
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize(
    ("source", "to", "target"),
    [(np.float32, 7, np.int64), (np.bool_, 1, np.float32), (np.float32, 9, np.bool_)],
)
def test_cast_matches_onnx_reference(source: Any, to: int, target: Any) -> None:
    x = (sample((4, 3)) > 0).astype(source) if source is np.bool_ else sample((4, 3))
    expected = onnx_reference("Cast", [x], [(x.shape, target)], {"to": to})[0]
    ours = run_kernel("Cast", [x], [(x.shape, target)], {"to": to})[0]
    np.testing.assert_array_equal(ours, expected)


broadcast_pairs = hnp.mutually_broadcastable_shapes(
    num_shapes=2, min_dims=0, max_dims=4, max_side=4
)


@settings(max_examples=25, deadline=None)
@given(
    broadcast_pairs,
    st.sampled_from(
        ["Add", "Sub", "Mul", "Div", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"]
    ),
)
def test_binary_broadcast_matches_onnx_reference(shapes: Any, op: str) -> None:
    a, b = sample(shapes.input_shapes[0]), sample(shapes.input_shapes[1])
    if op == "Div":
        b = np.where(np.abs(b) < 0.1, np.float32(1), b)
    expected = onnx_reference(op, [a, b], [((), np.float32)])[0]
    ours = run_kernel(op, [a, b], [(expected.shape, expected.dtype)])[0]
    assert_close(ours, expected, rtol=1e-6, atol=0)


def test_and_matches_onnx_reference() -> None:
    a, b = sample((3, 4)) > 0, sample((4,)) > 0
    expected = onnx_reference("And", [a, b], [((), np.bool_)])[0]
    np.testing.assert_array_equal(run_kernel("And", [a, b], [((3, 4), np.bool_)])[0], expected)


@pytest.mark.parametrize("shapes", [[(3, 4)], [(3, 4), (4,)], [(2, 1, 4), (3, 4), (1,)]])
def test_sum_matches_onnx_reference(shapes: list[tuple[int, ...]]) -> None:
    xs = [sample(s) for s in shapes]
    expected = onnx_reference("Sum", xs, [((), np.float32)])[0]
    ours = run_kernel("Sum", xs, [(expected.shape, np.float32)])[0]
    assert_close(ours, expected, rtol=1e-6, atol=1e-6)


def test_binary_refuses_mismatches() -> None:
    f32, f64, i64 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64)
    out = [TensorSpec((3,), f32)]
    with pytest.raises(BindError, match="do not broadcast"):
        lookup("", "Add").bind({}, [TensorSpec((3,), f32), TensorSpec((4,), f32)], out)
    with pytest.raises(BindError, match="differ in dtype"):
        lookup("", "Mul").bind({}, [TensorSpec((3,), f32), TensorSpec((3,), f64)], out)
    with pytest.raises(BindError, match="unsupported dtype int64"):
        lookup("", "Div").bind({}, [TensorSpec((3,), i64), TensorSpec((3,), i64)], out)


@pytest.mark.oracle
@pytest.mark.parametrize(("grad", "forward"), [("ReluGrad", "Relu"), ("SigmoidGrad", "Sigmoid")])
def test_activation_grads_match_onnxruntime(grad: str, forward: str) -> None:
    x, dy = sample((3, 7)), sample((3, 7))
    y = run_kernel(forward, [x], [(x.shape, np.float32)])[0]
    assert y is not None
    expected = ort_reference(grad, [dy, y], [(x.shape, np.float32)], {}, MS)[0]
    ours = run_kernel(grad, [dy, y], [(x.shape, np.float32)], {}, MS)[0]
    assert_close(ours, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("grad", "forward"), [("ReluGrad", "Relu"), ("SigmoidGrad", "Sigmoid")])
def test_activation_grads_match_finite_differences(grad: str, forward: str) -> None:
    x = sample((2, 5), np.float64)
    x[np.abs(x) < 1e-3] = 0.5  # keep away from Relu's kink
    dy = sample((2, 5), np.float64)

    def f(v: np.ndarray) -> np.ndarray:
        out = run_kernel(forward, [v], [(v.shape, np.float64)], repeat=1)[0]
        assert out is not None
        return out

    ours = run_kernel(grad, [dy, f(x)], [(x.shape, np.float64)], {}, MS)[0]
    assert_close(ours, numeric_gradient(f, x, dy), rtol=1e-6, atol=1e-7)


def test_sigmoid_is_finite_at_extremes() -> None:
    x = np.array([-1000.0, -20.0, 0.0, 20.0, 1000.0], np.float32)
    y = run_kernel("Sigmoid", [x], [(x.shape, np.float32)])[0]
    assert_close(y, [0.0, 2.061153622e-9, 0.5, 1.0, 1.0], rtol=0, atol=1e-7)
