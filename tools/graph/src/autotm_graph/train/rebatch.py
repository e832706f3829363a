"""Re-batching a static export: the shapes a file was exported with, and how a Reshape
target written at the export batch maps to another batch.

A dynamo export fixes the batch (2, say) in every shape constant: ``[T, N*heads, d]`` is
``[197, 24, 64]`` in the file. The training batch changes the size of some input axes of a
Reshape; :func:`regroup` finds the output axis that absorbs each change by splitting the
reshape into groups of input and output axes with equal products (a reshape only merges and
splits neighbouring axes), using the export's own shapes (:func:`export_shapes`).

Which output axis of a group takes the change is ambiguous from sizes alone when the batch
is merged with another axis of the same size (``[T*N] -> [T, N]`` with T equal to the export
batch, sequence-first attention). So the builder also follows where the batch lies in each
tensor (:class:`BatchAxis`: an axis and the batch's stride inside it) from the data inputs,
through reshapes and transposes, and places the batch exactly with :func:`reshape_axis`;
the size heuristic of :func:`regroup` is the fallback where that trail is lost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper


def export_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Static tensor shapes at the export batch: the file's value_info completed by ONNX
    shape inference (big initializers stand in as inputs: only small ones carry shapes)."""
    source = model.graph
    small, stand_ins = [], []
    declared = {v.name for v in source.input}
    for init in source.initializer:
        if int(np.prod(init.dims, dtype=np.int64)) <= 1 << 16:
            small.append(init)
        elif init.name not in declared:
            stand_ins.append(helper.make_tensor_value_info(init.name, init.data_type, init.dims))
    light = helper.make_model(
        helper.make_graph(
            list(source.node),
            source.name,
            [*source.input, *stand_ins],
            list(source.output),
            initializer=small,
            value_info=list(source.value_info),
        ),
        opset_imports=list(model.opset_import),
        ir_version=model.ir_version,
        functions=list(model.functions),
    )
    with contextlib.suppress(Exception):  # inference is a help here, not a requirement
        light = onnx.shape_inference.infer_shapes(light, data_prop=True)
    shapes: dict[str, tuple[int, ...]] = {}
    g = light.graph
    for value in (*g.input, *g.value_info, *g.output):
        tt = value.type.tensor_type
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            shapes[value.name] = tuple(int(d.dim_value) for d in tt.shape.dim)
    return shapes


def resolve_reshape(
    data: tuple[int, ...], target: np.ndarray, allowzero: int
) -> tuple[int, ...] | None:
    """The output shape of Reshape(data, target): 0 copies, -1 infers."""
    dims = [int(t) for t in target]
    if not allowzero:
        dims = [data[i] if d == 0 and i < len(data) else d for i, d in enumerate(dims)]
    total = int(np.prod(data, dtype=np.int64))
    if dims.count(-1) == 1:
        known = int(np.prod([d for d in dims if d != -1], dtype=np.int64))
        if known == 0 or total % known:
            return None
        dims[dims.index(-1)] = total // known
    if any(d < 0 for d in dims) or int(np.prod(dims, dtype=np.int64)) != total:
        return None
    return tuple(dims)


def regroup(
    before: tuple[int, ...],
    target: tuple[int, ...],
    after: tuple[int, ...],
    old_batch: int | None = None,
) -> list[int] | None:
    """``target`` (a reshape of ``before``) adapted to the input ``after`` of the same rank.

    The axes split into groups of equal products; in a group whose input changed size, the
    output axis that absorbs the change is the outermost one equal to the export batch
    (``[T*N] -> [T, N]``, ``[N*windows] -> [N, windows]``), else the outermost one that
    divides (``[N, heads*d] -> [N*heads, d]``)."""
    groups: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(before) or j < len(target):
        ins, outs = [], []
        a = b = 1
        if i < len(before):
            a, i = before[i], i + 1
            ins.append(i - 1)
        if j < len(target):
            b, j = target[j], j + 1
            outs.append(j - 1)
        while a != b:
            if a < b and i < len(before):
                a, i = a * before[i], i + 1
                ins.append(i - 1)
            elif b < a and j < len(target):
                b, j = b * target[j], j + 1
                outs.append(j - 1)
            else:
                return None
        groups.append((ins, outs))
    result = list(target)
    for ins, outs in groups:
        old = int(np.prod([before[k] for k in ins], dtype=np.int64))
        new = int(np.prod([after[k] for k in ins], dtype=np.int64))
        if old == new:
            continue
        fits = [k for k in outs if (target[k] * new) % old == 0]
        exact = [k for k in fits if target[k] == old_batch]
        if not fits:
            return None
        k = (exact or fits)[0]
        result[k] = target[k] * new // old
    return result


@dataclass(frozen=True)
class BatchAxis:
    """Where the batch lies in a tensor: ``axis``, of size outer * batch * ``inner`` (the
    batch merged with ``inner`` elements of the axis to its right and outer ones to its left,
    as in ``[windows*N]`` or ``[N*heads]``)."""

    axis: int
    inner: int = 1


def reshape_axis(
    shape: Sequence[int], where: BatchAxis, out: Sequence[int], batch: int
) -> BatchAxis | None:
    """Where the batch of a tensor of ``shape`` lands when it is reshaped to ``out``: in
    row-major order the batch index is a digit of stride ``inner * prod(shape[axis+1:])`` and
    size ``batch``; the output axis that holds that digit whole. None when no axis does (the
    reshape splits the batch index over two axes: it mixes samples)."""
    stride = where.inner * int(np.prod(shape[where.axis + 1 :], dtype=np.int64))
    inner = 1  # the stride of output axis k: prod(out[k+1:])
    for k in reversed(range(len(out))):
        if inner <= stride < inner * out[k]:
            if stride % inner or (inner * out[k]) % (stride * batch):
                return None
            return BatchAxis(k, stride // inner)
        inner *= out[k]
    return None
