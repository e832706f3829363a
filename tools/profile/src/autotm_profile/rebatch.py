"""The same training graph at another batch size, for ``--measure-batch``.

The paper's 650 GB networks cannot be timed at full batch on a small machine; their kernels
are timed at a small batch ``B`` and the times scaled to the graph's batch ``N``. To bind a
kernel at batch ``B`` we need every tensor's shape at ``B``, so we need to know which
dimensions carry the batch.

**How batch dimensions are found.** Every dimension of every tensor is a variable; the ops
impose equalities between them (an elementwise op's output has its input's dimensions, a Conv's
output has its input's batch, a Gemm's output rows are its first operand's rows, ...), solved
with a union-find. A reshape (Reshape, Flatten, Squeeze, Unsqueeze) groups input and output
dimensions into blocks of equal product; a block carries the batch on one side iff it does on
the other, and the batch lands in the block's outermost dimension (batch-major layouts). The
data inputs' axis 0 is the batch; every dimension that ends up equal to it (or in a block with
it) is a batch dimension and is scaled by ``B / N``. Parameters' dimensions never are: a class
that joins a parameter dimension with the batch is reported as an error.

Ops whose shape comes from an int64 constant (Reshape, Expand, ConstantOfShape, SliceGrad) have
that constant's elements rewritten where they equal a batch dimension of the output (``-1`` and
``0`` are left alone). A constant shared by uses that disagree is an error, as is slicing or
splitting part of the batch axis.

An op this module does not know gets one rule: outputs equal to an input's shape share its
dimensions. Whatever the rules, the result is checked by binding every kernel at ``B``
(:mod:`autotm_profile.measure` does that as it times), and the tests compare a graph re-batched
from ``N`` to ``B`` with the same network built at ``B``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from autotm_graph.ir import Graph, Node, Tensor
from autotm_schemas import BadInputError
from onnx import numpy_helper

DimId = int


class _Dims:
    """Union-find over (tensor, axis) pairs, with the batch-carrying label per class."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.ids: dict[tuple[str, int], DimId] = {}
        self.parent: list[int] = []
        self.names: list[tuple[str, int]] = []
        for name, tensor in graph.tensors.items():
            for axis in range(len(tensor.shape)):
                self.ids[(name, axis)] = len(self.parent)
                self.parent.append(len(self.parent))
                self.names.append((name, axis))
        self.batched: set[int] = set()
        # Reshape blocks: (input dims, output dims); a class label crosses in both directions.
        self.blocks: list[tuple[list[DimId], list[DimId]]] = []
        # (constant name, element, dim of the output that element gives the size of)
        self.shape_ties: list[tuple[str, int, DimId]] = []
        # (op, node name, dim): dims whose extent must not change (partial slices, splits).
        self.frozen: list[tuple[str, DimId]] = []

    def dim(self, tensor: str, axis: int) -> DimId | None:
        if not tensor:
            return None
        rank = len(self.graph.tensors[tensor].shape)
        if not -rank <= axis < rank:
            return None
        return self.ids[(tensor, axis % rank)]

    def size(self, dim: DimId) -> int:
        name, axis = self.names[dim]
        return self.graph.tensors[name].shape[axis]

    def find(self, dim: DimId) -> DimId:
        root = dim
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[dim] != root:
            self.parent[dim], dim = root, self.parent[dim]
        return root

    def eq(self, a: tuple[str, int], b: tuple[str, int]) -> None:
        """Dimensions the op requires to be equal (skipped when the static sizes differ)."""
        da, db = self.dim(*a), self.dim(*b)
        if da is None or db is None or self.size(da) != self.size(db):
            return
        ra, rb = self.find(da), self.find(db)
        if ra != rb:
            self.parent[ra] = rb
            if ra in self.batched:
                self.batched.discard(ra)
                self.batched.add(rb)

    def eq_all(self, a: str, b: str) -> None:
        if not a or not b:
            return
        for axis in range(min(len(self.graph.tensors[a].shape), len(self.graph.tensors[b].shape))):
            self.eq((a, axis), (b, axis))

    def broadcast(self, inputs: Sequence[str], output: str) -> None:
        """Numpy broadcasting: right-aligned dimensions equal unless an input's is 1."""
        if not output:
            return
        out_rank = len(self.graph.tensors[output].shape)
        for name in inputs:
            if not name:
                continue
            shape = self.graph.tensors[name].shape
            for axis, extent in enumerate(shape):
                if extent != 1:
                    self.eq((name, axis), (output, out_rank - len(shape) + axis))

    def is_batched(self, dim: DimId) -> bool:
        return self.find(dim) in self.batched

    def mark(self, dim: DimId) -> bool:
        root = self.find(dim)
        if root in self.batched:
            return False
        self.batched.add(root)
        return True


# --- op rules -------------------------------------------------------------------------------

Rule = Callable[[_Dims, Node, Graph], None]


def _same_shape(d: _Dims, node: Node, graph: Graph) -> None:
    """Outputs equal in shape to an input share its dimensions (elementwise ops, fallback)."""
    for out in node.outputs:
        if not out:
            continue
        for name in node.inputs:
            if name and graph.tensors[name].shape == graph.tensors[out].shape:
                d.eq_all(name, out)


def _elementwise(d: _Dims, node: Node, graph: Graph) -> None:
    for out in node.outputs:
        d.broadcast(node.inputs, out)


def _first_input_like(d: _Dims, node: Node, graph: Graph) -> None:
    """Every output has input 0's shape (unary ops, Dropout's mask, Clip's X only)."""
    for out in node.outputs:
        d.eq_all(node.inputs[0], out)


def _grad_like(d: _Dims, node: Node, graph: Graph) -> None:
    """Gradient ops whose inputs and output share one shape (ReluGrad(dY, Y) -> dX, ...)."""
    names = [n for n in (*node.inputs, *node.outputs) if n]
    shape = graph.tensors[node.outputs[0]].shape
    same = [n for n in names if graph.tensors[n].shape == shape]
    for name in same[1:]:
        d.eq_all(same[0], name)


def _leading(count: int, *pairs: tuple[int, int]) -> Rule:
    """Equate the first ``count`` axes of (input, output) position pairs (Conv-like ops)."""

    def rule(d: _Dims, node: Node, graph: Graph) -> None:
        for i, o in pairs:
            if i < len(node.inputs) and o < len(node.outputs):
                for axis in range(count):
                    d.eq((node.inputs[i], axis), (node.outputs[o], axis))

    return rule


def _conv_grad(d: _Dims, node: Node, graph: Graph) -> None:
    dy, x, w = node.inputs[:3]
    d.eq((dy, 0), (x, 0))
    outs = [*list(node.outputs), "", "", ""]
    d.eq_all(x, outs[0])
    d.eq_all(w, outs[1])


def _max_pool(d: _Dims, node: Node, graph: Graph) -> None:
    for out in node.outputs:
        for axis in (0, 1):
            d.eq((node.inputs[0], axis), (out, axis))


def _batch_norm(d: _Dims, node: Node, graph: Graph) -> None:
    d.eq_all(node.inputs[0], node.outputs[0])
    for name in (*node.inputs[1:], *node.outputs[1:]):
        d.eq((node.inputs[0], 1), (name, 0))


def _batch_norm_grad(d: _Dims, node: Node, graph: Graph) -> None:
    dy, x = node.inputs[:2]
    d.eq_all(dy, x)
    d.eq_all(x, node.outputs[0])
    for name in (*node.inputs[2:], *node.outputs[1:]):
        d.eq((x, 1), (name, 0))


def _gemm(d: _Dims, node: Node, graph: Graph) -> None:
    a, b = node.inputs[:2]
    y = node.outputs[0]
    trans_a = int(node.attributes.get("transA", 0))
    trans_b = int(node.attributes.get("transB", 0))
    m_axis, ka_axis = (1, 0) if trans_a else (0, 1)
    n_axis, kb_axis = (0, 1) if trans_b else (1, 0)
    d.eq((a, m_axis), (y, 0))
    d.eq((b, n_axis), (y, 1))
    d.eq((a, ka_axis), (b, kb_axis))
    if len(node.inputs) > 2 and node.inputs[2]:
        d.broadcast([node.inputs[2]], y)


def _matmul(d: _Dims, node: Node, graph: Graph) -> None:
    a, b = node.inputs[:2]
    y = node.outputs[0]
    rank_a, rank_b = len(graph.tensors[a].shape), len(graph.tensors[b].shape)
    d.eq((a, -1), (b, -2 if rank_b >= 2 else -1))
    if rank_a >= 2:
        d.eq((a, -2), (y, -2 if rank_b >= 2 else -1))
    if rank_b >= 2:
        d.eq((b, -1), (y, -1))
    y_rank = len(graph.tensors[y].shape)
    for name, rank in ((a, rank_a), (b, rank_b)):
        shape = graph.tensors[name].shape
        for axis in range(rank - 2):
            if shape[axis] != 1:
                d.eq((name, axis), (y, y_rank - rank + axis))


def _concat(d: _Dims, node: Node, graph: Graph) -> None:
    y = node.outputs[0]
    rank = len(graph.tensors[y].shape)
    axis = int(node.attributes.get("axis", 0)) % rank
    parts = [n for n in node.inputs if n]
    for name in parts:
        for other in range(rank):
            if other != axis:
                d.eq((name, other), (y, other))
    block_in = [x for x in (d.dim(n, axis) for n in parts) if x is not None]
    out = d.dim(y, axis)
    if out is not None and block_in:
        d.blocks.append((block_in, [out]))


def _split(d: _Dims, node: Node, graph: Graph) -> None:
    x = node.inputs[0]
    rank = len(graph.tensors[x].shape)
    axis = int(node.attributes.get("axis", 0)) % rank
    for out in node.outputs:
        for other in range(rank):
            if other != axis:
                d.eq((x, other), (out, other))
    dim = d.dim(x, axis)
    if dim is not None:
        d.frozen.append((f"{node.op_type} node {node.name!r} splits", dim))


def _transpose(d: _Dims, node: Node, graph: Graph) -> None:
    x, y = node.inputs[0], node.outputs[0]
    rank = len(graph.tensors[x].shape)
    perm = node.attributes.get("perm") or list(reversed(range(rank)))
    for out_axis, in_axis in enumerate(perm):
        d.eq((x, int(in_axis)), (y, out_axis))


def _reshape(d: _Dims, node: Node, graph: Graph) -> None:
    x, y = node.inputs[0], node.outputs[0]
    _reshape_blocks(d, x, y)
    if node.op_type == "Reshape" and len(node.inputs) > 1:
        _tie_shape(d, node.inputs[1], y)


def _reshape_blocks(d: _Dims, x: str, y: str) -> None:
    """Pair the non-unit dimensions of x and y into blocks of equal product."""
    in_shape, out_shape = d.graph.tensors[x].shape, d.graph.tensors[y].shape
    ins = [a for a, e in enumerate(in_shape) if e != 1]
    outs = [a for a, e in enumerate(out_shape) if e != 1]
    i = j = 0
    while i < len(ins) and j < len(outs):
        block_in, block_out = [ins[i]], [outs[j]]
        prod_in, prod_out = in_shape[ins[i]], out_shape[outs[j]]
        i, j = i + 1, j + 1
        while prod_in != prod_out:
            if prod_in < prod_out and i < len(ins):
                block_in.append(ins[i])
                prod_in *= in_shape[ins[i]]
                i += 1
            elif prod_out < prod_in and j < len(outs):
                block_out.append(outs[j])
                prod_out *= out_shape[outs[j]]
                j += 1
            else:
                return  # sizes disagree: not a reshape we understand; leave it unrelated
        if len(block_in) == 1 and len(block_out) == 1:
            d.eq((x, block_in[0]), (y, block_out[0]))
        else:
            d.blocks.append(([d.ids[(x, a)] for a in block_in], [d.ids[(y, a)] for a in block_out]))


def _tie_shape(d: _Dims, constant: str, output: str) -> None:
    """Element i of an int64 shape constant gives the size of the output's dimension i."""
    if not constant:
        return
    rank = len(d.graph.tensors[output].shape)
    length = int(np.prod(d.graph.tensors[constant].shape, dtype=np.int64))
    for element in range(min(rank, length)):
        # Expand right-aligns a short shape against its input; its output has the longer rank.
        dim = d.dim(output, rank - length + element if length < rank else element)
        if dim is not None:
            d.shape_ties.append((constant, element, dim))


def _expand(d: _Dims, node: Node, graph: Graph) -> None:
    d.broadcast([node.inputs[0]], node.outputs[0])
    _tie_shape(d, node.inputs[1], node.outputs[0])


def _constant_of_shape(d: _Dims, node: Node, graph: Graph) -> None:
    _tie_shape(d, node.inputs[0], node.outputs[0])


def _reduce_axes(node: Node, graph: Graph) -> list[int]:
    rank = len(graph.tensors[node.inputs[0]].shape)
    if "axes" in node.attributes:
        axes = list(node.attributes["axes"])
    elif len(node.inputs) > 1 and node.inputs[1]:
        axes = [int(a) for a in np.asarray(graph.initializer(node.inputs[1])).ravel()]
    else:
        axes = list(range(rank))
    return sorted(int(a) % rank for a in axes)


def _reduce(d: _Dims, node: Node, graph: Graph) -> None:
    x, y = node.inputs[0], node.outputs[0]
    rank = len(graph.tensors[x].shape)
    axes = set(_reduce_axes(node, graph))
    keepdims = int(node.attributes.get("keepdims", 1))
    out_axis = 0
    for axis in range(rank):
        if axis in axes:
            out_axis += keepdims
            continue
        d.eq((x, axis), (y, out_axis))
        out_axis += 1


def _slice_axes(node: Node, graph: Graph, offset: int) -> dict[int, tuple[int, int, int]]:
    """{axis: (start, end, step)} from a Slice's (or SliceGrad's) int64 constants."""

    def values(position: int) -> list[int] | None:
        if position < len(node.inputs) and node.inputs[position]:
            return [int(v) for v in np.asarray(graph.initializer(node.inputs[position])).ravel()]
        return None

    starts, ends = values(offset) or [], values(offset + 1) or []
    axes = values(offset + 2) or list(range(len(starts)))
    steps = values(offset + 3) or [1] * len(starts)
    return {a: (s, e, st) for a, s, e, st in zip(axes, starts, ends, steps, strict=False)}


def _slice(d: _Dims, node: Node, graph: Graph, x: str, y: str, offset: int) -> None:
    rank = len(graph.tensors[x].shape)
    sliced = {a % rank: v for a, v in _slice_axes(node, graph, offset).items()}
    for axis in range(rank):
        whole = graph.tensors[x].shape[axis] == graph.tensors[y].shape[axis]
        if axis not in sliced or whole:
            d.eq((x, axis), (y, axis))
        else:
            dim = d.dim(x, axis)
            if dim is not None:
                d.frozen.append((f"{node.op_type} node {node.name!r} slices", dim))


def _slice_rule(d: _Dims, node: Node, graph: Graph) -> None:
    _slice(d, node, graph, node.inputs[0], node.outputs[0], 1)


def _slice_grad(d: _Dims, node: Node, graph: Graph) -> None:
    # SliceGrad(dY, shape, starts, ends, axes?, steps?) -> dX of `shape`: dX is the Slice's X.
    _slice(d, node, graph, node.outputs[0], node.inputs[0], 2)
    _tie_shape(d, node.inputs[1], node.outputs[0])


def _gather(d: _Dims, node: Node, graph: Graph) -> None:
    x, indices, y = node.inputs[0], node.inputs[1], node.outputs[0]
    rank = len(graph.tensors[x].shape)
    axis = int(node.attributes.get("axis", 0)) % rank
    index_rank = len(graph.tensors[indices].shape)
    for a in range(axis):
        d.eq((x, a), (y, a))
    for a in range(index_rank):
        d.eq((indices, a), (y, axis + a))
    for a in range(axis + 1, rank):
        d.eq((x, a), (y, a - 1 + index_rank))
    dim = d.dim(x, axis)
    if dim is not None:
        d.frozen.append((f"Gather node {node.name!r} indexes", dim))


def _loss(d: _Dims, node: Node, graph: Graph) -> None:
    scores, labels = node.inputs[:2]
    d.eq((scores, 0), (labels, 0))
    if len(node.outputs) > 1 and node.outputs[1]:
        d.eq_all(scores, node.outputs[1])
    if graph.tensors[node.outputs[0]].shape:  # reduction "none": one loss per sample
        d.eq((labels, 0), (node.outputs[0], 0))


def _loss_grad(d: _Dims, node: Node, graph: Graph) -> None:
    _, log_prob, labels = node.inputs[:3]
    d.eq_all(log_prob, node.outputs[0])
    d.eq((log_prob, 0), (labels, 0))


_ELEMENTWISE = (
    "Add Sub Mul Div Sum Pow Greater Less GreaterOrEqual LessOrEqual Equal And Or Where Max Min"
)
_UNARY = (
    "Relu Neg Sigmoid HardSigmoid Clip Cast Dropout Softmax LogSoftmax Identity Sqrt Exp Log "
    "Tanh Abs Floor Ceil"
)

RULES: dict[str, Rule] = {
    **dict.fromkeys(_ELEMENTWISE.split(), _elementwise),
    **dict.fromkeys(_UNARY.split(), _first_input_like),
    **dict.fromkeys(
        [
            "ReluGrad",
            "SigmoidGrad",
            "SoftmaxGrad_13",
            "LogSoftmaxGrad_13",
            "DropoutGrad",
            "SGDOptimizer",
        ],
        _grad_like,
    ),
    "Conv": _leading(1, (0, 0)),
    "ConvGrad": _conv_grad,
    "MaxPool": _max_pool,
    "AveragePool": _max_pool,
    "GlobalAveragePool": _max_pool,
    "MaxPoolGrad": _leading(2, (0, 0)),
    "AveragePoolGrad": _leading(2, (0, 0)),
    "BatchNormInternal": _batch_norm,
    "BatchNormalization": _batch_norm,
    "BatchNormalizationGrad": _batch_norm_grad,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Concat": _concat,
    "Split": _split,
    "Transpose": _transpose,
    "Reshape": _reshape,
    "Flatten": _reshape,
    "Squeeze": _reshape,
    "Unsqueeze": _reshape,
    "Expand": _expand,
    "ConstantOfShape": _constant_of_shape,
    "ReduceSum": _reduce,
    "ReduceMean": _reduce,
    "Slice": _slice_rule,
    "SliceGrad": _slice_grad,
    "Gather": _gather,
    "SoftmaxCrossEntropyLoss": _loss,
    "SoftmaxCrossEntropyLossGrad": _loss_grad,
}


# --- solving --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BatchDims:
    """The batch dimensions of a graph: which axes of which tensors scale with the batch."""

    batch: int
    axes: dict[str, tuple[int, ...]]  # tensor -> batch-carrying axes (absent: none)
    constants: dict[str, tuple[int, ...]]  # int64 shape constant -> elements to rescale

    def carries_batch(self, names: Sequence[str]) -> bool:
        return any(self.axes.get(n) for n in names if n)


def batch_dims(graph: Graph) -> BatchDims:
    """Find the batch dimensions of a training graph (see the module docstring)."""
    if graph.meta is None:
        raise BadInputError(f"{graph.path}: --measure-batch needs a training graph's metadata")
    batch = graph.meta.batch
    d = _Dims(graph)
    for node in graph.nodes:
        RULES.get(node.op_type, _same_shape)(d, node, graph)
    for name in graph.meta.data_inputs:
        tensor = graph.tensors.get(name)
        if tensor is None or not tensor.shape or tensor.shape[0] != batch:
            raise BadInputError(
                f"{graph.path}: data input {name!r}: expected axis 0 to be the batch {batch}, "
                f"got shape {list(tensor.shape) if tensor else None}"
            )
        d.mark(d.ids[(name, 0)])
    _propagate_blocks(d)
    return _collect(graph, d, batch)


def _propagate_blocks(d: _Dims) -> None:
    changed = True
    while changed:
        changed = False
        for block_in, block_out in d.blocks:
            in_batched = any(d.is_batched(x) for x in block_in)
            out_batched = any(d.is_batched(x) for x in block_out)
            if in_batched and not out_batched:
                changed |= d.mark(block_out[0])
            elif out_batched and not in_batched:
                changed |= d.mark(block_in[0])


def _collect(graph: Graph, d: _Dims, batch: int) -> BatchDims:
    axes: dict[str, list[int]] = {}
    for dim, (name, axis) in enumerate(d.names):
        if d.is_batched(dim):
            tensor = graph.tensors[name]
            if tensor.kind in ("parameter", "updated_parameter", "constant"):
                raise BadInputError(
                    f"{graph.path}: tensor {name!r} ({tensor.kind}) axis {axis}: the batch "
                    "analysis says it carries the batch, which a "
                    f"{tensor.kind} cannot; cannot rescale this graph (drop --measure-batch)"
                )
            if tensor.shape[axis] % batch:
                raise BadInputError(
                    f"{graph.path}: tensor {name!r} axis {axis}: extent {tensor.shape[axis]} "
                    f"carries the batch but is not a multiple of it ({batch})"
                )
            axes.setdefault(name, []).append(axis)
    for what, dim in d.frozen:
        if d.is_batched(dim):
            name, axis = d.names[dim]
            raise BadInputError(
                f"{graph.path}: {what} the batch axis {axis} of {name!r}; cannot rescale "
                "(drop --measure-batch)"
            )
    constants: dict[str, dict[int, bool]] = {}
    for constant, element, dim in d.shape_ties:
        if constant not in graph.initializer_names:
            raise BadInputError(
                f"{graph.path}: shape input {constant!r}: expected an int64 initializer "
                "(a computed shape cannot be rescaled)"
            )
        value = int(np.asarray(graph.initializer(constant)).ravel()[element])
        if value in (0, -1):
            continue
        scaled = d.is_batched(dim)
        seen = constants.setdefault(constant, {})
        if seen.get(element, scaled) != scaled:
            raise BadInputError(
                f"{graph.path}: shape constant {constant!r} element {element} is shared by a "
                "batch dimension and another one; cannot rescale (drop --measure-batch)"
            )
        seen[element] = scaled
    return BatchDims(
        batch=batch,
        axes={name: tuple(sorted(set(a))) for name, a in axes.items()},
        constants={
            name: tuple(sorted(e for e, s in elements.items() if s))
            for name, elements in constants.items()
            if any(elements.values())
        },
    )


def rebatch(graph: Graph, batch: int, dims: BatchDims | None = None) -> Graph:
    """The graph at another batch: shapes, shape constants and metadata rescaled.

    The result shares nodes with ``graph``; its ``sha256`` is the source's (it is no file).
    """
    dims = dims or batch_dims(graph)
    old = dims.batch
    if batch < 1:
        raise BadInputError(f"--measure-batch: expected a positive batch, got {batch}")

    def scale(extent: int) -> int:
        return extent // old * batch

    tensors: dict[str, Tensor] = {}
    for name, tensor in graph.tensors.items():
        axes = dims.axes.get(name, ())
        shape = tuple(scale(e) if a in axes else e for a, e in enumerate(tensor.shape))
        tensors[name] = dataclasses.replace(tensor, shape=shape)
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    for init in model.graph.initializer:
        elements = dims.constants.get(init.name)
        if elements:
            values = numpy_helper.to_array(init).copy()
            flat = values.reshape(-1)
            for element in elements:
                flat[element] = scale(int(flat[element]))
            init.CopyFrom(numpy_helper.from_array(values, init.name))
    for info in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        if info.name in tensors and info.type.HasField("tensor_type"):
            shape_proto = info.type.tensor_type.shape
            for dim_proto, extent in zip(shape_proto.dim, tensors[info.name].shape, strict=False):
                dim_proto.dim_value = extent
    assert graph.meta is not None
    meta = dataclasses.replace(graph.meta, batch=batch)
    return dataclasses.replace(graph, model=model, tensors=tensors, meta=meta)


def describe(dims: BatchDims, graph: Graph) -> dict[str, Any]:
    """Counts for the manifest: how many tensors and shape constants carry the batch."""
    return {
        "batch_tensors": len(dims.axes),
        "batch_constants": len(dims.constants),
        "tensors": len(graph.tensors),
    }
