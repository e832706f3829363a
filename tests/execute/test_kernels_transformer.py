"""The kernels of transformer-style networks: forward ops against onnx.reference, gradient ops
against onnxruntime (com.microsoft) and float64 finite differences, over random shapes."""

from __future__ import annotations

import gzip
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from autotm_execute.kernels import BindError, TensorSpec, lookup
from autotm_execute.kernels import layernorm as layernorm_module
from autotm_execute.kernels.erf import CHUNK, RSQRT_2, erf_f64
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.execute.kernel_refs import (
    MS,
    assert_close,
    numeric_gradient,
    onnx_reference,
    ort_reference,
    poison,
    run_kernel,
)
from tests.execute.test_kernels import onnxruntime_values

F32, F64 = np.float32, np.float64


def normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any = F32) -> np.ndarray:
    return np.asarray(rng.standard_normal(shape) * 2, dtype)


def only(values: list[np.ndarray | None]) -> np.ndarray:
    assert values[0] is not None
    return values[0]


shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5)


# ---- the error function and its users ------------------------------------------------------


def test_erf_is_accurate_to_float64_ulps() -> None:
    tiny = np.geomspace(1e-300, 1e-3, 200)
    xs = np.concatenate([np.linspace(-7, 7, 20001), tiny, -tiny, [0.0, 0.46875, 4.0, -30, 1e300]])
    out = np.empty_like(xs)
    erf_f64(xs, out, np.empty((5, xs.size)), np.empty((2, xs.size), bool))
    exact = np.array([math.erf(v) for v in xs])
    ulps = np.abs(out - exact) / np.spacing(np.abs(exact))
    assert ulps.max() <= 4, f"erf off by {ulps.max()} ulps at {xs[ulps.argmax()]}"
    special = np.array([np.inf, -np.inf, np.nan, -0.0])
    erf_f64(special, out[:4], np.empty((5, 4)), np.empty((2, 4), bool))
    np.testing.assert_array_equal(out[:4], [1.0, -1.0, np.nan, -0.0])


def test_erf_float32_is_the_rounded_exact_value_across_chunks() -> None:
    x = np.random.default_rng(0).standard_normal(2 * CHUNK + 77).astype(F32) * 3
    exact = np.array([math.erf(float(v)) for v in x]).astype(F32)
    np.testing.assert_array_max_ulp(only(run_kernel("Erf", [x], [(x.shape, F32)])), exact, 1)


@settings(max_examples=15, deadline=None)
@given(shapes, st.sampled_from(["Erf", "Exp", "Tanh", "Sqrt", "Reciprocal"]), st.integers(0, 99))
def test_unary_matches_onnx_reference(shape: tuple[int, ...], op: str, seed: int) -> None:
    x = normal(np.random.default_rng(seed), shape)
    if op == "Sqrt":
        x = np.abs(x)
    expected = onnx_reference(op, [x], [(shape, F32)])[0]
    ours = only(run_kernel(op, [x], [(shape, F32)]))
    np.testing.assert_array_max_ulp(ours, expected, 2)


@pytest.mark.oracle
@settings(max_examples=10, deadline=None)
@given(shapes, st.integers(0, 99))
def test_gelu_and_its_gradient_match_onnxruntime(shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, dy = normal(rng, shape), normal(rng, shape)
    x.reshape(-1)[0] = 9.0  # the erfc tail
    y = only(run_kernel("Gelu", [x], [(shape, F32)], domain=MS))
    assert_close(y, ort_reference("Gelu", [x], [(shape, F32)], domain=MS)[0], 1e-6, 1e-6)
    dx = only(run_kernel("GeluGrad", [dy, x], [(shape, F32)], domain=MS))
    expected = ort_reference("GeluGrad", [dy, x], [(shape, F32)], domain=MS)[0]
    assert_close(dx, expected, 1e-5, 1e-6)


def _exact_gelu(v: float) -> float:
    return 0.5 * v * math.erfc(-v * RSQRT_2)


def _exact_gelu_grad(v: float) -> float:
    return 0.5 * math.erfc(-v * RSQRT_2) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi)


def test_gelu_and_its_gradient_are_correctly_rounded_in_float32() -> None:
    """Down the negative tail (where ``1 + erf`` cancels and a float32-rounded argument is
    amplified by erfc), with a NaN in the first chunk (which must not disturb its
    neighbours' |x| > 4 branch) and beyond CHUNK."""
    rng = np.random.default_rng(6)
    x = np.concatenate([[np.nan], rng.standard_normal(CHUNK) * 4, np.linspace(-13, 13, 1001)])
    x = x.astype(F32)
    finite = ~np.isnan(x)
    for op, exact, inputs in (
        ("Gelu", _exact_gelu, [x]),
        ("GeluGrad", _exact_gelu_grad, [np.ones_like(x), x]),
    ):
        ours = only(run_kernel(op, inputs, [(x.shape, F32)], domain=MS))
        assert np.isnan(ours[0])
        want = np.array([exact(float(v)) for v in x[finite]]).astype(F32)
        np.testing.assert_array_equal(ours[finite], want, err_msg=op)


def test_erf_in_float64_ignores_a_nan_in_its_chunk() -> None:
    x = np.array([np.nan, 4.5, -6.0, 5.5, 27.0, -0.3, 1e-310, np.inf], F64)
    ours = only(run_kernel("Erf", [x], [(x.shape, F64)]))
    assert np.isnan(ours[0])
    np.testing.assert_array_max_ulp(ours[1:], np.array([math.erf(v) for v in x[1:]]), 4)


@pytest.mark.parametrize("op", ["Erf", "Gelu", "GeluGrad", "Exp", "Tanh", "Sqrt", "Reciprocal"])
def test_unary_kernels_take_empty_tensors(op: str) -> None:
    x = np.zeros((3, 0, 2), F32)
    inputs = [x, x] if op == "GeluGrad" else [x]
    domain = MS if op.startswith("Gelu") else ""
    assert only(run_kernel(op, inputs, [(x.shape, F32)], domain=domain)).shape == x.shape


def _forward(op: str, domain: str = "") -> Any:
    def f(v: np.ndarray) -> np.ndarray:
        return only(run_kernel(op, [v], [(v.shape, F64)], domain=domain, repeat=1))

    return f


def test_gelu_grad_matches_finite_differences() -> None:
    rng = np.random.default_rng(3)
    x, dy = normal(rng, (3, 7), F64), normal(rng, (3, 7), F64)
    x[0, :3] = [0.0, 5.0, -6.0]
    ours = only(run_kernel("GeluGrad", [dy, x], [(x.shape, F64)], domain=MS))
    assert_close(ours, numeric_gradient(_forward("Gelu", MS), x, dy), 1e-7, 1e-8)


@pytest.mark.oracle
def test_tanh_grad_matches_onnxruntime_and_finite_differences() -> None:
    rng = np.random.default_rng(4)
    x, dy = normal(rng, (4, 6)), normal(rng, (4, 6))
    y = np.tanh(x)
    expected = ort_reference("TanhGrad", [dy, y], [(x.shape, F32)], domain=MS)[0]
    assert_close(only(run_kernel("TanhGrad", [dy, y], [(x.shape, F32)], domain=MS)), expected)
    x64, dy64 = x.astype(F64), dy.astype(F64)
    ours = only(run_kernel("TanhGrad", [dy64, np.tanh(x64)], [(x.shape, F64)], domain=MS))
    assert_close(ours, numeric_gradient(_forward("Tanh"), x64, dy64), 1e-7, 1e-8)


# ---- Pow -----------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(
    hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4),
    st.sampled_from(["variable", "variable int", 2.0, 0.5, 1.0, 3.0, -1.0]),
    st.integers(0, 99),
)
def test_pow_matches_onnx_reference(shapes_: Any, exponent: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.abs(normal(rng, shapes_.input_shapes[0])) + np.float32(0.1)
    if exponent == "variable":
        y = normal(rng, shapes_.input_shapes[1])
    elif exponent == "variable int":
        y = rng.integers(-2, 4, shapes_.input_shapes[1])
    else:
        y = np.array(exponent, F32)
    expected = onnx_reference("Pow", [x, y], [((), F32)])[0]
    for consts in [(), (1,)]:
        ours = only(run_kernel("Pow", [x, y], [(expected.shape, F32)], consts=consts))
        assert_close(ours, expected, rtol=2e-6, atol=0)


def test_pow_of_two_is_the_exact_square() -> None:
    x = normal(np.random.default_rng(5), (50,))
    ours = only(run_kernel("Pow", [x, np.array(2, np.int64)], [(x.shape, F32)], consts=(1,)))
    np.testing.assert_array_equal(ours, x * x)


@settings(max_examples=20, deadline=None)
@given(
    hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=5, max_side=3),
    st.integers(0, 99),
)
def test_pow_broadcasts_up_to_rank_five(shapes_: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.abs(normal(rng, shapes_.input_shapes[0], F64)) + 0.1
    y = normal(rng, shapes_.input_shapes[1], F64)
    ours = only(run_kernel("Pow", [x, y], [(shapes_.result_shape, F64)]))
    np.testing.assert_array_equal(ours, np.power(x, y))


@pytest.mark.parametrize(
    "exponent",
    [np.array(-1.7), np.array(1 / 3), np.array(3, np.int64), np.array([0.5], F32), np.array(1.5)],
    ids=["-1.7", "1/3", "int 3", "float32 0.5", "1.5"],
)
def test_pow_with_a_constant_exponent_is_the_variable_result(exponent: np.ndarray) -> None:
    """Bit for bit as with the exponent read at run time and as onnx.reference: the exponent
    is not rounded to X's type (x ** -1.7 was 4 ulps off) and the power is computed in the
    type numpy promotes X and Y to."""
    x = np.abs(normal(np.random.default_rng(7), (300,))) * 30 + np.float32(0.01)
    expected = onnx_reference("Pow", [x, exponent], [(x.shape, F32)])[0]
    for consts in [(), (1,)]:
        ours = only(run_kernel("Pow", [x, exponent], [(x.shape, F32)], consts=consts))
        np.testing.assert_array_equal(ours, expected)


# ---- LayerNormalization and its gradient ----------------------------------------------------


@st.composite
def layer_norm_cases(draw: Any) -> tuple[tuple[int, ...], int, bool]:
    shape = draw(shapes)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    return shape, axis, draw(st.booleans())


@settings(max_examples=20, deadline=None)
@given(layer_norm_cases(), st.sampled_from([1e-5, 1e-2]), st.integers(0, 99))
def test_layer_norm_matches_onnx_reference(
    case: tuple[tuple[int, ...], int, bool], eps: float, seed: int
) -> None:
    shape, axis, with_bias = case
    rng = np.random.default_rng(seed)
    norm = shape[axis:]
    x, scale = normal(rng, shape), normal(rng, norm)
    bias = normal(rng, norm[1:]) if with_bias else None  # ONNX broadcasts Scale and B
    stat = (*shape[: axis % len(shape)], *[1] * (len(shape) - axis % len(shape)))
    outs = [(shape, F32), (stat, F32), (stat, F32)]
    attrs = {"axis": axis, "epsilon": eps}
    expected = onnx_reference("LayerNormalization", [x, scale, bias], outs, attrs)
    ours = run_kernel("LayerNormalization", [x, scale, bias], outs, attrs)
    for got, want in zip(ours, expected, strict=True):
        assert_close(got, want, 1e-5, 1e-5)
    y_only = run_kernel("LayerNormalization", [x, scale, bias], [(shape, F32)], attrs)
    np.testing.assert_array_equal(only(y_only), only(ours))


def _layer_norm(
    x: np.ndarray, scale: np.ndarray, bias: np.ndarray, axis: int, dtype: Any = F32
) -> list[Any]:
    rank = len(x.shape)
    stat = (*x.shape[: axis % rank], *[1] * (rank - axis % rank))
    stash = 11 if dtype == F64 else 1
    outs = [(x.shape, dtype), (stat, dtype), (stat, dtype)]
    return run_kernel(
        "LayerNormalization", [x, scale, bias], outs, {"axis": axis, "stash_type": stash}
    )


@pytest.mark.oracle
@settings(max_examples=15, deadline=None)
@given(layer_norm_cases(), st.integers(0, 99), st.sampled_from([1 << 20, 64]))
def test_layer_norm_grad_matches_onnxruntime(
    case: tuple[tuple[int, ...], int, bool], seed: int, cap: int
) -> None:
    """Also with a tiny chunk cap, so that the rows are processed in several chunks."""
    shape, axis, with_bias = case
    assume(math.prod(shape[axis:]) > 1)  # onnxruntime refuses to normalize single elements
    rng = np.random.default_rng(seed)
    norm = shape[axis:]
    x, dy, scale, bias = (
        normal(rng, shape),
        normal(rng, shape),
        normal(rng, norm),
        normal(rng, norm),
    )
    _, mean, inv_std = _layer_norm(x, scale, bias, axis)
    inputs = [dy, x, scale, mean, inv_std]
    outs: list[Any] = [(shape, F32), (norm, F32), (norm, F32)]  # onnxruntime needs all three
    expected = ort_reference("LayerNormalizationGrad", inputs, outs, {"axis": axis}, MS)
    if not with_bias:  # ours may leave dBias out
        outs, expected = [*outs[:2], None], expected[:2]
    saved = layernorm_module.ROWS_CAP
    layernorm_module.ROWS_CAP = cap
    try:
        ours = run_kernel("LayerNormalizationGrad", inputs, outs, {"axis": axis}, MS)
    finally:
        layernorm_module.ROWS_CAP = saved
    for got, want in zip([o for o in ours if o is not None], expected, strict=True):
        tol = 1e-5 * float(np.abs(want).max(initial=1))
        assert_close(got, want, 1e-4, tol)


def test_layer_norm_grad_matches_finite_differences() -> None:
    rng = np.random.default_rng(8)
    shape, axis = (3, 2, 4), 1
    x, dy = normal(rng, shape, F64), normal(rng, shape, F64)
    scale, bias = normal(rng, (2, 4), F64), normal(rng, (2, 4), F64)
    _, mean, inv_std = _layer_norm(x, scale, bias, axis, F64)
    outs = [(shape, F64), ((2, 4), F64), ((2, 4), F64)]
    dx, dscale, dbias = run_kernel(
        "LayerNormalizationGrad", [dy, x, scale, mean, inv_std], outs, {"axis": axis}, MS
    )
    assert_close(dx, numeric_gradient(lambda v: _layer_norm(v, scale, bias, axis, F64)[0], x, dy))
    for got, wrt in ((dscale, scale), (dbias, bias)):

        def f(v: np.ndarray, wrt: np.ndarray = wrt) -> np.ndarray:
            args = [v if w is wrt else w for w in (scale, bias)]
            return _layer_norm(x, args[0], args[1], axis, F64)[0]

        assert_close(got, numeric_gradient(f, wrt, dy), 1e-6, 1e-7)


@pytest.mark.parametrize(
    ("shape", "axis"),
    [((3, 4, 5), 0), ((4, 3, 1), -1), ((4, 3, 1), 2), ((5, 1), 1), ((1,), 0), ((6,), 0)],
)
def test_layer_norm_edges_match_onnx_reference_and_finite_differences(
    shape: tuple[int, ...], axis: int
) -> None:
    """axis 0 (one row), a normalized size of 1 (Y = B, dX = 0) and 1-D inputs."""
    rng = np.random.default_rng(9)
    ax = axis % len(shape)
    norm, stat = shape[ax:], (*shape[:ax], *[1] * (len(shape) - ax))
    x, dy = normal(rng, shape, F64), normal(rng, shape, F64)
    scale, bias = normal(rng, norm, F64), normal(rng, norm, F64)
    x32, scale32, bias32 = x.astype(F32), scale.astype(F32), bias.astype(F32)
    outs = [(shape, F32), (stat, F32), (stat, F32)]
    expected = onnx_reference("LayerNormalization", [x32, scale32, bias32], outs, {"axis": axis})
    ours = run_kernel("LayerNormalization", [x32, scale32, bias32], outs, {"axis": axis})
    for got, want in zip(ours, expected, strict=True):
        assert_close(got, want, 1e-5, 1e-5)
    _, mean, inv_std = _layer_norm(x, scale, bias, axis, F64)
    grads = run_kernel(
        "LayerNormalizationGrad",
        [dy, x, scale, mean, inv_std],
        [(shape, F64), (norm, F64), (norm, F64)],
        {"axis": axis},
        MS,
    )
    for got, wrt in zip(grads, (x, scale, bias), strict=True):

        def f(v: np.ndarray, wrt: np.ndarray = wrt) -> np.ndarray:
            args = [v if w is wrt else w for w in (x, scale, bias)]
            return _layer_norm(args[0], args[1], args[2], axis, F64)[0]

        assert_close(got, numeric_gradient(f, wrt, dy), 1e-6, 1e-7)


def test_layer_norm_of_float64_with_float32_statistics() -> None:
    """stash_type 1 on a float64 X: statistics computed in float64, written as float32."""
    rng = np.random.default_rng(10)
    x, scale, bias = normal(rng, (4, 6), F64), normal(rng, (6,), F64), normal(rng, (6,), F64)
    outs = [((4, 6), F64), ((4, 1), F32), ((4, 1), F32)]
    y, mean, inv_std = run_kernel("LayerNormalization", [x, scale, bias], outs)
    expected = onnx_reference("LayerNormalization", [x, scale, bias], outs)  # all float64
    assert_close(y, expected[0], 1e-12, 1e-12)
    assert mean is not None and inv_std is not None and mean.dtype == inv_std.dtype == F32
    np.testing.assert_array_equal(mean, expected[1].astype(F32))
    np.testing.assert_array_max_ulp(inv_std, expected[2].astype(F32), 1)


def test_layer_norm_and_its_gradient_take_zero_rows() -> None:
    """A batch of none: every output written (dScale and dBias are sums over no rows: 0)."""
    x, vector, stats = np.zeros((0, 3, 5), F32), np.ones(5, F32), np.zeros((0, 3, 1), F32)
    y = run_kernel(
        "LayerNormalization", [x, vector, vector], [(x.shape, F32)] + [(stats.shape, F32)] * 2
    )
    assert [v.shape for v in y if v is not None] == [x.shape, stats.shape, stats.shape]
    dx, dscale, dbias = run_kernel(
        "LayerNormalizationGrad",
        [x, x, vector, stats, stats],
        [(x.shape, F32), ((5,), F32), ((5,), F32)],
        domain=MS,
    )
    assert dx is not None and dx.shape == x.shape
    np.testing.assert_array_equal(dscale, np.zeros(5, F32))
    np.testing.assert_array_equal(dbias, np.zeros(5, F32))


def test_layer_norm_grad_scratch_is_one_chunk_of_rows() -> None:
    f32 = np.dtype(F32)
    x = TensorSpec((4096, 768), f32)  # 12 MiB: 341 rows of 3 KiB fit the 1 MiB cap
    vector, stats = TensorSpec((768,), f32), TensorSpec((4096, 1), f32)
    kernel = lookup(MS, "LayerNormalizationGrad").bind(
        {}, [x, x, vector, stats, stats], [x, vector, vector]
    )
    assert kernel.scratch_bytes == (1 << 20) // (768 * 4) * 768 * 4


def test_layer_norm_refuses_mismatches() -> None:
    f32 = np.dtype(F32)
    x = TensorSpec((2, 3, 4), f32)
    with pytest.raises(BindError, match="broadcasting to the normalized shape"):
        lookup("", "LayerNormalization").bind({"axis": 1}, [x, TensorSpec((4, 3), f32)], [x])
    with pytest.raises(BindError, match="stash_type"):
        lookup("", "LayerNormalization").bind({"stash_type": 7}, [x, TensorSpec((4,), f32)], [x])


# ---- MatMul with batches on both sides; Gather and GatherGrad -------------------------------


@st.composite
def matmul_shapes(draw: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2))
    m, k, n = (draw(st.integers(1, 5)) for _ in range(3))
    return (*batch.input_shapes[0], m, k), (*batch.input_shapes[1], k, n)


@settings(max_examples=25, deadline=None)
@given(matmul_shapes(), st.integers(0, 99))
def test_batched_matmul_matches_onnx_reference(
    case: tuple[tuple[int, ...], tuple[int, ...]], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    a, b = normal(rng, case[0]), normal(rng, case[1])
    expected = onnx_reference("MatMul", [a, b], [((), F32)])[0]
    assert_close(only(run_kernel("MatMul", [a, b], [(expected.shape, F32)])), expected)


def test_attention_matmul_is_exact_against_numpy() -> None:
    rng = np.random.default_rng(1)
    q, k = normal(rng, (2, 3, 5, 4)), normal(rng, (2, 3, 4, 5))
    np.testing.assert_array_equal(only(run_kernel("MatMul", [q, k], [((2, 3, 5, 5), F32)])), q @ k)


@st.composite
def matmul_any_shapes(draw: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Ranks 1 to 5 on either side, batch axes of size 1 broadcasting from either side."""
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3))
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    a: tuple[int, ...] = (*batch.input_shapes[0], m, k)
    b: tuple[int, ...] = (*batch.input_shapes[1], k, n)
    if draw(st.booleans()):
        a = (k,)
    elif draw(st.booleans()):
        b = (k,)
    return a, b


@settings(max_examples=30, deadline=None)
@given(matmul_any_shapes(), st.integers(0, 99))
def test_matmul_of_any_ranks_matches_numpy_in_float64(
    case: tuple[tuple[int, ...], tuple[int, ...]], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    a, b = normal(rng, case[0], F64), normal(rng, case[1], F64)
    expected = np.matmul(a, b)
    assert_close(only(run_kernel("MatMul", [a, b], [(expected.shape, F64)])), expected, 1e-12)


@pytest.mark.parametrize(
    ("a", "b"), [((2, 3, 0), (0, 4)), ((2, 3, 0), (2, 0, 4)), ((0, 3, 2), (2, 4)), ((3, 0), (0,))]
)
def test_matmul_with_an_empty_axis(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    """An empty inner axis gives zeros (the sum of nothing), an empty outer one nothing."""
    x, y = np.ones(a, F32), np.ones(b, F32)
    expected = np.matmul(x, y)
    np.testing.assert_array_equal(
        only(run_kernel("MatMul", [x, y], [(expected.shape, F32)])), expected
    )


@st.composite
def gather_cases(draw: Any) -> tuple[tuple[int, ...], int, np.ndarray]:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    size = shape[axis]
    index_shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=4))
    indices = draw(hnp.arrays(np.int64, index_shape, elements=st.integers(-size, size - 1)))
    return shape, axis, indices


@settings(max_examples=20, deadline=None)
@given(gather_cases(), st.integers(0, 99))
def test_gather_matches_onnx_reference(case: Any, seed: int) -> None:
    shape, axis, indices = case
    x = normal(np.random.default_rng(seed), shape)
    expected = onnx_reference("Gather", [x, indices], [((), F32)], {"axis": axis})[0]
    for consts in [(), (1,)]:
        ours = run_kernel(
            "Gather", [x, indices], [(expected.shape, F32)], {"axis": axis}, consts=consts
        )
        np.testing.assert_array_equal(only(ours), expected)


def _gather_grad(
    dy: np.ndarray, shape: tuple[int, ...], indices: np.ndarray, axis: int, consts: Any
) -> np.ndarray:
    inputs = [np.array(shape, np.int64), indices, dy]
    return only(
        run_kernel("GatherGrad", inputs, [(shape, dy.dtype)], {"axis": axis}, MS, consts=consts)
    )


@pytest.mark.oracle
@settings(max_examples=20, deadline=None)
@given(gather_cases(), st.integers(0, 99))
def test_gather_grad_matches_onnxruntime_and_is_gathers_adjoint(case: Any, seed: int) -> None:
    """Against onnxruntime (bit for bit: both sum repeats in index order), and the adjoint
    identity ``<Gather(x), dY> == <x, GatherGrad(dY)>`` in float64 (Gather is linear, so this
    is what finite differences would check, exactly)."""
    shape, axis, indices = case
    rng = np.random.default_rng(seed)
    out_shape = (*shape[: axis % len(shape)], *indices.shape, *shape[axis % len(shape) + 1 :])
    dy = normal(rng, out_shape)
    inputs = [np.array(shape, np.int64), indices, dy]
    expected = ort_reference("GatherGrad", inputs, [(shape, F32)], {"axis": axis}, MS)[0]
    for consts in [(0, 1), ()]:  # indices known at bind time (layers), or only at run time
        np.testing.assert_array_equal(_gather_grad(dy, shape, indices, axis, consts), expected)
    x, dy64 = normal(rng, shape, F64), dy.astype(F64)
    gathered = np.take(x, indices, axis=axis)
    assert math.isclose(
        float(np.sum(gathered * dy64)),
        float(np.sum(x * _gather_grad(dy64, shape, indices, axis, (0, 1)))),
        rel_tol=1e-12,
        abs_tol=1e-12,
    )


@pytest.mark.parametrize("consts", [(0, 1), (0,)], ids=["layers", "run-time indices"])
def test_gather_grad_sums_repeats_in_index_order(consts: tuple[int, ...]) -> None:
    """Bit for bit the float32 sum taken position by position, as onnxruntime does: values
    of very different magnitudes make any other order visible. Also with 0-d indices."""
    rng = np.random.default_rng(11)
    indices = np.array([3, 1, 3, 3, 0, -3, 3, 1, 3, 3, 3], np.int64)
    dy = normal(rng, (2, indices.size, 3)) * np.float32(10.0) ** rng.integers(-6, 7, (1, 11, 1))
    dy = dy.astype(F32)
    expected = np.zeros((2, 4, 3), F32)
    for position, index in enumerate(indices):
        expected[:, index % 4] += dy[:, position]
    np.testing.assert_array_equal(_gather_grad(dy, (2, 4, 3), indices, 1, consts), expected)
    scalar = np.array(-1, np.int64)
    expected0 = np.zeros((2, 4, 3), F32)
    expected0[:, 3] = dy[:, 0]
    np.testing.assert_array_equal(_gather_grad(dy[:, 0], (2, 4, 3), scalar, 1, consts), expected0)
    empty = _gather_grad(np.zeros((2, 0, 3), F32), (2, 4, 3), np.zeros(0, np.int64), 1, consts)
    np.testing.assert_array_equal(empty, np.zeros((2, 4, 3), F32))


def test_gather_grad_scratch_holds_the_largest_layer() -> None:
    f32, i64 = np.dtype(F32), np.dtype(np.int64)
    shape = TensorSpec((3,), i64, np.array([2, 5, 4], np.int64))
    dx = TensorSpec((2, 5, 4), f32)

    def bind(indices: list[int]) -> Any:
        idx = TensorSpec((len(indices),), i64, np.array(indices, np.int64))
        dy = TensorSpec((2, len(indices), 4), f32)
        return lookup(MS, "GatherGrad").bind({"axis": 1}, [shape, idx, dy], [dx])

    assert bind([0, 4, 2]).scratch_bytes == 0
    assert bind([1, 1, -4, 3, 3, 2]).scratch_bytes == 2 * 3 * 4 * 4  # layer 0: 1, 3, 2
    with pytest.raises(BindError, match="out of range"):
        bind([5])


# ---- Pad ------------------------------------------------------------------------------------


@st.composite
def pad_cases(draw: Any) -> tuple[tuple[int, ...], str, list[int], list[int] | None]:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    mode = draw(st.sampled_from(["constant", "reflect", "edge", "wrap"]))
    axes = draw(st.none() | st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True))
    padded = axes if axes is not None else list(range(len(shape)))
    limit = {"constant": 3, "reflect": None, "edge": 3, "wrap": None}[mode]
    pads = []
    for _ in range(2):
        for axis in padded:
            top = limit if limit is not None else shape[axis] - (mode == "reflect")
            pads.append(draw(st.integers(0, top)))
    return shape, mode, pads, axes


@settings(max_examples=30, deadline=None)
@given(pad_cases(), st.integers(0, 99))
def test_pad_matches_onnx_reference(case: Any, seed: int) -> None:
    shape, mode, pads, axes = case
    x = normal(np.random.default_rng(seed), shape)
    inputs: list[Any] = [x, np.array(pads, np.int64)]
    inputs.append(np.array(-1.5, F32) if mode == "constant" else None)
    if axes is not None:
        inputs.append(np.array(axes, np.int64))
    expected = onnx_reference("Pad", inputs, [((), F32)], {"mode": mode}, opset=19)[0]
    for consts in [(1, 2, 3), (1, 3)]:  # constant_value known at bind time, or read at run time
        ours = run_kernel("Pad", inputs, [(expected.shape, F32)], {"mode": mode}, consts=consts)
        np.testing.assert_array_equal(only(ours), expected)


def _crop_pad(x: np.ndarray, begin: list[int], end: list[int], value: float) -> np.ndarray:
    """ONNX constant Pad with negative pads: pad the positive ones, then crop the others."""
    big = np.pad(
        x, [(max(0, b), max(0, e)) for b, e in zip(begin, end, strict=True)], constant_values=value
    )
    crop = [
        slice(max(0, -b), n - max(0, -e)) for n, b, e in zip(big.shape, begin, end, strict=True)
    ]
    return big[tuple(crop)]


@st.composite
def crop_pad_cases(draw: Any) -> tuple[tuple[int, ...], list[int], list[int]]:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4))
    begin = [draw(st.integers(-n, 3)) for n in shape]
    end = [
        draw(st.integers(-(n + b) if n + b > 0 else 0, 3))
        for n, b in zip(shape, begin, strict=True)
    ]
    return shape, begin, end


@settings(max_examples=40, deadline=None)
@given(crop_pad_cases(), st.integers(0, 99))
def test_pad_crops_and_pads_on_the_same_axes(case: Any, seed: int) -> None:
    """Negative and positive pads mixed, on one axis or several, crops past the data (a pad
    then a larger crop), empty inputs and outputs; the value constant or read at run time."""
    shape, begin, end = case
    x = normal(np.random.default_rng(seed), shape, F64)
    expected = _crop_pad(x, begin, end, -1.5)
    inputs = [x, np.array(begin + end, np.int64), np.array(-1.5, F64)]
    for consts in [(1, 2), (1,)]:
        ours = run_kernel(
            "Pad", inputs, [(expected.shape, F64)], {"mode": "constant"}, consts=consts
        )
        np.testing.assert_array_equal(only(ours), expected)


@pytest.mark.oracle
def test_pad_with_negative_pads_crops_as_onnxruntime() -> None:
    x = normal(np.random.default_rng(2), (2, 3, 4, 5))
    pads = np.array([0, -1, 2, -1, 1, 0, -2, 3], np.int64)
    expected = ort_reference("Pad", [x, pads], [((3, 2, 4, 7), F32)], {"mode": "constant"})[0]
    ours = run_kernel("Pad", [x, pads], [((3, 2, 4, 7), F32)], {"mode": "constant"}, consts=(1,))
    np.testing.assert_array_equal(only(ours), expected)


def test_pad_refuses_what_it_cannot_do() -> None:
    f32, i64 = np.dtype(F32), np.dtype(np.int64)
    x = TensorSpec((3, 4), f32)

    def bind(pads: list[int], mode: str) -> Any:
        spec = TensorSpec((len(pads),), i64, np.array(pads, np.int64))
        return lookup("", "Pad").bind({"mode": mode}, [x, spec], [x])

    with pytest.raises(BindError, match="negative pads"):
        bind([0, -1, 0, 0], "reflect")
    with pytest.raises(BindError, match="exceed"):
        bind([3, 0, 0, 0], "reflect")
    with pytest.raises(BindError, match="mode"):
        bind([0, 0, 0, 0], "mirror")
    with pytest.raises(BindError, match="must be a constant"):
        lookup("", "Pad").bind({}, [x, TensorSpec((4,), i64)], [x])


# ---- real transformer training graphs ------------------------------------------------------

TORCHVISION = Path(__file__).parents[1] / "graph" / "data" / "torchvision"
RANDOM = {"Bernoulli", "RandomUniformLike"}  # draws of their own: range checked only
DROPOUT = "Dropout"  # its own mask (tests/execute/test_kernels_dropout.py checks it)


@pytest.mark.oracle
@pytest.mark.parametrize(
    "name",
    ["vit_dynamo_train.onnx", "convnext_torchscript_train.onnx", "swin_torchscript_train.onnx.gz"],
)
def test_torchvision_training_graph_nodes_match_onnxruntime(name: str, tmp_path: Path) -> None:
    """Every node of the training iteration autotm-graph builds from a small torchvision
    transformer (tests/graph/data/torchvision), run by our kernel on onnxruntime's inputs,
    gives onnxruntime's outputs (random nodes and Dropout draw their own: not compared)."""
    from autotm_execute.kernels import bind_node
    from autotm_graph.cli import main as graph_main
    from autotm_graph.ir import load_graph
    from autotm_graph.weights import example_inputs, parameter_values

    source = TORCHVISION / name
    if not source.exists():
        pytest.skip(f"{source} is not there")
    if name.endswith(".gz"):
        source = tmp_path / name.removesuffix(".gz")
        source.write_bytes(gzip.decompress((TORCHVISION / name).read_bytes()))
    out = tmp_path / "train.onnx"
    if graph_main(["train", str(source), "--batch", "2", "-o", str(out)]) != 0:
        pytest.skip(f"autotm-graph train cannot build {name} yet (its own tests say why)")
    graph = load_graph(out)
    feeds = {**parameter_values(graph), **example_inputs(graph, seed=1)}
    theirs = {n: graph.initializer(n) for n in graph.initializer_names} | feeds
    theirs |= onnxruntime_values(graph, feeds)
    ops = set()
    for node in graph.nodes:
        kernel = bind_node(graph, node, seed=3)
        outputs = [
            poison(graph.tensors[n].shape, graph.tensors[n].dtype) if n else None
            for n in node.outputs
        ]
        scratch = np.empty(kernel.scratch_bytes, np.uint8) if kernel.scratch_bytes else None
        kernel.run(np, [theirs[n] if n else None for n in node.inputs], outputs, scratch)
        ops.add(node.op_type)
        for out_name, ours in zip(node.outputs, outputs, strict=True):
            if not out_name or ours is None:
                continue
            if node.op_type in RANDOM:
                assert not np.isnan(ours).any() and ours.min() >= 0 and ours.max() <= 1
                continue
            if node.op_type == DROPOUT:
                continue
            want = theirs[out_name]
            tol = 1e-3 * float(np.abs(want).max(initial=0)) + 1e-5  # as the zoo test's
            np.testing.assert_allclose(
                ours, want, rtol=0, atol=tol, err_msg=f"{node.name} {out_name}"
            )
    assert {"LayerNormalization", "LayerNormalizationGrad", "Gelu", "GeluGrad"} <= ops
