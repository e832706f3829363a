"""Sliding-window geometry shared by Conv, ConvGrad and the pooling kernels.

For every kernel offset (a "tap") the set of output positions that read a real input element,
not padding, is a box: along each spatial axis a contiguous range of outputs ``[lo, hi)``
reading the input with the window's stride from ``start``. Kernels loop over taps (9 for a
3x3 window), never over batch or spatial positions, and handle padding by leaving the
out-of-range part of each box alone instead of materialising a padded copy of the input.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autotm_execute.kernels.op import BindError


@dataclass(frozen=True)
class Tap:
    """One kernel offset: which outputs it touches and which inputs they read."""

    offset: tuple[int, ...]  # kernel index along each spatial axis
    out: tuple[slice, ...]  # output positions (spatial axes only) reading real input
    inp: tuple[slice, ...]  # the input positions they read, strided
    full: bool  # every output position reads real input (no padding at this tap)
    empty: bool  # no output position reads real input

    @property
    def border(self) -> list[tuple[slice, ...]]:
        """Boxes of output positions (spatial) that read padding at this tap."""
        boxes = []
        for axis, part in enumerate(self.out):
            before = [slice(None)] * len(self.out)
            after = [slice(None)] * len(self.out)
            before[axis] = slice(0, part.start)
            after[axis] = slice(part.stop, None)
            boxes += [tuple(before), tuple(after)]
        return boxes


@dataclass(frozen=True)
class Window:
    """Geometry of one Conv or pooling node over its spatial axes."""

    in_shape: tuple[int, ...]
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads_begin: tuple[int, ...]
    pads_end: tuple[int, ...]
    out_shape: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.in_shape)

    @property
    def taps(self) -> list[Tap]:
        taps = []
        for offset in itertools.product(*(range(k) for k in self.kernel)):
            out, inp = [], []
            full, empty = True, False
            for axis, j in enumerate(offset):
                size, stride = self.in_shape[axis], self.strides[axis]
                shift = j * self.dilations[axis] - self.pads_begin[axis]  # input = o*s + shift
                lo = -(shift // stride) if shift < 0 else 0  # first o with o*s + shift >= 0
                hi = min(self.out_shape[axis], (size - 1 - shift) // stride + 1)
                if hi <= lo:
                    empty = True
                    lo = hi = 0
                if lo > 0 or hi < self.out_shape[axis]:
                    full = False
                start = lo * stride + shift
                out.append(slice(lo, hi))
                inp.append(slice(start, start + (hi - lo - 1) * stride + 1, stride))
            taps.append(Tap(offset, tuple(out), tuple(inp), full and not empty, empty))
        return taps

    def counts(self, include_pad: bool) -> np.ndarray:
        """Per output position, how many window elements lie inside the input
        (``include_pad``: inside the input plus its explicit padding). Float64, out_shape."""
        total = np.ones((), np.float64)
        for axis in range(self.rank):
            lo_bound = -self.pads_begin[axis] if include_pad else 0
            hi_bound = self.in_shape[axis] + (self.pads_end[axis] if include_pad else 0)
            first = np.arange(self.out_shape[axis]) * self.strides[axis] - self.pads_begin[axis]
            positions = first[:, None] + np.arange(self.kernel[axis]) * self.dilations[axis]
            inside = ((positions >= lo_bound) & (positions < hi_bound)).sum(axis=1)
            total = np.multiply.outer(total, inside.astype(np.float64))
        return np.asarray(total, np.float64)


def _attr_ints(attrs: Mapping[str, Any], name: str, default: Sequence[int]) -> tuple[int, ...]:
    value = attrs.get(name)
    return tuple(int(v) for v in value) if value is not None else tuple(default)


def window_from_attributes(
    attrs: Mapping[str, Any],
    in_shape: Sequence[int],
    kernel: Sequence[int] | None = None,
    ceil_mode: bool = False,
    out_shape: Sequence[int] | None = None,
) -> Window:
    """The geometry ONNX defines for ``kernel_shape``, ``strides``, ``dilations``, ``pads``
    and ``auto_pad`` (NOTSET, VALID, SAME_UPPER, SAME_LOWER).

    ``kernel`` comes from the weight shape for Conv when kernel_shape is absent.
    ``out_shape``, when given (pools with ceil_mode), is accepted if it is the floor or the
    ceil output size, so that both conventions of the last partial window bind.
    """
    rank = len(in_shape)
    kern = _attr_ints(attrs, "kernel_shape", kernel or ())
    if len(kern) != rank or (kernel is not None and tuple(kernel) != kern):
        raise BindError(
            f"attribute 'kernel_shape' {list(kern)}: expected {rank} spatial sizes"
            + (f" matching the weight's {list(kernel)}" if kernel is not None else "")
        )
    strides = _attr_ints(attrs, "strides", [1] * rank)
    dilations = _attr_ints(attrs, "dilations", [1] * rank)
    pads = _attr_ints(attrs, "pads", [0] * (2 * rank))
    if len(strides) != rank or len(dilations) != rank or len(pads) != 2 * rank:
        raise BindError(
            f"strides {list(strides)}, dilations {list(dilations)}, pads {list(pads)}: "
            f"expected {rank}, {rank} and {2 * rank} values"
        )
    if min(strides) < 1 or min(dilations) < 1 or min(kern) < 1 or min(pads, default=0) < 0:
        raise BindError("strides, dilations and kernel_shape must be positive, pads >= 0")
    auto_pad = attrs.get("auto_pad") or "NOTSET"
    begin, end = list(pads[:rank]), list(pads[rank:])
    span = [(k - 1) * d + 1 for k, d in zip(kern, dilations, strict=True)]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        for axis in range(rank):
            out = -(-in_shape[axis] // strides[axis])
            total = max(0, (out - 1) * strides[axis] + span[axis] - in_shape[axis])
            small, large = total // 2, total - total // 2
            begin[axis], end[axis] = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
    elif auto_pad == "VALID":
        begin, end = [0] * rank, [0] * rank
    elif auto_pad != "NOTSET":
        raise BindError(f"attribute 'auto_pad': unknown value {auto_pad!r}")
    outs = []
    for axis in range(rank):
        room = in_shape[axis] + begin[axis] + end[axis] - span[axis]
        if room < 0:
            raise BindError(
                f"window {span[axis]} is larger than the padded input "
                f"{in_shape[axis] + begin[axis] + end[axis]} along spatial axis {axis}"
            )
        floor_size = room // strides[axis] + 1
        ceil_size = -(-room // strides[axis]) + 1
        size = ceil_size if ceil_mode else floor_size
        if ceil_mode and (size - 1) * strides[axis] >= in_shape[axis] + begin[axis]:
            size -= 1  # the last window may not start in the end padding
        if out_shape is not None and out_shape[axis] in (floor_size, ceil_size):
            size = out_shape[axis]
        outs.append(size)
    return Window(
        tuple(int(n) for n in in_shape),
        kern,
        strides,
        dilations,
        tuple(begin),
        tuple(end),
        tuple(outs),
    )
