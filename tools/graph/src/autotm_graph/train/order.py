"""Execution order of the training graph, and the peak memory it implies.

The builder emits nodes in an order chosen for memory: the forward pass in the source's
topological order, then the backward pass in reverse, each node's gradient right after the
gradients it consumes are complete, partial gradients summed as soon as the last one exists,
and each SGD update right after its parameter's gradient (so the gradient dies at once, and
the activations a backward node reads die as soon as it ran). :func:`execution_order` keeps
that order wherever it is a valid topological order (a stable priority sort), so the file's
node order is the order the builder meant and is always executable.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence

import onnx

from .graph import TensorInfo


def execution_order(
    nodes: Sequence[onnx.NodeProto], available: Collection[str]
) -> list[onnx.NodeProto]:
    """A topological order that keeps ``nodes``' own order wherever dependencies allow."""
    producer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for out in node.output:
            if out:
                producer[out] = i
    waiting = [0] * len(nodes)
    users: dict[int, list[int]] = defaultdict(list)
    for i, node in enumerate(nodes):
        deps = {producer[n] for n in node.input if n and n not in available and n in producer}
        missing = [n for n in node.input if n and n not in available and n not in producer]
        if missing:
            raise ValueError(f"node {node.name!r} reads {missing[0]!r}, which nothing produces")
        waiting[i] = len(deps)
        for d in deps:
            users[d].append(i)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order: list[onnx.NodeProto] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(nodes[i])
        for u in users[i]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(nodes):
        raise ValueError("the training graph has a cycle")
    return order


def hoist_updates(
    nodes: Sequence[onnx.NodeProto], optimizer: str = "SGDOptimizer"
) -> list[onnx.NodeProto]:
    """Move each optimizer node to right after the node that completes its gradient.

    A builder may emit a few more nodes after the one producing a weight gradient (a Gemm's
    bias gradient after its weight gradient); the update should not wait for them. Its other
    inputs (learning rate, the parameter) exist from the start, so the move keeps the order
    topological.
    """
    updates = [n for n in nodes if n.op_type == optimizer]
    after: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    producer = {o: n.name for n in nodes for o in n.output if o}
    for update in updates:
        after[producer.get(update.input[2], "")].append(update)
    order: list[onnx.NodeProto] = list(after.pop("", []))
    for node in nodes:
        if node.op_type == optimizer:
            continue
        order.append(node)
        order.extend(after.pop(node.name, []))
    return order


def peak_live_bytes(
    nodes: Sequence[onnx.NodeProto],
    info: Mapping[str, TensorInfo],
    persistent: Collection[str],
    keep: Collection[str] = (),
) -> int:
    """Peak bytes of tensors that nodes produce, live from producer to last use.

    ``persistent`` tensors (parameters, constants, inputs) are not counted; ``keep`` tensors
    (graph outputs) live to the end.
    """
    last_use: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            if name:
                last_use[name] = i
    for name in keep:
        last_use[name] = len(nodes)
    frees: dict[int, list[str]] = defaultdict(list)
    live = peak = 0
    for i, node in enumerate(nodes):
        for out in node.output:
            if out and out not in persistent:
                live += info[out].nbytes
                frees[max(last_use.get(out, i), i)].append(out)
        peak = max(peak, live)
        for name in frees.pop(i, []):
            live -= info[name].nbytes
    return peak
