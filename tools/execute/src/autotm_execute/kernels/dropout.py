"""Dropout with a reproducible mask, and onnxruntime-training's DropoutGrad.

The executor's ``--verify`` needs bit-identical reruns, and a kernel must not keep hidden
state, so the mask is a pure function of the node's ``seed`` attribute (0 when absent) and
of each element's flat index: ``keep = hash32(index ^ mix(seed)) >= ratio * 2**32`` with
the ``lowbias32`` integer hash (xor-shift-multiply, good avalanche). Every run of a node draws
the same mask; different nodes differ by seed. The hash runs on ``xp`` in uint32 arithmetic
(wrapping multiplies), so numpy and cupy draw identical masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from autotm_execute.kernels.base import Array, TensorSpec, register
from autotm_execute.kernels.op import BindError, Kernel, ScratchLayout, same_as, spec_text, view

#: Flat indices are built as row * ROW + column from two small ranges, never a full arange.
ROW = 4096
_M1, _M2, _GOLDEN = np.uint32(0x7FEB352D), np.uint32(0x846CA68B), 0x9E3779B9


def _mix_seed(seed: int) -> np.uint32:
    """A 32-bit value derived from any integer seed (splitmix-style)."""
    value = (int(seed) * _GOLDEN + 0x632BE59B) & 0xFFFFFFFF
    value ^= value >> 16
    value = (value * 0x85EBCA6B) & 0xFFFFFFFF
    value ^= value >> 13
    return np.uint32(value)


def keep_threshold(ratio: float) -> np.uint32:
    """The hash value at and above which an element is kept."""
    return np.uint32(min(0xFFFFFFFF, round(float(ratio) * 2.0**32)))


def keep_fraction(ratio: float, dtype: np.dtype[Any]) -> Any:
    """``1 - ratio`` in the tensor's float type: kept values are divided by it, as
    onnxruntime does (a division, not a multiplication by the rounded reciprocal)."""
    return dtype.type(1) - dtype.type(ratio)


def draw_mask(xp: ModuleType, mask: Array, seed: int, threshold: np.uint32, work: Array) -> None:
    """Fill the bool ``mask`` from the hash of each flat index; ``work`` is a uint32
    ``[2, rows, ROW]`` scratch array with ``rows * ROW >= mask.size``."""
    h, t = work[0], work[1]
    rows = h.shape[0]
    xp.multiply(xp.arange(rows, dtype=np.uint32).reshape(rows, 1), np.uint32(ROW), out=h)
    xp.add(h, xp.arange(ROW, dtype=np.uint32).reshape(1, ROW), out=h)
    xp.bitwise_xor(h, _mix_seed(seed), out=h)
    for shift, factor in ((16, _M1), (15, _M2), (16, None)):
        xp.right_shift(h, np.uint32(shift), out=t)
        xp.bitwise_xor(h, t, out=h)
        if factor is not None:
            xp.multiply(h, factor, out=h)
    flat = h.reshape(-1)[: mask.size].reshape(mask.shape)
    xp.greater_equal(flat, threshold, out=mask)


def _scalar(kernel: Kernel, index: int, default: float) -> float | None:
    """A scalar input known at bind time, the default when absent, None when only known at
    run time."""
    if not kernel.has_input(index):
        return default
    spec = kernel.x(index)
    if spec.value is None:
        return None
    return float(np.asarray(spec.value).reshape(-1)[0])


@register("", "Dropout")
class Dropout(Kernel):
    """``Y = X * mask / (1 - ratio)`` in training mode, ``Y = X`` (mask all true) otherwise
    (training_mode defaults to false and ratio to 0.5, as ONNX defines them).

    Scratch: two uint32 arrays of X's size (rounded up to whole rows of 4096) for the hash,
    plus a bool mask when the node has no mask output; none when the ratio and training mode
    are constants that disable dropout.
    """

    inputs = "X ratio? training_mode?"
    outputs = "Y mask?"
    attributes: ClassVar = {"seed": 0}

    def setup(self) -> Sequence[TensorSpec | None]:
        x = self.float_input(0)
        for index in (1, 2):
            if self.has_input(index) and self.x(index).shape not in ((), (1,)):
                raise BindError(
                    f"input {index} ({self.input_name(index)}): expected a scalar, got "
                    f"{spec_text(self.x(index))}"
                )
        self.ratio = _scalar(self, 1, 0.5)
        self.training = _scalar(self, 2, 0.0)
        self.seed = int(self.attrs["seed"])
        self.dtype = x.dtype
        off = self.training == 0.0 or self.ratio == 0.0
        self.work = None
        if not off:
            size = max(1, int(np.prod(x.shape, dtype=np.int64)))
            regions = ScratchLayout()
            self.work = regions.add((2, -(-size // ROW), ROW), np.uint32)
            if not self.has_output(1):
                self.own_mask = regions.add(x.shape, np.bool_)
            self.layout(regions)
        return [same_as(x), TensorSpec(x.shape, np.dtype(np.bool_))]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        x, y = inputs[0], outputs[0]
        mask = outputs[1] if len(outputs) > 1 else None
        ratio = self.ratio if self.ratio is not None else float(inputs[1].reshape(-1)[0])
        training = self.training
        if training is None:
            training = float(inputs[2].reshape(-1)[0])
        if self.work is None or not training or ratio == 0.0:
            xp.copyto(y, x)
            if mask is not None:
                mask.fill(True)
            return
        if mask is None:
            mask = view(scratch, self.own_mask)
        draw_mask(xp, mask, self.seed, keep_threshold(ratio), view(scratch, self.work))
        xp.divide(x, keep_fraction(ratio, self.dtype), out=y)
        xp.multiply(y, mask, out=y)


@register("com.microsoft", "DropoutGrad")
class DropoutGrad(Kernel):
    """``dX = dY * mask / (1 - ratio)``; ``dX = dY`` when ratio is 0. As onnxruntime, the
    training_mode input is accepted and ignored (the mask already says what was dropped),
    and ratio defaults to 0.5."""

    inputs = "dY mask ratio? training_mode?"
    outputs = "dX"

    def setup(self) -> Sequence[TensorSpec | None]:
        dy, mask = self.float_input(0), self.x(1)
        if mask.shape != dy.shape or mask.dtype != np.bool_:
            raise BindError(f"input 1 (mask): expected bool of dY's shape, got {spec_text(mask)}")
        self.ratio = _scalar(self, 2, 0.5)
        self.dtype = dy.dtype
        return [same_as(dy)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        dy, mask = inputs[0], inputs[1]
        dx = outputs[0]
        ratio = self.ratio if self.ratio is not None else float(inputs[2].reshape(-1)[0])
        if ratio == 0.0:
            xp.copyto(dx, dy)
            return
        xp.divide(dy, keep_fraction(ratio, self.dtype), out=dx)
        xp.multiply(dx, mask, out=dx)
