"""Conv against onnx.reference, ConvGrad against onnxruntime and finite differences; the
batch chunking that bounds their scratch against the whole-batch result."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from autotm_execute.kernels import BindError, TensorSpec, conv, lookup
from autotm_execute.kernels.op import SCRATCH_ALIGN
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
def conv_cases(draw: Any, max_rank: int = 2, max_batch: int = 2) -> dict[str, Any]:
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
    n = draw(st.integers(1, max_batch))
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
    # one image's columns (4 * k * 25 floats) exceed the whole input (2 * 4 * 25 floats), so
    # the batch runs one image at a time (columns_cap)
    assert kernel.scratch_bytes == (0 if k == 1 else 4 * k * 25 * 4)


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


# ---- chunking over the batch ---------------------------------------------------------------

BIG = 1 << 40  # a cap no test reaches: one chunk, the whole batch


def bind(op: str, case: dict[str, Any], dtype: Any, wanted: tuple[int, ...] = (1, 1, 1)) -> Any:
    """Conv or ConvGrad bound to a case (at the current COLUMNS_CAP)."""
    x, w = case["x"], case["w"]
    y_shape = onnx_reference("Conv", [x, w, None], [((), np.float32)], case["attrs"])[0].shape
    dt = np.dtype(dtype)
    xs, ws, ys = (TensorSpec(tuple(s), dt) for s in (x.shape, w.shape, y_shape))
    if op == "Conv":
        return lookup("", "Conv").bind(case["attrs"], [xs, ws], [ys])
    outs = [xs, ws, TensorSpec((w.shape[0],), dt)]
    return lookup(MS, "ConvGrad").bind(
        case["attrs"],
        [ys, xs, ws],
        [o if want else None for o, want in zip(outs, wanted, strict=True)],
    )


def per_image_bytes(op: str, case: dict[str, Any], itemsize: int) -> int:
    """What the cap is compared with: one image's columns (ConvGrad: and its dY)."""
    x, w = case["x"], case["w"]
    y = onnx_reference("Conv", [x, w, None], [((), np.float32)], case["attrs"])[0]
    positions = int(np.prod(y.shape[2:]))
    columns = x.shape[1] * int(np.prod(w.shape[2:])) * positions
    return itemsize * (columns + (w.shape[0] * positions if op == "ConvGrad" else 0))


def run_with_cap(
    op: str, case: dict[str, Any], cap: int, wanted: tuple[int, ...] = (1, 1, 1)
) -> tuple[list[np.ndarray | None], int]:
    """Results (float64) and scratch bytes of Conv(X, W, B) or ConvGrad(dY, X, W) at ``cap``."""
    x, w = case["x"].astype(np.float64), case["w"].astype(np.float64)
    b = None if case["b"] is None else case["b"].astype(np.float64)
    y_shape = onnx_reference("Conv", [x, w, None], [((), np.float64)], case["attrs"])[0].shape
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv, "COLUMNS_CAP", cap)
        scratch = bind(op, case, np.float64, wanted).scratch_bytes
        if op == "Conv":
            return run_kernel("Conv", [x, w, b], [(y_shape, np.float64)], case["attrs"]), scratch
        dy = np.random.default_rng(len(y_shape)).standard_normal(y_shape)
        shapes = (x.shape, w.shape, (w.shape[0],))
        outs = [(s, np.float64) if want else None for s, want in zip(shapes, wanted, strict=True)]
        return run_kernel("ConvGrad", [dy, x, w], outs, case["attrs"], MS), scratch


@pytest.mark.parametrize(
    ("batch", "fit", "chunk"),
    [
        (16, 16, 16),
        (16, 20, 16),
        (16, 7, 6),
        (16, 5, 4),
        (7, 3, 3),
        (7, 4, 4),
        (5, 1, 1),
        (1, 1, 1),
    ],
)
def test_chunks_are_balanced_and_fit_the_cap(batch: int, fit: int, chunk: int) -> None:
    per_image = 1000
    assert conv.images_per_chunk(batch, per_image, fit * per_image + 999) == chunk
    bounds = conv.chunk_bounds(batch, chunk)
    assert bounds[0][0] == 0 and bounds[-1][1] == batch
    assert all(stop - start == chunk for start, stop in bounds[:-1])
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert len(bounds) == -(-batch // min(fit, batch))  # as few chunks as the cap allows


def test_one_image_per_chunk_when_the_cap_is_below_one_image() -> None:
    assert conv.images_per_chunk(8, 10_000, 1) == 1
    assert conv.images_per_chunk(8, 10_000, 0) == 1


@settings(max_examples=60, deadline=None)
@given(
    conv_cases(max_rank=2, max_batch=7),
    st.sampled_from(["Conv", "ConvGrad"]),
    st.integers(1, 6),
    st.sampled_from([(1, 1, 1), (1, 0, 0), (0, 1, 0), (0, 1, 1)]),
)
def test_chunked_results_match_the_whole_batch(
    case: dict[str, Any], op: str, images: int, wanted: tuple[int, ...]
) -> None:
    """Any chunk size, dividing the batch or not, gives the whole-batch result: bit for bit
    for Conv (the same matrix product per image), to rounding for ConvGrad (dW and dB add the
    chunks' partial sums; dX's products have fewer columns, and BLAS may block them another
    way); and the scratch holds at most ``max(cap, one image)``."""
    per_image = per_image_bytes(op, case, 8)
    cap = images * per_image + per_image // 2
    whole, whole_scratch = run_with_cap(op, case, BIG, wanted)
    chunked, scratch = run_with_cap(op, case, cap, wanted)
    for got, want in zip(chunked, whole, strict=True):
        if want is None:
            assert got is None
        elif op == "Conv":
            np.testing.assert_array_equal(got, want)
        else:
            assert_close(got, want, rtol=1e-12, atol=1e-12)
    dw_bytes = case["w"].size * 8 if op == "ConvGrad" and wanted[1] else 0
    assert scratch <= max(cap, per_image) + dw_bytes + 2 * SCRATCH_ALIGN
    assert scratch <= whole_scratch + dw_bytes + 2 * SCRATCH_ALIGN


@pytest.mark.parametrize("op", ["Conv", "ConvGrad"])
@pytest.mark.parametrize("cap", [1, 300 << 10, 1 << 20, 4 << 20])
def test_scratch_is_bounded_by_the_cap_at_batch_16(op: str, cap: int) -> None:
    """A 3x3 Conv, 16 > 32 channels at 32x32 and batch 16 (9 MiB of whole-batch columns):
    the scratch is at most ``max(cap, one image)`` (plus ConvGrad's dW accumulator and
    alignment), and the kernel still computes the whole-batch result."""
    rng = np.random.default_rng(0)
    case = {
        "x": rng.standard_normal((16, 16, 32, 32)).astype(np.float32),
        "w": rng.standard_normal((32, 16, 3, 3)).astype(np.float32),
        "b": None,
        "attrs": {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
    }
    per_image = per_image_bytes(op, case, 4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv, "COLUMNS_CAP", cap)
        kernel = bind(op, case, np.float32)
    layer_cap = min(cap, 16 * 16 * 32 * 32 * 4)  # never more than the layer's input (columns_cap)
    fit = max(1, min(16, layer_cap // per_image))
    assert kernel.chunk == -(-16 // -(-16 // fit))  # balanced: the same number of chunks
    dw_bytes = 32 * 16 * 9 * 4 if op == "ConvGrad" and kernel.chunk < 16 else 0
    assert kernel.scratch_bytes <= max(layer_cap, per_image) + dw_bytes + 2 * SCRATCH_ALIGN
    assert kernel.scratch_bytes >= kernel.chunk * per_image  # and it is what it needs


@pytest.mark.parametrize("op", ["Conv", "ConvGrad"])
def test_chunked_reruns_are_bit_identical(op: str) -> None:
    """--verify compares runs bit for bit: with several chunks, and different garbage in the
    scratch at each run, the results are the same."""
    rng = np.random.default_rng(1)
    case = {
        "x": rng.standard_normal((5, 3, 6, 6)),
        "w": rng.standard_normal((4, 3, 3, 3)),
        "b": rng.standard_normal(4),
        "attrs": {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 1]},
    }
    cap = 2 * per_image_bytes(op, case, 8)  # chunks of 2, 2, 1
    first, _ = run_with_cap(op, case, cap)
    second, _ = run_with_cap(op, case, cap)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_trivial_conv_needs_no_columns_whatever_the_cap() -> None:
    x = TensorSpec((8, 4, 5, 5), np.dtype(np.float32))
    w = TensorSpec((6, 4, 1, 1), np.dtype(np.float32))
    y = TensorSpec((8, 6, 5, 5), np.dtype(np.float32))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv, "COLUMNS_CAP", 1)
        assert lookup("", "Conv").bind({}, [x, w], [y]).scratch_bytes == 0
        dx_only = lookup(MS, "ConvGrad").bind({}, [y, x, w], [x, None, None])
        assert dx_only.scratch_bytes == 0
