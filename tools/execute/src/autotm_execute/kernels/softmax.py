"""Softmax and LogSoftmax over one axis (opset-13 semantics) and their gradients.

Temporaries are the reduced per-row statistics (max, sum): the size of the input divided by
the length of the softmax axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

from autotm_execute.kernels.base import Array, TensorSpec, register
from autotm_execute.kernels.op import BindError, Kernel, same_as, spec_text


def log_softmax(xp: ModuleType, x: Array, y: Array, axis: int) -> None:
    """``y = (x - max) - log(sum(exp(x - max)))`` along ``axis``, using y as the temporary.

    ``x - max`` is computed twice rather than kept, so that no tensor-size temporary is needed
    and the result rounds as onnxruntime's (shift first, then subtract the log-sum).
    """
    top = xp.max(x, axis=axis, keepdims=True)
    xp.subtract(x, top, out=y)
    xp.exp(y, out=y)
    total = xp.sum(y, axis=axis, keepdims=True)
    xp.log(total, out=total)
    xp.subtract(x, top, out=y)
    xp.subtract(y, total, out=y)


class _AxisKernel(Kernel):
    attributes: ClassVar = {"axis": -1}

    def setup(self) -> Sequence[TensorSpec | None]:
        spec = self.float_input(0)
        for index in range(1, len(self.ins)):
            other = self.float_input(index)
            if other.shape != spec.shape:
                raise BindError(f"inputs differ in shape: {spec_text(spec)} vs {spec_text(other)}")
        self.ax = self.axis(int(self.attrs["axis"]), len(spec.shape))
        return [same_as(spec)]


@register("", "Softmax")
class Softmax(_AxisKernel):
    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        x, y, axis = inputs[0], outputs[0], self.ax
        xp.subtract(x, xp.max(x, axis=axis, keepdims=True), out=y)
        xp.exp(y, out=y)
        xp.divide(y, xp.sum(y, axis=axis, keepdims=True), out=y)


@register("", "LogSoftmax")
class LogSoftmax(_AxisKernel):
    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        log_softmax(xp, inputs[0], outputs[0], self.ax)


@register("com.microsoft", "SoftmaxGrad_13")
class SoftmaxGrad13(_AxisKernel):
    """``dX = Y * (dY - sum(dY * Y, axis))``."""

    inputs = "dY Y"
    outputs = "dX"

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        dy, y = inputs
        dx = outputs[0]
        xp.multiply(dy, y, out=dx)
        total = xp.sum(dx, axis=self.ax, keepdims=True)
        xp.subtract(dy, total, out=dx)
        xp.multiply(dx, y, out=dx)


@register("com.microsoft", "LogSoftmaxGrad_13")
class LogSoftmaxGrad13(_AxisKernel):
    """``dX = dY - exp(Y) * sum(dY, axis)``."""

    inputs = "dY Y"
    outputs = "dX"

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        dy, y = inputs
        dx = outputs[0]
        total = xp.sum(dy, axis=self.ax, keepdims=True)
        xp.exp(y, out=dx)
        xp.multiply(dx, total, out=dx)
        xp.subtract(dy, dx, out=dx)
