"""Gemm and MatMul against onnx.reference over random shapes and attributes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from autotm_execute.kernels import BindError, TensorSpec, lookup
from autotm_execute.kernels.gemm import matmul_shape
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.execute.kernel_refs import assert_close, onnx_reference, run_kernel


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(1, 5),
    st.integers(1, 5),
    st.booleans(),
    st.booleans(),
    st.sampled_from([1.0, 0.5]),
    st.sampled_from([1.0, 0.0, -2.0]),
    st.sampled_from(["none", "full", "row", "column", "scalar"]),
    st.integers(0, 1000),
)
def test_gemm_matches_onnx_reference(
    m: int,
    k: int,
    n: int,
    trans_a: bool,
    trans_b: bool,
    alpha: float,
    beta: float,
    c_kind: str,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    c_shape = {"none": None, "full": (m, n), "row": (n,), "column": (m, 1), "scalar": ()}[c_kind]
    c = None if c_shape is None else rng.standard_normal(c_shape).astype(np.float32)
    attrs = {"transA": int(trans_a), "transB": int(trans_b), "alpha": alpha, "beta": beta}
    expected = onnx_reference("Gemm", [a, b, c], [((m, n), np.float32)], attrs)[0]
    ours = run_kernel("Gemm", [a, b, c], [((m, n), np.float32)], attrs)[0]
    assert_close(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((3, 4), (4, 5)),
        ((4,), (4, 5)),
        ((3, 4), (4,)),
        ((2, 3, 4), (4, 5)),
        ((2, 1, 3, 4), (5, 4, 2)),
    ],
)
def test_matmul_matches_onnx_reference(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(a).astype(np.float32), rng.standard_normal(b).astype(np.float32)
    expected = onnx_reference("MatMul", [x, y], [((), np.float32)])[0]
    assert matmul_shape(a, b) == expected.shape
    ours = run_kernel("MatMul", [x, y], [(expected.shape, np.float32)])[0]
    assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_gemm_scratch_holds_scaled_c_only_when_needed() -> None:
    f32 = np.dtype(np.float32)
    specs: list[Any] = [TensorSpec((2, 3), f32), TensorSpec((3, 4), f32), TensorSpec((2, 4), f32)]
    out = [TensorSpec((2, 4), f32)]
    assert lookup("", "Gemm").bind({}, specs, out).scratch_bytes == 0
    assert lookup("", "Gemm").bind({"beta": 0.5}, specs, out).scratch_bytes == 2 * 4 * 4
    with pytest.raises(BindError, match="inner dimensions differ"):
        lookup("", "Gemm").bind({"transA": 1}, specs, out)
