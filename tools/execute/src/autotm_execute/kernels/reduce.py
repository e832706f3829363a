"""ReduceSum and ReduceMean over constant axes (numpy reductions with ``out=``)."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

from autotm_execute.kernels.base import TensorSpec, register
from autotm_execute.kernels.op import BindError, Kernel


class _Reduce(Kernel):
    """Axes come from input 1 (opset 13+ ReduceSum, opset 18+ ReduceMean), which must be a
    constant known at bind time, or from the ``axes`` attribute (ReduceMean before 18)."""

    inputs = "X axes?"
    attributes: ClassVar = {"keepdims": 1, "noop_with_empty_axes": 0, "axes": None}
    numpy_name: ClassVar[str] = ""

    def setup(self) -> Sequence[TensorSpec | None]:
        spec = self.float_input(0)
        rank = len(spec.shape)
        if self.has_input(1):
            if self.attrs["axes"] is not None:
                raise BindError("axes given both as attribute and as input 1")
            raw = [int(a) for a in self.const(1).reshape(-1)]
        else:
            raw = [int(a) for a in self.attrs["axes"] or []]
        self.noop = not raw and bool(self.attrs["noop_with_empty_axes"])
        axes = [self.axis(a, rank, "axes entry") for a in raw] or list(range(rank))
        if len(set(axes)) != len(axes):
            raise BindError(f"axes {raw} repeat an axis")
        self.axes = tuple(sorted(axes))
        self.keepdims = bool(self.attrs["keepdims"])
        if self.noop:
            return [TensorSpec(spec.shape, spec.dtype)]
        shape = [
            1 if i in self.axes else n
            for i, n in enumerate(spec.shape)
            if self.keepdims or i not in self.axes
        ]
        return [TensorSpec(tuple(shape), spec.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        if self.noop:
            xp.copyto(outputs[0], inputs[0])
            return
        getattr(xp, self.numpy_name)(
            inputs[0], axis=self.axes, keepdims=self.keepdims, out=outputs[0]
        )


@register("", "ReduceSum")
class ReduceSum(_Reduce):
    numpy_name = "sum"


@register("", "ReduceMean")
class ReduceMean(_Reduce):
    numpy_name = "mean"
