"""Rewrite ops the training graph does not write into ops it does.

Each function returns the nodes that replace one source node, in order; the caller emits
them one by one (inferring shapes as it goes). What they lower, and why:

* ``Einsum`` of two operands (MaxViT's attention, TorchScript and dynamo alike) becomes
  Transpose/Reshape around one batched MatMul, so it needs no kernel or gradient of its own.
* ``GatherND`` with constant indices (dynamo's ``table[index]`` for Swin's and MaxViT's
  relative position bias) becomes a Gather along axis 0 of the table, flattened over the
  indexed axes when an index has several components; Gather has a gradient (GatherGrad).
* ``ReduceL2`` (Swin v2's cosine attention) becomes ``Sqrt(ReduceSum(X * X))``.
* ``Gelu`` with ``approximate='tanh'`` becomes its formula in Mul, Add and Tanh.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from autotm_schemas import BadInputError
from onnx import helper

from .graph import WorkGraph, attributes


class _Emitter:
    """Collects the replacement nodes, with fresh tensor and node names."""

    def __init__(self, g: WorkGraph, node: onnx.NodeProto) -> None:
        self.g = g
        self.node = node
        self.nodes: list[onnx.NodeProto] = []

    def op(self, op_type: str, inputs: Sequence[str], out: str = "", **attrs: Any) -> str:
        """Append one node; ``out`` empty: a fresh intermediate named after the source."""
        final = bool(out)
        out = out or self.g.names.fresh(f"{self.node.output[0]}_{op_type.lower()}")
        name = self.node.name if final and self.node.name else self.g.node_names.fresh(out)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=name, **attrs))
        return out

    def const(self, value: Any, hint: str, dtype: Any = np.int64) -> str:
        return self.g.const(np.asarray(value, dtype=dtype), f"{self.node.output[0]}_{hint}")


# --- Einsum ------------------------------------------------------------------------------
def einsum(g: WorkGraph, node: onnx.NodeProto) -> list[onnx.NodeProto]:
    """Two-operand Einsum as Transpose, Reshape, MatMul, Reshape, Transpose (each only when it
    changes something); an index in one operand only and absent from the output is summed
    first. Ellipses and an index repeated within one term (a diagonal) are not supported."""
    where = g.where(node)
    equation = str(attributes(node)["equation"]).replace(" ", "")
    lhs, arrow, output = equation.partition("->")
    terms = lhs.split(",")
    if "." in equation or len(terms) != 2 or len(node.input) != 2:
        raise BadInputError(
            f"{where}: equation {equation!r}: expected two operands without ellipsis"
        )
    if not arrow:  # implicit output: the indices seen once, alphabetically
        output = "".join(sorted(c for c in set(lhs) if lhs.count(c) == 1 and c != ","))
    for term in (*terms, output):
        if len(set(term)) != len(term):
            raise BadInputError(f"{where}: equation {equation!r}: expected no repeated index")
    if not set(output) <= set(lhs) - {","}:
        raise BadInputError(
            f"{where}: equation {equation!r}: expected output indices found in the operands"
        )
    e = _Emitter(g, node)
    names = list(node.input)
    shapes = [list(g.shape(n)) for n in names]
    sizes: dict[str, int] = {}
    for i, term in enumerate(terms):
        shape = shapes[i]
        if len(shape) != len(term):
            raise BadInputError(
                f"{where}: operand {i} of shape {list(shape)}: expected rank {len(term)}"
            )
        for c, d in zip(term, shape, strict=True):
            sizes[c] = max(sizes.get(c, 1), d)
    for i in (0, 1):
        alone = [k for k, c in enumerate(terms[i]) if c not in terms[1 - i] and c not in output]
        if alone:
            names[i] = e.op("ReduceSum", [names[i], e.const(alone, f"sum{i}")], keepdims=0)
            terms[i] = "".join(c for k, c in enumerate(terms[i]) if k not in alone)
            shapes[i] = [d for k, d in enumerate(shapes[i]) if k not in alone]
    a, b = terms
    batch = [c for c in output if c in a and c in b]
    left = [c for c in a if c in output and c not in b]
    right = [c for c in b if c in output and c not in a]
    summed = [c for c in a if c in b and c not in output]
    x = _arrange(e, names[0], shapes[0], a, batch, left, summed)
    y = _arrange(e, names[1], shapes[1], b, batch, summed, right)
    got = [*batch, *left, *right]
    unflat, perm = len(left) != 1 or len(right) != 1, output != "".join(got)
    out = node.output[0]
    product = e.op("MatMul", [x, y], "" if unflat or perm else out)
    if unflat:
        dims = [sizes[c] for c in got]
        product = e.op("Reshape", [product, e.const(dims, "unflat")], "" if perm else out)
    if perm:
        e.op("Transpose", [product], out, perm=[got.index(c) for c in output])
    return e.nodes


def _arrange(
    e: _Emitter,
    name: str,
    shape: list[int],
    term: str,
    batch: list[str],
    first: list[str],
    second: list[str],
) -> str:
    """``name`` (of ``shape``, indexed by ``term``) as [batch..., prod(first), prod(second)]."""
    order = [*batch, *first, *second]
    if list(term) != order:
        name = e.op("Transpose", [name], perm=[term.index(c) for c in order])
    if len(first) != 1 or len(second) != 1:
        dims = [shape[term.index(c)] for c in batch]
        dims.append(int(np.prod([shape[term.index(c)] for c in first], dtype=np.int64)))
        dims.append(int(np.prod([shape[term.index(c)] for c in second], dtype=np.int64)))
        name = e.op("Reshape", [name, e.const(dims, "grouped")])
    return name


# --- GatherND ------------------------------------------------------------------------------
def gather_nd(g: WorkGraph, node: onnx.NodeProto) -> list[onnx.NodeProto]:
    """GatherND(data, indices) with constant indices and batch_dims 0 as one Gather on axis 0
    (after flattening data's first k axes when each index has k > 1 components)."""
    where = g.where(node)
    if int(attributes(node).get("batch_dims", 0)):
        raise BadInputError(f"{where}: expected batch_dims 0")
    if node.input[1] not in g.consts:
        raise BadInputError(f"{where}: indices: expected a constant")
    indices = g.consts[node.input[1]].astype(np.int64)
    shape = g.shape(node.input[0])
    k = indices.shape[-1] if indices.ndim else 0
    if not 1 <= k <= len(shape):
        raise BadInputError(
            f"{where}: indices of shape {list(indices.shape)}: expected a last axis of 1 to "
            f"{len(shape)} components"
        )
    lead = np.array(shape[:k], np.int64)
    if ((indices < -lead) | (indices >= lead)).any():
        axes = list(shape[:k])
        raise BadInputError(f"{where}: indices: expected values within data's axes {axes}")
    e = _Emitter(g, node)
    data = node.input[0]
    flat = np.ravel_multi_index(tuple(np.moveaxis(indices % lead, -1, 0)), tuple(lead))
    flat = np.asarray(flat, np.int64)
    if k != 1:
        merged = [int(np.prod(lead)), *shape[k:]]
        data = e.op("Reshape", [data, e.const(merged, "flat_shape")])
    e.op("Gather", [data, e.const(flat, "indices")], node.output[0], axis=0)
    return e.nodes


# --- ReduceL2 ------------------------------------------------------------------------------
def reduce_l2(g: WorkGraph, node: onnx.NodeProto, axes: list[int]) -> list[onnx.NodeProto]:
    """ReduceL2 as Sqrt(ReduceSum(X * X)) over ``axes`` (non-negative, non-empty)."""
    e = _Emitter(g, node)
    x = node.input[0]
    keepdims = int(attributes(node).get("keepdims", 1))
    square = e.op("Mul", [x, x])
    total = e.op("ReduceSum", [square, e.const(axes, "axes")], keepdims=keepdims)
    e.op("Sqrt", [total], node.output[0])
    return e.nodes


# --- GELU (tanh) ---------------------------------------------------------------------------
def gelu_tanh(g: WorkGraph, node: onnx.NodeProto) -> list[onnx.NodeProto]:
    """0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) in standard ops."""
    e = _Emitter(g, node)
    x = node.input[0]

    def scalar(value: float, hint: str) -> str:
        return e.const(value, hint, np.float32)

    cube = e.op("Mul", [e.op("Mul", [x, x]), x])
    inner = e.op("Add", [e.op("Mul", [cube, scalar(0.044715, "cubic")]), x])
    t = e.op("Tanh", [e.op("Mul", [inner, scalar(float(np.sqrt(2 / np.pi)), "k")])])
    gate = e.op("Mul", [e.op("Add", [t, scalar(1.0, "one")]), x])
    e.op("Mul", [gate, scalar(0.5, "half")], node.output[0])
    return e.nodes
