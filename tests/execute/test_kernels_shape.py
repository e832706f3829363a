"""Data-movement kernels against onnx.reference (SliceGrad against onnxruntime)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from autotm_execute.kernels import BindError, TensorSpec, lookup
from autotm_execute.kernels.shape import onnx_slices
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import numpy_helper

from tests.execute.kernel_refs import MS, onnx_reference, ort_reference, run_kernel

RNG = np.random.default_rng(11)


def x_of(shape: tuple[int, ...]) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def ints(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def check(
    op: str, inputs: list[Any], attrs: dict[str, Any] | None = None, consts: tuple[int, ...] = ()
) -> None:
    """Ours equals onnx.reference exactly (these kernels only move data)."""
    expected = onnx_reference(op, inputs, [((), np.float32)], attrs)[0]
    ours = run_kernel(op, inputs, [(expected.shape, expected.dtype)], attrs, consts=consts)[0]
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize(
    ("op", "inputs", "attrs"),
    [
        ("Reshape", [x_of((2, 3, 4)), ints(6, 4)], {}),
        ("Flatten", [x_of((2, 3, 4))], {"axis": 2}),
        ("Flatten", [x_of((2, 3, 4))], {"axis": 0}),
        ("Squeeze", [x_of((2, 1, 4, 1)), ints(1, 3)], {}),
        ("Unsqueeze", [x_of((2, 4)), ints(0, 3)], {}),
        ("Expand", [x_of((3, 1)), ints(2, 3, 4)], {}),
        ("Transpose", [x_of((2, 3, 4))], {"perm": [2, 0, 1]}),
        ("Transpose", [x_of((2, 3, 4))], {}),
        ("Concat", [x_of((2, 3)), x_of((2, 1)), x_of((2, 4))], {"axis": 1}),
        ("Concat", [x_of((2, 3))], {"axis": -2}),
        ("Gather", [x_of((5, 3)), ints(4, 0, -1, 2)], {"axis": 0}),
        ("Gather", [x_of((2, 5)), np.array([[1, 2], [0, 4]], np.int64)], {"axis": 1}),
    ],
)
def test_matches_onnx_reference(op: str, inputs: list[Any], attrs: dict[str, Any]) -> None:
    check(op, inputs, attrs)


@pytest.mark.parametrize(("axis", "sizes"), [(0, (1, 3)), (1, (2, 2, 1)), (-1, (3, 2))])
def test_split_matches_onnx_reference(axis: int, sizes: tuple[int, ...]) -> None:
    shape = [4, 5, 5]
    shape[axis] = sum(sizes)
    x = x_of(tuple(shape))
    outs = []
    for size in sizes:
        part = list(shape)
        part[axis] = size
        outs.append((tuple(part), np.float32))
    expected = onnx_reference("Split", [x, ints(*sizes)], outs, {"axis": axis})
    ours = run_kernel("Split", [x, ints(*sizes)], outs, {"axis": axis}, consts=(1,))
    for got, want in zip(ours, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(BindError, match="disagrees"):
        run_kernel("Split", [x, ints(*sizes[::-1], 0)], outs, {"axis": axis}, consts=(1,))


@st.composite
def slices(draw: Any) -> tuple[np.ndarray, list[np.ndarray | None]]:
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 5)) for _ in range(rank))
    axes = draw(
        st.lists(
            st.integers(-rank, rank - 1), min_size=1, max_size=rank, unique_by=lambda a: a % rank
        )
    )
    starts, ends, steps = [], [], []
    for axis in axes:
        dim = shape[axis % rank]
        starts.append(draw(st.integers(-dim - 2, dim + 2)))
        ends.append(draw(st.integers(-dim - 2, dim + 2)))
        steps.append(draw(st.sampled_from([1, 1, 2, -1, -2])))
    with_axes = draw(st.booleans()) or axes != list(range(len(axes)))
    with_steps = draw(st.booleans()) or any(s != 1 for s in steps)
    return x_of(shape), [
        ints(*starts),
        ints(*ends),
        ints(*axes) if with_axes else None,
        ints(*steps) if with_steps else None,
    ]


@settings(max_examples=60, deadline=None)
@given(slices())
def test_slice_matches_onnx_reference(case: tuple[np.ndarray, list[np.ndarray | None]]) -> None:
    x, bounds = case
    # onnx.reference slices the Python way, which differs from the ONNX specification (and
    # onnxruntime) for negative steps with starts before the first element.
    assume(bounds[3] is None or bool(np.all(bounds[3] > 0)))
    check("Slice", [x, *bounds], {}, consts=(1, 2, 3, 4))


@pytest.mark.oracle
@settings(max_examples=80, deadline=None)
@given(slices())
def test_slice_matches_onnxruntime(case: tuple[np.ndarray, list[np.ndarray | None]]) -> None:
    x, bounds = case
    ours = run_kernel(
        "Slice", [x, *bounds], [(slice_shape(x, bounds), np.float32)], consts=(1, 2, 3, 4)
    )[0]
    expected = ort_reference("Slice", [x, *bounds], [((), np.float32)])[0]
    np.testing.assert_array_equal(ours, expected)


def slice_shape(x: np.ndarray, bounds: list[np.ndarray | None]) -> tuple[int, ...]:
    def listed(a: np.ndarray | None) -> list[int] | None:
        return None if a is None else [int(v) for v in a]

    index = onnx_slices(
        x.shape,
        listed(bounds[0]) or [],
        listed(bounds[1]) or [],
        listed(bounds[2]),
        listed(bounds[3]),
    )
    return tuple(len(range(*part.indices(n))) for part, n in zip(index, x.shape, strict=True))


@pytest.mark.oracle
@settings(max_examples=40, deadline=None)
@given(slices())
def test_slice_grad_matches_onnxruntime(case: tuple[np.ndarray, list[np.ndarray | None]]) -> None:
    x, bounds = case
    dy = x_of(slice_shape(x, bounds))
    ins = [dy, np.array(x.shape, np.int64), *bounds]
    try:
        expected = ort_reference("SliceGrad", ins, [(x.shape, np.float32)], {}, MS)[0]
    except Exception as exc:  # onnxruntime fails some negative-step slices (narrowing_error)
        assume("narrowing" not in str(exc))
        raise
    ours = run_kernel("SliceGrad", ins, [(x.shape, np.float32)], {}, MS, consts=(1, 2, 3, 4, 5))[0]
    np.testing.assert_array_equal(ours, expected)


def test_slice_needs_constant_bounds() -> None:
    f32, i64 = np.dtype(np.float32), np.dtype(np.int64)
    specs = [TensorSpec((4,), f32), TensorSpec((1,), i64), TensorSpec((1,), i64)]
    with pytest.raises(BindError, match=r"input 1 \(starts\) must be a constant"):
        lookup("", "Slice").bind({}, specs, [TensorSpec((2,), f32)])


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        (
            {"value": numpy_helper.from_array(np.array([[1.5, 2.0]], np.float32))},
            np.array([[1.5, 2.0]], np.float32),
        ),
        ({"value_ints": [3, 4]}, ints(3, 4)),
        ({"value_float": 0.25}, np.array(0.25, np.float32)),
    ],
)
def test_constant(attrs: dict[str, Any], expected: np.ndarray) -> None:
    reference = onnx_reference("Constant", [], [((), expected.dtype)], attrs)[0]
    np.testing.assert_array_equal(reference, expected)
    ours = run_kernel("Constant", [], [(expected.shape, expected.dtype)], attrs)[0]
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("value", [None, numpy_helper.from_array(np.array([7], np.int64))])
def test_constant_of_shape_matches_onnx_reference(value: Any) -> None:
    attrs = {} if value is None else {"value": value}
    shape = ints(2, 3)
    expected = onnx_reference("ConstantOfShape", [shape], [((), np.float32)], attrs)[0]
    ours = run_kernel(
        "ConstantOfShape", [shape], [(expected.shape, expected.dtype)], attrs, consts=(0,)
    )[0]
    np.testing.assert_array_equal(ours, expected)
