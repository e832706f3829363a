"""Pad (opset 11 to 19): constant, reflect, edge and wrap modes, pads and axes constant.

The output is written once per element: the data goes to the centre box, then the border.
In constant mode the border is ``2 * rank`` slabs filled with the value (for axis i, the
part before and after the centre along i, over the centre of the axes before i and the
whole of the axes after it); negative pads crop the data instead. The other modes fill the
border axis by axis from what is already written (axes before i complete, axes after i only
in their centre), each side of each axis one strided copy: ``edge`` broadcasts the outermost
slice, ``reflect`` copies the mirrored slices (the edge itself excluded), ``wrap`` the slices
from the other end. Those copies read and write one output buffer, which numpy may stage
through a temporary the size of the border slab (never the whole tensor).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from autotm_execute.kernels.base import TensorSpec, register
from autotm_execute.kernels.op import BindError, Kernel, spec_text

MODES = ("constant", "reflect", "edge", "wrap")

#: One border copy: destination index and source index into the output.
Copy = tuple[tuple[slice, ...], tuple[slice, ...]]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@register("", "Pad")
class Pad(Kernel):
    """``pads`` (and ``axes``) must be constants known at bind time; ``constant_value`` may
    be a constant or a run-time scalar (default 0)."""

    inputs = "data pads constant_value? axes?"
    outputs = "output"
    attributes: ClassVar = {"mode": "constant"}

    def setup(self) -> Sequence[TensorSpec | None]:
        x = self.x(0)
        rank = len(x.shape)
        self.mode = _text(self.attrs["mode"])
        if self.mode not in MODES:
            raise BindError(f"attribute 'mode': expected one of {list(MODES)}, got {self.mode!r}")
        pads = [int(v) for v in self.const(1).reshape(-1)]
        if self.has_input(3):
            axes = [self.axis(int(a), rank, "axes entry") for a in self.const(3).reshape(-1)]
        else:
            axes = list(range(rank))
        if len(set(axes)) != len(axes) or len(pads) != 2 * len(axes):
            raise BindError(
                f"input pads: expected 2 values per axis of {axes} (distinct), got {pads}"
            )
        begin, end = [0] * rank, [0] * rank
        for k, axis in enumerate(axes):
            begin[axis], end[axis] = pads[k], pads[len(axes) + k]
        shape = tuple(n + b + e for n, b, e in zip(x.shape, begin, end, strict=True))
        if min(shape, default=0) < 0:
            raise BindError(f"pads {pads} crop {spec_text(x)} below nothing")
        self.fill = None
        if self.has_input(2):
            cv = self.x(2)
            if int(np.prod(cv.shape, dtype=np.int64)) != 1:
                raise BindError(f"input 2 (constant_value): expected a scalar, got {spec_text(cv)}")
            if cv.value is not None:
                self.fill = np.asarray(cv.value).reshape(-1)[0].item()
        elif self.mode == "constant":
            self.fill = 0
        self.value_input = self.mode == "constant" and self.fill is None
        if self.mode == "constant":
            self.bind_constant(x.shape, shape, begin, end)
        else:
            self.bind_border(x.shape, shape, begin, end)
        return [TensorSpec(shape, x.dtype)]

    def bind_constant(
        self, data: Sequence[int], shape: Sequence[int], begin: list[int], end: list[int]
    ) -> None:
        """Centre boxes (crop negative pads) and the border slabs to fill."""
        src, dst = [], []
        for n, b, e in zip(data, begin, end, strict=True):
            lo, hi = max(0, -b), n - max(0, -e)
            length = max(0, hi - lo)
            src.append(slice(lo, lo + length))
            dst.append(slice(max(0, b), max(0, b) + length))
        self.src, self.dst = tuple(src), tuple(dst)
        self.slabs: list[tuple[slice, ...]] = []
        for axis, size in enumerate(shape):
            centre = dst[axis]
            for part in (slice(0, centre.start), slice(centre.stop, size)):
                if part.stop > part.start:
                    index = [*dst[:axis], part] + [slice(None)] * (len(shape) - axis - 1)
                    self.slabs.append(tuple(index))
        self.copies: list[Copy] = []

    def bind_border(
        self, data: Sequence[int], shape: Sequence[int], begin: list[int], end: list[int]
    ) -> None:
        """The centre box and one copy per padded side of each axis."""
        if min(begin + end, default=0) < 0:
            raise BindError(f"mode {self.mode!r}: negative pads (cropping) need mode 'constant'")
        rank = len(shape)
        self.src = tuple(slice(None) for _ in range(rank))
        self.dst = tuple(slice(b, b + n) for b, n in zip(begin, data, strict=True))
        self.slabs = []
        self.copies = []
        for axis, (n, b, e) in enumerate(zip(data, begin, end, strict=True)):
            if not b and not e:
                continue
            # reflect mirrors without the edge, wrap copies at most the data, edge needs one
            limit = {"reflect": n - 1, "wrap": n, "edge": max(b, e) if n else 0}[self.mode]
            if max(b, e) > limit:
                raise BindError(
                    f"mode {self.mode!r}: pads {b} and {e} exceed what axis {axis} of size {n} "
                    f"allows ({limit})"
                )
            before, after = self.sources(n, b, e)
            for dst, src in ((slice(0, b), before), (slice(b + n, b + n + e), after)):
                if dst.stop > dst.start:
                    head = [slice(None)] * axis
                    tail = list(self.dst[axis + 1 :])
                    self.copies.append((tuple([*head, dst, *tail]), tuple([*head, src, *tail])))

    def sources(self, n: int, b: int, e: int) -> tuple[slice, slice]:
        """The output slices along one axis that fill its ``b`` leading and ``e`` trailing
        positions (the data lies at ``[b, b + n)``)."""
        last = b + n - 1
        if self.mode == "edge":
            return slice(b, b + 1), slice(last, last + 1)
        if self.mode == "wrap":
            return slice(n, n + b), slice(b, b + e)
        stop = last - e - 1  # reflect: mirror about the edge element, excluding it
        return slice(2 * b, b, -1), slice(last - 1, stop if stop >= 0 else None, -1)

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        y = outputs[0]
        value = inputs[2].reshape(()) if self.value_input else self.fill
        for slab in self.slabs:
            if self.value_input:
                xp.copyto(y[slab], value)
            else:
                y[slab].fill(value)
        xp.copyto(y[self.dst], inputs[0][self.src])
        for dst, src in self.copies:
            xp.copyto(y[dst], y[src])
