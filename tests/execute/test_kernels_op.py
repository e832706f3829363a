"""The kernel base class: bind-time checks and their messages, scratch layout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from autotm_execute.kernels import BindError, TensorSpec, lookup
from autotm_execute.kernels.op import SCRATCH_ALIGN, ScratchLayout, view

F32 = np.dtype(np.float32)


def spec(*shape: int, dtype: Any = F32) -> TensorSpec:
    return TensorSpec(tuple(shape), np.dtype(dtype))


@pytest.mark.parametrize(
    ("op", "attrs", "inputs", "outputs", "message"),
    [
        ("Relu", {}, [], [spec(2)], r"expected at least 1 and at most 1 inputs \(X\), got 0"),
        ("Gemm", {}, [spec(2, 2)] * 4, [spec(2, 2)], r"at most 3 inputs \(A B C\), got 4"),
        ("Relu", {"alpha": 1}, [spec(2)], [spec(2)], r"unknown attribute 'alpha'; known: \[\]"),
        ("Concat", {}, [spec(2)], [spec(2)], "attribute 'axis' is required"),
        (
            "Relu",
            {},
            [spec(2)],
            [spec(3)],
            r"output 0 \(Y\): expected float32\[2\], got float32\[3\]",
        ),
        (
            "Relu",
            {},
            [spec(2, dtype=np.int64)],
            [spec(2)],
            r"input 0 \(X\): expected a float tensor",
        ),
        ("Gemm", {}, [None, spec(2, 2)], [spec(2, 2)], r"input 0 \(A\) is required"),
    ],
)
def test_bind_errors_say_what_was_expected(
    op: str, attrs: dict[str, Any], inputs: Sequence[Any], outputs: Sequence[Any], message: str
) -> None:
    with pytest.raises(BindError, match=message):
        lookup("", op).bind(attrs, inputs, outputs)


def test_binding_returns_a_new_kernel_each_time() -> None:
    factory = lookup("", "Relu")
    a = factory.bind({}, [spec(2)], [spec(2)])
    b = factory.bind({}, [spec(3)], [spec(3)])
    assert a is not b and a is not factory
    assert a.scratch_bytes == 0


def test_scratch_layout_aligns_each_region() -> None:
    layout = ScratchLayout()
    first = layout.add((3,), np.int8)
    second = layout.add((2, 5), np.float64)
    assert first[0] == 0 and second[0] == SCRATCH_ALIGN
    assert layout.nbytes == SCRATCH_ALIGN + 80
    scratch = np.zeros(layout.nbytes, np.uint8)
    array = view(scratch, second)
    array[...] = 1.5
    assert array.shape == (2, 5) and array.dtype == np.float64
    assert np.shares_memory(array, scratch)
    assert not scratch[:SCRATCH_ALIGN].any()


def test_lookup_lists_what_exists() -> None:
    with pytest.raises(KeyError, match=r"no kernel for Frobnicate; known: \[.*'Relu'"):
        lookup("", "Frobnicate")
