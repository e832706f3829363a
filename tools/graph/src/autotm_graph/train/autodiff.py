"""Reverse-mode differentiation of the forward graph, node by node.

The engine walks the forward nodes (the loss last) in reverse. For each node that has a
gradient at one of its outputs and an input that needs one, it calls the op's gradient builder
(:mod:`.gradients`), which emits backward nodes through a :class:`GradContext`. A tensor
consumed by several nodes collects one contribution per use; they are summed (one ``Sum``)
as soon as the last one exists, so partial gradients die early. When a parameter's gradient
is complete the engine calls ``on_parameter`` at once: the SGD update lands right after the
gradient it needs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from autotm_schemas import BadInputError

from ..opset import FORWARD, MS
from .graph import WorkGraph, attributes

# ops the training graph writes that no inference graph contains (canonical forms, the loss)
_WRITTEN: dict[tuple[str, str], tuple[int, ...]] = {
    (MS, "BatchNormInternal"): (0, 1, 2),
    (MS, "Gelu"): (0,),
    ("", "SoftmaxCrossEntropyLoss"): (0,),
}


def differentiable_inputs(node: onnx.NodeProto) -> tuple[int, ...]:
    """Input positions of ``node`` that a gradient flows to."""
    written = _WRITTEN.get((node.domain, node.op_type))
    if written is not None:
        return written
    return FORWARD[node.op_type].differentiable


class GradContext:
    """What a gradient builder sees of one forward node and how it emits backward nodes."""

    def __init__(self, engine: Engine, node: onnx.NodeProto, grads_out: list[str | None]) -> None:
        self.engine = engine
        self.g: WorkGraph = engine.g
        self.node = node
        self.attrs: dict[str, Any] = attributes(node)
        self._grads_out = grads_out
        self.given: dict[int, list[str]] = defaultdict(list)

    def x(self, i: int) -> str:
        return self.node.input[i] if i < len(self.node.input) else ""

    def y(self, i: int) -> str:
        return self.node.output[i] if i < len(self.node.output) else ""

    def dy(self, i: int = 0) -> str | None:
        return self._grads_out[i] if i < len(self._grads_out) else None

    def needs(self, i: int) -> bool:
        name = self.x(i)
        return bool(name) and name in self.engine.needs_grad

    def shape(self, name: str) -> tuple[int, ...]:
        return self.g.shape(name)

    def dtype(self, name: str) -> np.dtype[Any]:
        return self.g.info[name].dtype

    def const(self, value: Any, hint: str, dtype: Any = None) -> str:
        array = np.asarray(value, dtype=dtype)
        return self.g.const(array, f"{self.node.name}_{hint}")

    def tmp(self, hint: str, shape: Sequence[int], dtype: Any = np.float32) -> str:
        return self.g.tensor(f"{self.node.name}_{hint}", shape, dtype)

    def emit(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str],
        domain: str = "",
        **attrs: Any,
    ) -> None:
        self.engine.emit(self.g.node(op_type, inputs, outputs, domain=domain, **attrs))

    def grad_for(self, i: int) -> str:
        """A new tensor that will hold (a contribution to) the gradient of input ``i``."""
        name = self.engine.new_grad_name(self.x(i))
        self.given[i].append(name)
        return name

    def give(self, i: int, existing: str) -> None:
        """Record an existing tensor (no new node) as the gradient contribution to input i."""
        self.given[i].append(existing)


Builder = Callable[[GradContext], None]


class Engine:
    """Runs the reverse pass; see the module docstring."""

    def __init__(
        self,
        g: WorkGraph,
        nodes: Sequence[onnx.NodeProto],
        loss: str,
        seed: str,
        parameters: Sequence[str],
        builders: dict[str, Builder],
        on_parameter: Callable[[str, str], None],
        out: list[onnx.NodeProto],
    ) -> None:
        self.g = g
        self.nodes = list(nodes)
        self.builders = builders
        self.on_parameter = on_parameter
        self.out = out
        self.parameters = set(parameters)
        self.needs_grad = self._needs_grad(loss)
        self.pending: dict[str, int] = defaultdict(int)
        for node in self.nodes:
            if self._active(node):
                for i in differentiable_inputs(node):
                    if i < len(node.input) and node.input[i] in self.needs_grad:
                        self.pending[node.input[i]] += 1
        self.contributions: dict[str, list[str]] = defaultdict(list)
        self.done: dict[str, str] = {loss: seed}

    def _needs_grad(self, loss: str) -> set[str]:
        """Tensors on a path from a trainable parameter to the loss."""
        from_params = set(self.parameters)
        for node in self.nodes:
            if any(
                i < len(node.input) and node.input[i] in from_params
                for i in differentiable_inputs(node)
            ):
                from_params.update(o for o in node.output if o)
        to_loss = {loss}
        for node in reversed(self.nodes):
            if any(o in to_loss for o in node.output):
                to_loss.update(n for n in node.input if n)
        return from_params & to_loss

    def _active(self, node: onnx.NodeProto) -> bool:
        return any(o in self.needs_grad for o in node.output)

    def new_grad_name(self, tensor: str) -> str:
        many = self.pending.get(tensor, 1) > 1 or len(self.contributions[tensor]) > 0
        return self.g.tensor(
            f"{tensor}_grad" + ("_part" if many else ""),
            self.g.shape(tensor),
            self.g.info[tensor].dtype,
        )

    def emit(self, node: onnx.NodeProto) -> None:
        self.out.append(node)

    def run(self) -> None:
        for node in reversed(self.nodes):
            if not self._active(node):
                continue
            for i, name in enumerate(node.input):
                if name in self.needs_grad and i not in differentiable_inputs(node):
                    raise BadInputError(
                        f"{self.g.where(node)}: input {i} ({name!r}) needs a gradient, which "
                        f"{node.op_type} does not provide there"
                    )
            grads_out = [self.done.get(o) if o else None for o in node.output]
            if all(g is None for g in grads_out):
                continue
            key = node.op_type if node.domain != MS else f"{MS}:{node.op_type}"
            builder = self.builders.get(key)
            if builder is None:
                raise BadInputError(f"{self.g.where(node)}: no gradient for {key}")
            ctx = GradContext(self, node, grads_out)
            builder(ctx)
            for i in differentiable_inputs(node):
                name = ctx.x(i)
                if not name or name not in self.needs_grad:
                    continue
                if not ctx.given.get(i):
                    raise AssertionError(f"gradient builder {key} gave nothing for input {i}")
                self.contributions[name].extend(ctx.given[i])
                self.pending[name] -= 1
                if self.pending[name] == 0:
                    self._complete(name)

    def _complete(self, tensor: str) -> None:
        parts = self.contributions.pop(tensor)
        if len(parts) == 1:
            total = parts[0]
        else:
            info = self.g.info[tensor]
            total = self.g.tensor(f"{tensor}_grad", info.shape, info.dtype)
            self.emit(self.g.node("Sum", parts, [total]))
        self.done[tensor] = total
        if tensor in self.parameters:
            self.on_parameter(tensor, total)
