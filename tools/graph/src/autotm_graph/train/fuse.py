"""Fuse the exporters' decompositions of layer norm and GELU back into single ops.

The TorchScript exporter below opset 17 writes ``F.layer_norm`` as ReduceMean, Sub, Pow,
ReduceMean, Add, Sqrt, Div (then Mul by the weight and Add of the bias), and both exporters
below opset 20 write exact GELU as ``x * 0.5 * (1 + erf(x / sqrt(2)))`` in some order of Mul
nodes. Each is differentiable op by op, but one LayerNormalization (one
LayerNormalizationGrad) or one com.microsoft Gelu (one GeluGrad) replaces 7 to 9 forward
kernels, their saved activations and twice as many backward kernels.

A fusion replaces the node producing the pattern's result by the fused op writing the same
tensor; the other matched nodes become dead unless something else reads their outputs, in
which case they stay (the result is the same, only less is saved). Constants are compared
with a tolerance, since exporters write sqrt(2) and 0.5 as float32 or float64. A match whose
result has another shape or type than its input (a one-element constant of higher rank
broadcasts X to more axes) is left alone: the fused op would write a tensor of another shape.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper

from ..opset import MS
from .graph import WorkGraph, attributes, infer_outputs


class _Index:
    """Producers and consumers of the graph's tensors."""

    def __init__(self, g: WorkGraph, outputs: Sequence[str]) -> None:
        self.g = g
        self.producer: dict[str, onnx.NodeProto] = {}
        self.users: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in g.nodes:
            for out in node.output:
                if out:
                    self.producer[out] = node
            for name in node.input:
                if name:
                    self.users[name].append(node)
        self.outputs = set(outputs)

    def made_by(self, name: str, op: str) -> onnx.NodeProto | None:
        node = self.producer.get(name)
        return node if node is not None and node.op_type == op and not node.domain else None

    def sole_user(self, name: str, op: str) -> onnx.NodeProto | None:
        """The one node reading ``name``, if it is an ``op`` and ``name`` is not an output."""
        users = self.users.get(name, [])
        if len(users) != 1 or name in self.outputs:
            return None
        node = users[0]
        return node if node.op_type == op and not node.domain else None

    def scalar(self, name: str) -> float | None:
        value = self.g.consts.get(name)
        if value is None or value.size != 1 or not np.issubdtype(value.dtype, np.number):
            return None
        return float(value.reshape(-1)[0])

    def other(self, node: onnx.NodeProto, name: str) -> str | None:
        """The other input of a binary node that reads ``name`` (None if it reads it twice)."""
        a, b = node.input[0], node.input[1]
        if a == name and b != name:
            return b
        if b == name and a != name:
            return a
        return None


def _close(value: float | None, target: float) -> bool:
    return value is not None and abs(value - target) <= 1e-5 * max(1.0, abs(target))


def fuse(g: WorkGraph, outputs: Sequence[str]) -> None:
    """Fuse every layer-norm and GELU decomposition in ``g`` (in place)."""
    for fusion in (_fuse_gelu, _fuse_layer_norm):
        index = _Index(g, outputs)
        for node in list(g.nodes):
            fusion(g, index, node)


def _replace(g: WorkGraph, old: onnx.NodeProto, new: onnx.NodeProto) -> None:
    """Put ``new`` where ``old`` was (same position, so the order stays topological)."""
    for i, node in enumerate(g.nodes):
        if node is old:
            g.nodes[i] = new
            break
    for name, info in zip(
        new.output, infer_outputs(g, new) if not new.domain else [], strict=False
    ):
        g.info[name] = info


# --- GELU ----------------------------------------------------------------------------------
def _fuse_gelu(g: WorkGraph, ix: _Index, erf: onnx.NodeProto) -> None:
    """``Erf(X / sqrt2)`` (or ``X * (1/sqrt2)``), + 1, times X and 0.5 in any order."""
    if erf.op_type != "Erf" or erf.domain:
        return
    x = _gelu_input(ix, erf.input[0])
    if x is None:
        return
    plus = ix.sole_user(erf.output[0], "Add")
    if plus is None or not _close(ix.scalar(ix.other(plus, erf.output[0]) or ""), 1.0):
        return
    a = plus.output[0]
    first = ix.sole_user(a, "Mul")
    if first is None:
        return
    other = ix.other(first, a)
    final: onnx.NodeProto | None = None
    if other == x or _close(ix.scalar(other or ""), 0.5):  # (X * a) * 0.5 or (a * 0.5) * X
        second = ix.sole_user(first.output[0], "Mul")
        want = 0.5 if other == x else None
        rest = ix.other(second, first.output[0]) if second is not None else None
        if rest is not None and (rest == x if want is None else _close(ix.scalar(rest), 0.5)):
            final = second
    elif other is not None:  # (X * 0.5) * a
        half = ix.made_by(other, "Mul")
        if half is not None and _close(ix.scalar(ix.other(half, x) or ""), 0.5):
            final = first
    if final is None or g.info[final.output[0]] != g.info[x]:
        return  # a constant of higher rank broadcast X: Gelu(X) would have another shape
    gelu = helper.make_node("Gelu", [x], [final.output[0]], name=final.name, domain=MS)
    _replace(g, final, gelu)


def _gelu_input(ix: _Index, scaled: str) -> str | None:
    """X when ``scaled`` is X / sqrt(2) or X * (1 / sqrt(2))."""
    div = ix.made_by(scaled, "Div")
    if div is not None and _close(ix.scalar(div.input[1]), float(np.sqrt(2.0))):
        return div.input[0]
    mul = ix.made_by(scaled, "Mul")
    if mul is not None:
        for x, k in ((mul.input[0], mul.input[1]), (mul.input[1], mul.input[0])):
            if _close(ix.scalar(k), float(np.sqrt(0.5))) and ix.scalar(x) is None:
                return x
    return None


# --- layer norm ----------------------------------------------------------------------------
def _trailing_axes(g: WorkGraph, node: onnx.NodeProto) -> int | None:
    """The first axis when a keepdims ReduceMean reduces the trailing axes of its input."""
    attrs = attributes(node)
    rank = len(g.shape(node.input[0]))
    axes = sorted(int(a) % rank for a in attrs.get("axes", []))
    if not int(attrs.get("keepdims", 1)) or not axes or axes != list(range(axes[0], rank)):
        return None
    return axes[0]


def _fuse_layer_norm(g: WorkGraph, ix: _Index, mean: onnx.NodeProto) -> None:
    if mean.op_type != "ReduceMean" or mean.domain:
        return
    axis = _trailing_axes(g, mean)
    x = mean.input[0]
    centred = [x, mean.output[0]]
    sub = next((u for u in ix.users.get(mean.output[0], []) if _is(u, "Sub", centred)), None)
    if axis is None or sub is None:
        return
    d = sub.output[0]
    users = ix.users.get(d, [])
    square = next((u for u in users if _is_square(ix, u, d)), None)
    divide = next((u for u in users if u.op_type == "Div" and u.input[0] == d), None)
    if square is None or divide is None:
        return
    var = ix.sole_user(square.output[0], "ReduceMean")
    if var is None or _trailing_axes(g, var) != axis:
        return
    add = ix.sole_user(var.output[0], "Add")
    eps = ix.scalar(ix.other(add, var.output[0]) or "") if add is not None else None
    if add is None or eps is None or eps < 0:
        return
    sqrt = ix.sole_user(add.output[0], "Sqrt")
    if sqrt is None or divide.input[1] != sqrt.output[0]:
        return
    normalized = tuple(g.shape(x)[axis:])
    final, scale, bias = divide, "", ""
    mul = ix.sole_user(final.output[0], "Mul")
    weight = ix.other(mul, final.output[0]) if mul is not None else None
    if mul is not None and weight is not None and _fits(g, weight, normalized, axis):
        final, scale = mul, weight
        add_b = ix.sole_user(final.output[0], "Add")
        b = ix.other(add_b, final.output[0]) if add_b is not None else None
        if add_b is not None and b is not None and _fits(g, b, normalized, axis):
            final, bias = add_b, b
    if g.info[final.output[0]] != g.info[x]:
        return  # epsilon (or a constant) of higher rank broadcast X: not a layer norm of X
    if not scale:
        scale = g.const(np.ones(normalized, g.info[x].dtype), f"{final.output[0]}_unit_scale")
    scale, bias = _as_shape(g, scale, normalized, final), _as_shape(g, bias, normalized, final)
    y = final.output[0]
    outs = [y, g.names.fresh(f"{y}_mean"), g.names.fresh(f"{y}_inv_std_dev")]
    ln = helper.make_node(
        "LayerNormalization",
        [x, scale, bias] if bias else [x, scale],
        outs,
        name=final.name,
        axis=axis,
        epsilon=eps,
        stash_type=1,
    )
    _replace(g, final, ln)


def _is(node: onnx.NodeProto, op: str, inputs: list[str]) -> bool:
    return node.op_type == op and not node.domain and list(node.input) == inputs


def _is_square(ix: _Index, node: onnx.NodeProto, d: str) -> bool:
    if node.op_type == "Mul" and list(node.input) == [d, d]:
        return True
    return node.op_type == "Pow" and node.input[0] == d and _close(ix.scalar(node.input[1]), 2.0)


def _fits(g: WorkGraph, name: str, normalized: tuple[int, ...], axis: int) -> bool:
    """Whether a constant or parameter ``name`` holds one value per normalised element,
    broadcast over the leading axes."""
    if name not in g.consts or not np.issubdtype(g.info[name].dtype, np.floating):
        return False
    shape = g.shape(name)
    rank = axis + len(normalized)
    lead = shape[: max(0, len(shape) - len(normalized))]
    return (
        len(shape) <= rank
        and all(d == 1 for d in lead)
        and int(np.prod(shape, dtype=np.int64)) == int(np.prod(normalized, dtype=np.int64))
        and all(a == b for a, b in zip(shape[::-1], normalized[::-1], strict=False))
    )


def _as_shape(g: WorkGraph, name: str, shape: tuple[int, ...], before: onnx.NodeProto) -> str:
    """``name`` with exactly ``shape``: a Reshape node put ``before`` the fused op when needed
    (so a parameter keeps its own shape and receives its gradient through the Reshape)."""
    if not name or g.shape(name) == shape:
        return name
    out = g.tensor(f"{name}_reshaped", shape, g.info[name].dtype)
    target = g.const(np.array(shape, np.int64), f"{out}_shape")
    position = next(i for i, n in enumerate(g.nodes) if n is before)
    g.nodes.insert(position, g.node("Reshape", [name, target], [out]))
    return out
