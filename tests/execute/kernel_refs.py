"""Shared helpers of the kernel tests: run a kernel the strict way, and the references.

``run_kernel`` binds a kernel and runs it the way the executor does, plus the checks every
kernel must pass: outputs are poisoned first (so a kernel that leaves part of an output
unwritten fails), the scratch buffer has exactly ``scratch_bytes`` bytes of garbage, inputs
are compared with copies afterwards (never modified), and the call happens twice so that a
kernel that depends on what its outputs or scratch held before is caught.

References: ``onnx_reference`` (onnx.reference.ReferenceEvaluator, for standard forward
ops), ``ort_reference`` (onnxruntime CPU, which runs the com.microsoft gradient ops), and
``numeric_gradient`` (float64 central differences through our own forward kernels).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import pytest
from autotm_execute.kernels import TensorSpec, lookup
from onnx import helper
from onnx.reference import ReferenceEvaluator

MS = "com.microsoft"


def poison(shape: Sequence[int], dtype: Any) -> np.ndarray:
    """An array whose every element is wrong for any kernel: NaN, a sentinel int, True."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return np.full(shape, np.nan, dt)
    if dt.kind == "b":
        return np.full(shape, True)
    return np.full(shape, np.iinfo(dt).min + 7, dt)


def spec_of(array: np.ndarray | None, const: bool = False) -> TensorSpec | None:
    if array is None:
        return None
    return TensorSpec(tuple(array.shape), array.dtype, array if const else None)


def run_kernel(
    op: str,
    inputs: Sequence[np.ndarray | None],
    outputs: Sequence[tuple[Sequence[int], Any] | None],
    attributes: Mapping[str, Any] | None = None,
    domain: str = "",
    consts: Sequence[int] = (),
    repeat: int = 2,
) -> list[np.ndarray | None]:
    """Bind and run a kernel with the strict checks; the outputs of the last run."""
    kernel = lookup(domain, op).bind(
        dict(attributes or {}),
        [spec_of(a, i in consts) for i, a in enumerate(inputs)],
        [TensorSpec(tuple(o[0]), np.dtype(o[1])) if o is not None else None for o in outputs],
    )
    copies = [None if a is None else a.copy() for a in inputs]
    result: list[np.ndarray | None] = []
    for attempt in range(repeat):
        result = [poison(*o) if o is not None else None for o in outputs]
        scratch = None
        if kernel.scratch_bytes:
            fill = 0xAB if attempt % 2 == 0 else 0x7F
            scratch = np.full(kernel.scratch_bytes, fill, np.uint8)
        kernel.run(np, list(inputs), result, scratch)
        for index, (before, after) in enumerate(zip(copies, inputs, strict=True)):
            if before is not None:
                assert after is not None
                np.testing.assert_array_equal(after, before, err_msg=f"input {index} modified")
    return result


def single_node_model(
    op: str,
    inputs: Sequence[np.ndarray | None],
    outputs: Sequence[tuple[Sequence[int], Any] | None],
    attributes: Mapping[str, Any] | None = None,
    domain: str = "",
) -> tuple[onnx.ModelProto, dict[str, np.ndarray], list[str]]:
    """A one-node model; absent inputs/outputs get empty names. Feeds and output names."""
    in_names = [f"in{i}" if a is not None else "" for i, a in enumerate(inputs)]
    out_names = [f"out{i}" if o is not None else "" for i, o in enumerate(outputs)]
    node = helper.make_node(op, in_names, out_names, domain=domain, **dict(attributes or {}))

    def info(name: str, shape: Sequence[int], dtype: Any) -> onnx.ValueInfoProto:
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        return helper.make_tensor_value_info(name, elem, list(shape))

    graph = helper.make_graph(
        [node],
        f"{op}_test",
        [info(n, a.shape, a.dtype) for n, a in zip(in_names, inputs, strict=True) if a is not None],
        [info(n, o[0], o[1]) for n, o in zip(out_names, outputs, strict=True) if o is not None],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    feeds = {n: a for n, a in zip(in_names, inputs, strict=True) if a is not None}
    return model, feeds, [n for n in out_names if n]


def onnx_reference(
    op: str,
    inputs: Sequence[np.ndarray | None],
    outputs: Sequence[tuple[Sequence[int], Any] | None],
    attributes: Mapping[str, Any] | None = None,
    opset: int = 17,
) -> list[np.ndarray]:
    """The present outputs as onnx.reference computes them."""
    model, feeds, names = single_node_model(op, inputs, outputs, attributes)
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("", opset))
    return [np.asarray(r) for r in ReferenceEvaluator(model).run(names, feeds)]


def ort_reference(
    op: str,
    inputs: Sequence[np.ndarray | None],
    outputs: Sequence[tuple[Sequence[int], Any] | None],
    attributes: Mapping[str, Any] | None = None,
    domain: str = "",
) -> list[np.ndarray]:
    """The present outputs as onnxruntime's CPU provider computes them (skip without it)."""
    ort = pytest.importorskip("onnxruntime")
    model, feeds, names = single_node_model(op, inputs, outputs, attributes, domain)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return [np.asarray(r) for r in session.run(names, feeds)]


def present(values: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    return [v for v in values if v is not None]


def numeric_gradient(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, weight: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """d sum(weight * f(x)) / dx by float64 central differences."""
    x = x.astype(np.float64).copy()
    grad = np.zeros_like(x)
    flat, out = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + eps
        up = float(np.sum(weight * f(x)))
        flat[i] = keep - eps
        down = float(np.sum(weight * f(x)))
        flat[i] = keep
        out[i] = (up - down) / (2 * eps)
    return grad


def assert_close(actual: Any, expected: Any, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol)
