"""Pooling kernels: forward against onnx.reference and onnxruntime (Indices), gradients
against onnxruntime and finite differences."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from autotm_execute.kernels import TensorSpec, lookup
from autotm_execute.kernels.window import window_from_attributes
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.execute.kernel_refs import (
    assert_close,
    numeric_gradient,
    onnx_reference,
    ort_reference,
    run_kernel,
)


@st.composite
def pool_cases(
    draw: Any,
    max_rank: int = 2,
    dilated: bool = True,
    ceil: bool = True,
    symmetric: bool = False,
    min_rank: int = 1,
    padded: bool = True,
) -> dict[str, Any]:
    rank = draw(st.integers(min_rank, max_rank))
    kernel = [draw(st.integers(1, 3)) for _ in range(rank)]
    strides = [draw(st.integers(1, 3)) for _ in range(rank)]
    dilations = [draw(st.integers(1, 2)) if dilated else 1 for _ in range(rank)]
    pads = [draw(st.integers(0, k - 1)) if padded else 0 for k in kernel]
    pads += pads if symmetric else [draw(st.integers(0, k - 1)) for k in kernel]
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    spatial = [
        draw(st.integers(max(1, s - pads[i] - pads[i + rank]), 7)) for i, s in enumerate(spans)
    ]
    attrs: dict[str, Any] = {"kernel_shape": kernel, "strides": strides, "pads": pads}
    if dilated:
        attrs["dilations"] = dilations
    if ceil and draw(st.booleans()):
        attrs["ceil_mode"] = 1
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((draw(st.integers(1, 2)), draw(st.integers(1, 3)), *spatial))
    return {"x": x.astype(np.float32), "attrs": attrs, "rng": rng}


def pooled_shape(x: np.ndarray, attrs: dict[str, Any]) -> tuple[int, ...]:
    window = window_from_attributes(attrs, x.shape[2:], ceil_mode=bool(attrs.get("ceil_mode")))
    return (*x.shape[:2], *window.out_shape)


@pytest.mark.oracle
@settings(max_examples=80, deadline=None)
@given(pool_cases())
def test_maxpool_matches_onnxruntime_with_indices(case: dict[str, Any]) -> None:
    x, attrs = case["x"], case["attrs"]
    y_shape = pooled_shape(x, attrs)
    outs = [(y_shape, np.float32), (y_shape, np.int64)]
    y_ort, idx_ort = ort_reference("MaxPool", [x], outs, attrs)
    # onnxruntime keeps a ceil_mode window that starts in the end padding (and fills it with
    # -FLT_MAX); ONNX and we drop it. Compare where the shapes agree.
    assume(y_ort.shape == y_shape)
    # With dilation a window can lie entirely in padding: onnxruntime gives -FLT_MAX and index
    # -1 there, we give -inf; both are meaningless, so such cases are not compared.
    assume(not np.any(idx_ort < 0))
    y, idx = run_kernel("MaxPool", [x], outs, attrs)
    np.testing.assert_array_equal(y, y_ort)
    np.testing.assert_array_equal(idx, idx_ort)
    y_only = run_kernel("MaxPool", [x], [outs[0], None], attrs)[0]
    np.testing.assert_array_equal(y_only, y_ort)


@settings(max_examples=40, deadline=None)
@given(pool_cases(dilated=False, ceil=False, symmetric=True, min_rank=2, padded=False))
def test_maxpool_matches_onnx_reference(case: dict[str, Any]) -> None:
    # onnx.reference's pooling is wrong for 1-D and 3-D windows, pads and some ceil_mode
    # cases (wrong windows or an IndexError): compared on unpadded 2-D windows only;
    # onnxruntime is the reference for the rest.
    x, attrs = case["x"], case["attrs"]
    expected = onnx_reference("MaxPool", [x], [((), np.float32)], attrs)[0]
    ours = run_kernel("MaxPool", [x], [(expected.shape, np.float32)], attrs)[0]
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.oracle
@settings(max_examples=60, deadline=None)
@given(pool_cases(), st.booleans())
def test_maxpool_grad_matches_onnxruntime(case: dict[str, Any], with_window: bool) -> None:
    x, attrs = case["x"], case["attrs"]
    y_shape = pooled_shape(x, attrs)
    outs = [(y_shape, np.float32), (y_shape, np.int64)]
    _, idx_ort = ort_reference("MaxPool", [x], outs, attrs)
    assume(idx_ort.shape == y_shape and not np.any(idx_ort < 0))  # as for MaxPool above
    _, idx = run_kernel("MaxPool", [x], outs, attrs)
    assert idx is not None
    dy = case["rng"].standard_normal(y_shape).astype(np.float32)
    grad_attrs = attrs if with_window else {}
    expected = ort_reference("MaxPoolGrad", [dy, idx], [(x.shape, np.float32)], grad_attrs)[0]
    ours = run_kernel("MaxPoolGrad", [dy, idx], [(x.shape, np.float32)], grad_attrs)[0]
    assert_close(ours, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.oracle
@settings(max_examples=80, deadline=None)
@given(pool_cases(max_rank=3, dilated=False), st.booleans())
def test_averagepool_matches_onnxruntime(case: dict[str, Any], include_pad: bool) -> None:
    x, attrs = case["x"], {**case["attrs"], "count_include_pad": int(include_pad)}
    # A ceil_mode window reaching past the end padding: onnxruntime divides by the whole
    # kernel, ONNX (onnx.reference, PyTorch, we) by the part inside input and padding.
    assume(not (include_pad and attrs.get("ceil_mode")))
    y_shape = pooled_shape(x, attrs)
    expected = ort_reference("AveragePool", [x], [(y_shape, np.float32)], attrs)[0]
    assume(expected.shape == y_shape)  # see test_maxpool_matches_onnxruntime_with_indices
    ours = run_kernel("AveragePool", [x], [(y_shape, np.float32)], attrs)[0]
    assert_close(ours, expected, rtol=1e-5, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    pool_cases(dilated=False, ceil=False, symmetric=True, min_rank=2, padded=False), st.booleans()
)
def test_averagepool_matches_onnx_reference(case: dict[str, Any], include_pad: bool) -> None:
    x, attrs = case["x"], {**case["attrs"], "count_include_pad": int(include_pad)}
    expected = onnx_reference("AveragePool", [x], [((), np.float32)], attrs)[0]
    ours = run_kernel("AveragePool", [x], [(expected.shape, np.float32)], attrs)[0]
    assert_close(ours, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.oracle
@settings(max_examples=60, deadline=None)
@given(pool_cases(dilated=False, ceil=False), st.booleans())
def test_averagepool_grad_matches_onnxruntime(case: dict[str, Any], include_pad: bool) -> None:
    x, attrs = case["x"], {**case["attrs"], "count_include_pad": int(include_pad)}
    y = onnx_reference("AveragePool", [x], [((), np.float32)], attrs)[0]
    dy = case["rng"].standard_normal(y.shape).astype(np.float32)
    expected = ort_reference("AveragePoolGrad", [dy], [(x.shape, np.float32)], attrs)[0]
    ours = run_kernel("AveragePoolGrad", [dy], [(x.shape, np.float32)], attrs)[0]
    assert_close(ours, expected, rtol=1e-5, atol=1e-6)


@settings(max_examples=10, deadline=None)
@given(pool_cases(dilated=False), st.booleans())
def test_averagepool_grad_is_the_adjoint(case: dict[str, Any], include_pad: bool) -> None:
    x, attrs = (
        case["x"].astype(np.float64),
        {**case["attrs"], "count_include_pad": int(include_pad)},
    )
    y_shape = onnx_reference("AveragePool", [x], [((), np.float64)], attrs)[0].shape
    dy = case["rng"].standard_normal(y_shape)

    def f(v: np.ndarray) -> np.ndarray:
        out = run_kernel("AveragePool", [v], [(y_shape, np.float64)], attrs, repeat=1)[0]
        assert out is not None
        return out

    ours = run_kernel("AveragePoolGrad", [dy], [(x.shape, np.float64)], attrs)[0]
    assert_close(ours, numeric_gradient(f, x, dy), rtol=1e-6, atol=1e-8)


def test_maxpool_grad_matches_finite_differences() -> None:
    rng = np.random.default_rng(3)
    x = rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6).astype(np.float64)  # no ties
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    y_shape = (2, 3, 4, 3)
    outs = [(y_shape, np.float64), (y_shape, np.int64)]
    _, idx = run_kernel("MaxPool", [x], outs, attrs)
    dy = rng.standard_normal(y_shape)

    def f(v: np.ndarray) -> np.ndarray:
        out = run_kernel("MaxPool", [v], [outs[0], None], attrs, repeat=1)[0]
        assert out is not None
        return out

    ours = run_kernel("MaxPoolGrad", [dy, idx], [(x.shape, np.float64)], attrs)[0]
    assert_close(ours, numeric_gradient(f, x, dy, eps=1e-3), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 2, 6), (1, 1, 2, 3, 4)])
def test_global_average_pool_matches_onnx_reference(shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    expected = onnx_reference("GlobalAveragePool", [x], [((), np.float32)])[0]
    ours = run_kernel("GlobalAveragePool", [x], [(expected.shape, np.float32)])[0]
    assert_close(ours, expected, rtol=1e-6, atol=1e-7)


def test_maxpool_scratch_only_with_indices() -> None:
    f32 = np.dtype(np.float32)
    x, y = TensorSpec((2, 3, 8, 8), f32), TensorSpec((2, 3, 4, 4), f32)
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2]}
    assert lookup("", "MaxPool").bind(attrs, [x], [y]).scratch_bytes == 0
    with_indices = lookup("", "MaxPool").bind(
        attrs, [x], [y, TensorSpec(y.shape, np.dtype(np.int64))]
    )
    assert with_indices.scratch_bytes == 2 * 3 * 4 * 4


@pytest.mark.parametrize("images_per_chunk", [1, 2])
def test_pool_kernels_chunk_the_batch_without_changing_a_bit(
    monkeypatch: pytest.MonkeyPatch, images_per_chunk: int
) -> None:
    """Scratch is cut to a chunk of images (2 + 2 + 1 of a batch of 5 with 2 per chunk); the
    results are the unchunked ones, bit for bit, and the scratch shrinks accordingly."""
    import autotm_execute.kernels.pool as pool

    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 3, 8, 8)).astype(np.float32)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    y_shape = pooled_shape(x, attrs)
    outs = [(y_shape, np.float32), (y_shape, np.int64)]
    dy = rng.standard_normal(y_shape).astype(np.float32)
    per_image = int(np.prod(y_shape[1:]))

    def run_all() -> tuple[list[np.ndarray | None], dict[str, int]]:
        y, idx = run_kernel("MaxPool", [x], outs, attrs)
        dx_max = run_kernel("MaxPoolGrad", [dy, idx], [(x.shape, np.float32)], attrs)[0]
        dx_avg = run_kernel("AveragePoolGrad", [dy], [(x.shape, np.float32)], attrs)[0]
        f32, i64 = np.dtype(np.float32), np.dtype(np.int64)
        xs, ys, dys = TensorSpec(x.shape, f32), TensorSpec(y_shape, f32), TensorSpec(y_shape, f32)
        idxs = TensorSpec(y_shape, i64)
        scratch = {
            "MaxPool": lookup("", "MaxPool").bind(attrs, [xs], [ys, idxs]).scratch_bytes,
            "MaxPoolGrad": lookup("", "MaxPoolGrad").bind(attrs, [dys, idxs], [xs]).scratch_bytes,
            "AveragePoolGrad": lookup("", "AveragePoolGrad").bind(attrs, [dys], [xs]).scratch_bytes,
        }
        return [y, idx, dx_max, dx_avg], scratch

    with monkeypatch.context() as unchunked:
        unchunked.setattr(pool, "images_per_chunk", lambda batch, *_: batch)
        whole, whole_scratch = run_all()
    # Scratch per element of the output: MaxPool 1 (mask), AveragePoolGrad 4, MaxPoolGrad 13.
    for kernel, per_element in (("MaxPool", 1), ("AveragePoolGrad", 4), ("MaxPoolGrad", 13)):
        cap = per_element * per_image * images_per_chunk
        monkeypatch.setattr(pool, "COLUMNS_CAP", cap)
        chunked, chunked_scratch = run_all()
        for ours, reference in zip(chunked, whole, strict=True):
            np.testing.assert_array_equal(ours, reference)
        assert chunked_scratch[kernel] < whole_scratch[kernel]
        assert chunked_scratch[kernel] <= cap + 3 * 64  # plus region alignment
