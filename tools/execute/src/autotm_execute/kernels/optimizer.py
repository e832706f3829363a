"""onnxruntime-training's SGDOptimizer: the weight update of plain SGD."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

from autotm_execute.kernels.base import TensorSpec, register
from autotm_execute.kernels.op import BindError, Kernel, same_as, spec_text


@register("com.microsoft", "SGDOptimizer")
class SGDOptimizer(Kernel):
    """``NG = -ETA * G`` and ``NW = W + NG`` (both outputs optional), as onnxruntime computes
    them, so results are bit-identical to ``W - ETA * G``.

    ETA is a one-element float tensor read on the device (no host synchronisation). When only
    NW is asked for, NW itself holds ``-ETA * G`` before W is added: NW must not alias W.
    """

    inputs = "ETA W G"
    outputs = "NW? NG?"

    def setup(self) -> Sequence[TensorSpec | None]:
        eta, w, g = self.float_input(0), self.float_input(1), self.float_input(2)
        if int(eta.nbytes // eta.dtype.itemsize) != 1:
            raise BindError(f"input 0 (ETA): expected one element, got {spec_text(eta)}")
        if w.shape != g.shape:
            raise BindError(f"inputs W and G differ in shape: {spec_text(w)} vs {spec_text(g)}")
        self.eta_shape = (1,) * len(g.shape) if g.shape else ()
        self.write_w, self.write_g = self.has_output(0), self.has_output(1)
        return [same_as(w), same_as(g)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        eta, w, g = inputs
        delta = outputs[1] if self.write_g else outputs[0]
        if delta is None:
            return
        xp.multiply(g, xp.negative(eta.reshape(self.eta_shape)), out=delta)
        if self.write_w:
            xp.add(w, delta, out=outputs[0])
