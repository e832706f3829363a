"""Batch normalization: forward against onnx.reference and onnxruntime (BatchNormInternal),
BatchNormalizationGrad against onnxruntime and finite differences."""

from __future__ import annotations

from typing import Any

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

SHAPES = [(4, 3), (2, 3, 5), (2, 4, 3, 5), (1, 2, 2, 3, 2)]


def bn_inputs(shape: tuple[int, ...], dtype: Any = np.float32, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    c = shape[1]
    return [
        (rng.standard_normal(shape) * 2 + 1).astype(dtype),
        rng.uniform(0.5, 1.5, c).astype(dtype),
        rng.standard_normal(c).astype(dtype),
        rng.standard_normal(c).astype(dtype),
        rng.uniform(0.5, 2.0, c).astype(dtype),
    ]


@pytest.mark.parametrize("shape", SHAPES)
def test_inference_matches_onnx_reference(shape: tuple[int, ...]) -> None:
    inputs = bn_inputs(shape)
    attrs = {"epsilon": 1e-3}
    expected = onnx_reference("BatchNormalization", inputs, [(shape, np.float32)], attrs)[0]
    ours = run_kernel("BatchNormalization", inputs, [(shape, np.float32)], attrs)[0]
    assert_close(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_training_mode_matches_onnx_reference(shape: tuple[int, ...]) -> None:
    inputs = bn_inputs(shape)
    c = shape[1]
    attrs = {"epsilon": 1e-5, "momentum": 0.8, "training_mode": 1}
    outs = [(shape, np.float32), ((c,), np.float32), ((c,), np.float32)]
    expected = onnx_reference("BatchNormalization", inputs, outs, attrs, opset=15)
    ours = run_kernel("BatchNormalization", inputs, outs, attrs)
    for got, want in zip(ours, expected, strict=True):
        assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.oracle
@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_internal_matches_onnxruntime(shape: tuple[int, ...]) -> None:
    inputs = bn_inputs(shape)
    c = shape[1]
    attrs = {"epsilon": 1e-5, "momentum": 0.9}
    outs = [(shape, np.float32)] + [((c,), np.float32)] * 4
    expected = ort_reference("BatchNormInternal", inputs, outs, attrs, MS)
    ours = run_kernel("BatchNormInternal", inputs, outs, attrs, MS)
    for got, want in zip(ours, expected, strict=True):
        assert_close(got, want, rtol=1e-4, atol=1e-5)
    only_y = run_kernel("BatchNormInternal", inputs, [outs[0]], attrs, MS)[0]
    assert_close(only_y, expected[0], rtol=1e-4, atol=1e-5)


@pytest.mark.oracle
@pytest.mark.parametrize("shape", SHAPES)
def test_grad_matches_onnxruntime(shape: tuple[int, ...]) -> None:
    x, scale, bias, mean, var = bn_inputs(shape)
    c = shape[1]
    outs = [(shape, np.float32)] + [((c,), np.float32)] * 4
    _, _, _, saved_mean, saved_inv_std = run_kernel(
        "BatchNormInternal", [x, scale, bias, mean, var], outs, {}, MS
    )
    dy = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    ins = [dy, x, scale, saved_mean, saved_inv_std]
    grads = [(shape, np.float32), ((c,), np.float32), ((c,), np.float32)]
    attrs = {"epsilon": 1e-5}  # unused by the formula, but onnxruntime requires it
    expected = ort_reference("BatchNormalizationGrad", ins, grads, attrs, MS)
    ours = run_kernel("BatchNormalizationGrad", ins, grads, attrs, MS)
    for got, want in zip(ours, expected, strict=True):
        assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(3, 2), (2, 3, 2, 2)])
def test_grad_matches_finite_differences(shape: tuple[int, ...]) -> None:
    x, scale, bias, mean, var = bn_inputs(shape, np.float64, seed=4)
    c = shape[1]
    eps = 1e-5
    outs = [(shape, np.float64)] + [((c,), np.float64)] * 4
    dy = np.random.default_rng(2).standard_normal(shape)

    def y_of(xx: np.ndarray, ss: np.ndarray, bb: np.ndarray) -> np.ndarray:
        got = run_kernel(
            "BatchNormInternal", [xx, ss, bb, mean, var], outs, {"epsilon": eps}, MS, repeat=1
        )
        assert got[0] is not None
        return got[0]

    saved = run_kernel("BatchNormInternal", [x, scale, bias, mean, var], outs, {"epsilon": eps}, MS)
    grads = [(shape, np.float64), ((c,), np.float64), ((c,), np.float64)]
    dx, dscale, dbias = run_kernel(
        "BatchNormalizationGrad", [dy, x, scale, saved[3], saved[4]], grads, {"epsilon": eps}, MS
    )
    assert_close(dx, numeric_gradient(lambda v: y_of(v, scale, bias), x, dy), 1e-5, 1e-6)
    assert_close(dscale, numeric_gradient(lambda v: y_of(x, v, bias), scale, dy), 1e-5, 1e-6)
    assert_close(dbias, numeric_gradient(lambda v: y_of(x, scale, v), bias, dy), 1e-5, 1e-6)
