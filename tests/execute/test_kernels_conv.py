"""Conv against onnx.reference, ConvGrad against onnxruntime and finite differences."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from autotm_execute.kernels import BindError, TensorSpec, lookup
from autotm_execute.kernels.window import window_from_attributes
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.execute.kernel_refs import (
    MS,
    assert_close,
    numeric_gradient,
    onnx_reference,
    ort_reference,
    present,
    run_kernel,
)


@st.composite
def conv_cases(draw: Any, max_rank: int = 2) -> dict[str, Any]:
    """Small random Conv problems: shapes, groups, strides, pads, dilations, auto_pad."""
    rank = draw(st.integers(1, max_rank))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg, mg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 3)) for _ in range(rank)]
    strides = [draw(st.integers(1, 3)) for _ in range(rank)]
    dilations = [draw(st.integers(1, 2)) for _ in range(rank)]
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"]))
    pads = [draw(st.integers(0, 2)) for _ in range(2 * rank)]
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    spatial = [draw(st.integers(max(1, s - (0 if auto_pad == "VALID" else 2)), 8)) for s in spans]
    if auto_pad in ("NOTSET", "VALID"):
        extra = pads if auto_pad == "NOTSET" else [0] * (2 * rank)
        spatial = [
            max(n, s - extra[i] - extra[i + rank])
            for i, (n, s) in enumerate(zip(spatial, spans, strict=True))
        ]
    attrs: dict[str, Any] = {
        "kernel_shape": kernel,
        "strides": strides,
        "group": groups,
        "auto_pad": auto_pad,
    }
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        attrs["dilations"] = dilations  # onnx.reference mishandles SAME with dilations
    if auto_pad == "NOTSET":
        attrs["pads"] = pads
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(1, 2))
    x = rng.standard_normal((n, cg * groups, *spatial)).astype(np.float32)
    w = rng.standard_normal((mg * groups, cg, *kernel)).astype(np.float32)
    b = rng.standard_normal(mg * groups).astype(np.float32) if draw(st.booleans()) else None
    return {"x": x, "w": w, "b": b, "attrs": attrs, "rng": rng}


def conv_forward(case: dict[str, Any], dtype: Any = np.float32) -> np.ndarray:
    x, w, b = (None if a is None else a.astype(dtype) for a in (case["x"], case["w"], case["b"]))
    expected = onnx_reference("Conv", [x, w, b], [((), dtype)], case["attrs"])[0]
    ours = run_kernel("Conv", [x, w, b], [(expected.shape, dtype)], case["attrs"])[0]
    assert ours is not None
    return ours


@settings(max_examples=80, deadline=None)
@given(conv_cases(max_rank=3))
def test_conv_matches_onnx_reference(case: dict[str, Any]) -> None:
    x, w, b = case["x"], case["w"], case["b"]
    expected = onnx_reference("Conv", [x, w, b], [((), np.float32)], case["attrs"])[0]
    ours = run_kernel("Conv", [x, w, b], [(expected.shape, np.float32)], case["attrs"])[0]
    assert_close(ours, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.oracle
@settings(max_examples=60, deadline=None)
@given(conv_cases(), st.sampled_from([(1, 1, 1), (1, 1, 0), (0, 1, 0), (1, 0, 0)]))
def test_conv_grad_matches_onnxruntime(case: dict[str, Any], wanted: tuple[int, ...]) -> None:
    x, w = case["x"], case["w"]
    y_shape = onnx_reference("Conv", [x, w, None], [((), np.float32)], case["attrs"])[0].shape
    dy = case["rng"].standard_normal(y_shape).astype(np.float32)
    outs = [
        (shape, np.float32) if want else None
        for shape, want in zip((x.shape, w.shape, (w.shape[0],)), wanted, strict=True)
    ]
    attrs = case["attrs"]
    # onnxruntime's ConvGrad ignores auto_pad (autotm-graph writes explicit pads): give it
    # the pads our geometry resolves, and check our kernel with auto_pad as it is.
    window = window_from_attributes(attrs, x.shape[2:], w.shape[2:])
    explicit = {k: v for k, v in attrs.items() if k != "auto_pad"}
    explicit["pads"] = [*window.pads_begin, *window.pads_end]
    expected = ort_reference("ConvGrad", [dy, x, w], outs, explicit, MS)
    ours = run_kernel("ConvGrad", [dy, x, w], outs, attrs, MS)
    for got, want in zip(present(ours), expected, strict=True):
        assert_close(got, want, rtol=1e-4, atol=1e-4)


@settings(max_examples=8, deadline=None)
@given(conv_cases())
def test_conv_grad_matches_finite_differences(case: dict[str, Any]) -> None:
    x, w = case["x"].astype(np.float64), case["w"].astype(np.float64)
    attrs = case["attrs"]
    y_shape = onnx_reference("Conv", [x, w, None], [((), np.float64)], attrs)[0].shape
    dy = case["rng"].standard_normal(y_shape)

    def forward(xx: np.ndarray, ww: np.ndarray) -> np.ndarray:
        out = run_kernel("Conv", [xx, ww], [(y_shape, np.float64)], attrs, repeat=1)[0]
        assert out is not None
        return out

    dx, dw, db = run_kernel(
        "ConvGrad",
        [dy, x, w],
        [(x.shape, np.float64), (w.shape, np.float64), ((w.shape[0],), np.float64)],
        attrs,
        MS,
    )
    assert_close(dx, numeric_gradient(lambda v: forward(v, w), x, dy), 1e-6, 1e-6)
    assert_close(dw, numeric_gradient(lambda v: forward(x, v), w, dy), 1e-6, 1e-6)
    assert_close(db, dy.sum(axis=tuple(i for i in range(dy.ndim) if i != 1)), 1e-9, 1e-9)


@pytest.mark.parametrize(
    ("attrs", "shape"),
    [
        ({"kernel_shape": [1, 1]}, (2, 4, 5, 5)),  # trivial: no columns at all
        ({"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, (2, 4, 5, 5)),
    ],
)
def test_conv_scratch_is_what_the_columns_need(
    attrs: dict[str, Any], shape: tuple[int, ...]
) -> None:
    x = TensorSpec(shape, np.dtype(np.float32))
    w = TensorSpec((6, 4, *attrs["kernel_shape"]), np.dtype(np.float32))
    kernel = lookup("", "Conv").bind(
        attrs, [x, w], [TensorSpec((2, 6, 5, 5), np.dtype(np.float32))]
    )
    k = int(np.prod(attrs["kernel_shape"]))
    assert kernel.scratch_bytes == (0 if k == 1 else 2 * 4 * k * 25 * 4)


def test_conv_rejects_wrong_output_shape_and_groups() -> None:
    x = TensorSpec((1, 4, 5, 5), np.dtype(np.float32))
    w = TensorSpec((6, 4, 3, 3), np.dtype(np.float32))
    with pytest.raises(BindError, match=r"output 0 \(Y\): expected float32\[1,6,3,3\]"):
        lookup("", "Conv").bind({}, [x, w], [TensorSpec((1, 6, 5, 5), np.dtype(np.float32))])
    y = TensorSpec((1, 6, 3, 3), np.dtype(np.float32))
    with pytest.raises(BindError, match="group 3"):
        lookup("", "Conv").bind({"group": 3}, [x, w], [y])
    with pytest.raises(BindError, match="unknown attribute 'padding'; known"):
        lookup("", "Conv").bind({"padding": 1}, [x, w], [y])
    with pytest.raises(BindError, match=r"output 0 \(Y\) is required"):
        lookup("", "Conv").bind({}, [x, w], [None])
