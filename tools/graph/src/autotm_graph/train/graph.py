"""The mutable working graph the training-graph builder edits.

ONNX protobufs are awkward to edit in place (repeated fields, no name index), so the builder
keeps nodes as a Python list of ``NodeProto``, constants as numpy arrays, and the static shape
and dtype of every tensor in one dictionary. Shapes are known for every tensor at every step:
forward tensors get theirs from ONNX shape inference, node by node, as they are created;
gradient builders declare the shapes of what they create (a gradient has its tensor's shape).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from autotm_schemas import BadInputError
from onnx import defs, helper, numpy_helper, shape_inference

from ..opset import OPSET_IMPORTS


@dataclass(frozen=True)
class TensorInfo:
    """Static shape and element type of one tensor."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize


class Names:
    """Hands out tensor and node names that are unique in the graph."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self._taken = set(taken)

    def take(self, name: str) -> None:
        self._taken.add(name)

    def __contains__(self, name: str) -> bool:
        return name in self._taken

    def fresh(self, hint: str) -> str:
        if hint not in self._taken:
            self._taken.add(hint)
            return hint
        k = 1
        while f"{hint}_{k}" in self._taken:
            k += 1
        name = f"{hint}_{k}"
        self._taken.add(name)
        return name


@dataclass
class WorkGraph:
    """Nodes, constants and shapes of the graph under construction."""

    source: str  # the file it came from, for error messages
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, TensorInfo] = field(default_factory=dict)
    names: Names = field(default_factory=Names)
    node_names: Names = field(default_factory=Names)

    def const(self, value: np.ndarray, hint: str) -> str:
        """Add a constant tensor; return its name."""
        name = self.names.fresh(hint)
        array = np.asarray(value)
        self.consts[name] = array
        self.info[name] = TensorInfo(tuple(int(d) for d in array.shape), array.dtype)
        return name

    def tensor(self, hint: str, shape: Sequence[int], dtype: Any) -> str:
        """Declare a new tensor with a known shape; return its name."""
        name = self.names.fresh(hint)
        self.info[name] = TensorInfo(tuple(int(d) for d in shape), np.dtype(dtype))
        return name

    def node(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str],
        domain: str = "",
        hint: str | None = None,
        **attrs: Any,
    ) -> onnx.NodeProto:
        """Make a node (not yet placed anywhere) with a unique name."""
        name = self.node_names.fresh(hint or (outputs[0] if outputs and outputs[0] else op_type))
        attrs = {k: v for k, v in attrs.items() if v is not None}
        return helper.make_node(
            op_type, list(inputs), list(outputs), name=name, domain=domain, **attrs
        )

    def shape(self, name: str) -> tuple[int, ...]:
        return self.info[name].shape

    def where(self, node: onnx.NodeProto) -> str:
        return f"{self.source}: node {node.name or '(unnamed)'!r} ({node.op_type})"


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as Python values (strings decoded, tensors as numpy arrays)."""
    values: dict[str, Any] = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        values[attr.name] = value
    return values


def set_attribute(node: onnx.NodeProto, name: str, value: Any) -> None:
    """Replace (or add) one attribute of a node."""
    for i, attr in enumerate(node.attribute):
        if attr.name == name:
            del node.attribute[i]
            break
    node.attribute.append(helper.make_attribute(name, value))


def type_proto(info: TensorInfo) -> onnx.TypeProto:
    return helper.make_tensor_type_proto(helper.np_dtype_to_tensor_dtype(info.dtype), info.shape)


def info_from_type(tp: onnx.TypeProto, what: str) -> TensorInfo:
    """A static TensorInfo from a TypeProto; BadInputError when a dimension is not fixed."""
    tt = tp.tensor_type
    if not tt.elem_type or not tt.HasField("shape"):
        raise BadInputError(f"{what}: expected a tensor with a known shape")
    dims = []
    for d in tt.shape.dim:
        if not d.HasField("dim_value"):
            raise BadInputError(
                f"{what}: expected a static shape, got dimension {d.dim_param or '?'!r}"
            )
        dims.append(int(d.dim_value))
    return TensorInfo(tuple(dims), helper.tensor_dtype_to_np_dtype(tt.elem_type))


def infer_outputs(graph: WorkGraph, node: onnx.NodeProto) -> list[TensorInfo]:
    """ONNX shape inference for one standard node, constant inputs passed as data."""
    try:
        schema = defs.get_schema(node.op_type, OPSET_IMPORTS[""], node.domain)
    except defs.SchemaError:
        raise BadInputError(f"{graph.where(node)}: op not known to ONNX at opset 17") from None
    types = {n: type_proto(graph.info[n]) for n in node.input if n}
    data = {
        n: numpy_helper.from_array(graph.consts[n], n)
        for n in node.input
        if n in graph.consts and graph.consts[n].size <= 1 << 16
    }
    try:
        out = shape_inference.infer_node_outputs(
            schema,
            node,
            types,
            data,
            opset_imports=[helper.make_opsetid(d, v) for d, v in OPSET_IMPORTS.items()],
            ir_version=8,
        )
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInputError(f"{graph.where(node)}: shape inference failed: {detail}") from None
    infos = []
    for name in node.output:
        if not name:
            continue
        if name not in out:
            raise BadInputError(f"{graph.where(node)}: shape inference gave no type for {name!r}")
        infos.append(info_from_type(out[name], f"{graph.where(node)}: output {name!r}"))
    return infos
