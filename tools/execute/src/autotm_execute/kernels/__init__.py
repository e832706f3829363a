"""The kernel library: one kernel per op a training graph from autotm-graph contains.

Importing this package registers every kernel (the explicit imports below, one module per
family). :func:`bind_node` binds a node of a loaded graph; ``lookup``/``supported_ops`` from
:mod:`autotm_execute.kernels.base` give the registry itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from autotm_graph.ir import Graph, Node
from autotm_schemas import BadInputError

from autotm_execute.kernels import (  # noqa: F401  (imported to register their kernels)
    batchnorm,
    conv,
    dropout,
    elementwise,
    erf,
    gemm,
    layernorm,
    loss,
    optimizer,
    pad,
    pool,
    reduce,
    shape,
    softmax,
    stochastic,
)
from autotm_execute.kernels.base import (
    BoundKernel,
    KernelFactory,
    TensorSpec,
    lookup,
    register,
    supported_ops,
)
from autotm_execute.kernels.op import BindError, Kernel
from autotm_execute.kernels.stochastic import STREAM_ATTRIBUTE, stream_key

__all__ = [
    "BindError",
    "BoundKernel",
    "Kernel",
    "KernelFactory",
    "TensorSpec",
    "bind_node",
    "constant_value",
    "lookup",
    "register",
    "supported_ops",
    "tensor_spec",
]

#: Constant inputs up to this size travel with their spec (``TensorSpec.value``): enough for
#: axes, shapes, slice bounds and scalars, never a weight matrix.
CONSTANT_VALUE_LIMIT = 1 << 16


def constant_value(graph: Graph, name: str) -> np.ndarray | None:
    """The data of a small tensor known before the iteration runs, else None.

    Initializers and outputs of ``Constant`` nodes qualify. Parameters do not: they are
    updated, and kernels must read them from their buffers.
    """
    tensor = graph.tensors[name]
    if tensor.nbytes > CONSTANT_VALUE_LIMIT or tensor.kind in ("parameter", "input"):
        return None
    if name in graph.initializer_names:
        return graph.initializer(name)
    if tensor.producer is not None:
        producer = graph.nodes[tensor.producer]
        if producer.op_type == "Constant" and producer.domain == "":
            value: Any = producer.attributes.get("value")
            if isinstance(value, np.ndarray):
                return value
    return None


def tensor_spec(graph: Graph, name: str) -> TensorSpec | None:
    """The spec of a node's input or output; None for the empty name of an omitted one."""
    if not name:
        return None
    tensor = graph.tensors[name]
    return TensorSpec(tuple(tensor.shape), np.dtype(tensor.dtype), constant_value(graph, name))


def bind_node(graph: Graph, node: Node, seed: int = 0) -> BoundKernel:
    """Bind the kernel of one node; BadInputError naming the node and op when impossible.

    ``seed`` is the run's seed: random kernels (Bernoulli, RandomUniformLike) draw from a
    stream derived from it, the node's first output name and its ``seed`` attribute
    (:func:`autotm_execute.kernels.stochastic.stream_key`), the same in every iteration.
    """
    op = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
    where = f"{graph.path}: node {node.name!r} ({op})"
    try:
        factory = lookup(node.domain, node.op_type)
    except KeyError as exc:
        raise BadInputError(f"{where}: {exc.args[0]}") from None
    inputs = [tensor_spec(graph, name) for name in node.inputs]
    outputs = [tensor_spec(graph, name) for name in node.outputs]
    attributes = dict(node.attributes)
    if getattr(factory, "needs_stream", False):
        key = stream_key(
            seed, node.outputs[0] if node.outputs else node.name, attributes.get("seed")
        )
        attributes[STREAM_ATTRIBUTE] = key
    try:
        return factory.bind(attributes, inputs, outputs)
    except BindError as exc:
        raise BadInputError(f"{where}: {exc}") from None
