"""Pooling kernels and their gradients, one strided array operation per kernel tap.

MaxPool tracks, per output, the offset of the winning element inside its window while it
loops over taps (first maximum wins, as in onnxruntime), then turns offsets into ONNX's flat
``Indices`` (over N*C*H*W, storage_order 0). MaxPoolGrad goes the other way: it recovers the
offsets from Indices and adds dY into each tap's strided view of dX, which is much faster
than a scattered ``add.at`` over arbitrary indices (the fallback when the node carries no
window attributes).

Kernels with scratch work on chunks of images, as the convolutions do (see
:mod:`autotm_execute.kernels.conv`): scratch lives in the fast tier, and MaxPoolGrad's, at
13 bytes per element of dY, would otherwise be three times a large activation (4.3 GiB for
Inception v4's stem at batch 1024) and make small fast budgets infeasible.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from autotm_execute.kernels.base import Array, TensorSpec, register
from autotm_execute.kernels.conv import COLUMNS_CAP, chunk_bounds, images_per_chunk
from autotm_execute.kernels.op import (
    BindError,
    Kernel,
    ScratchLayout,
    on_device,
    spec_text,
    view,
)
from autotm_execute.kernels.window import Window, window_from_attributes

POOL_ATTRIBUTES = {
    "auto_pad": "NOTSET",
    "ceil_mode": 0,
    "dilations": None,
    "kernel_shape": None,
    "pads": None,
    "strides": None,
}


class _Pool(Kernel):
    """Window binding and per-tap index tuples over ``[N, C, *spatial]`` tensors."""

    attributes: ClassVar = POOL_ATTRIBUTES

    def bind_window(self, x_shape: tuple[int, ...], y_shape: tuple[int, ...] | None) -> Window:
        if len(x_shape) < 3:
            raise BindError(f"expected [N, C, *spatial], got shape {list(x_shape)}")
        if self.attrs.get("kernel_shape") is None:
            raise BindError("attribute 'kernel_shape' is required")
        window = window_from_attributes(
            self.attrs,
            x_shape[2:],
            ceil_mode=bool(self.attrs["ceil_mode"]),
            out_shape=y_shape[2:] if y_shape is not None else None,
        )
        self.window = window
        self.lead = tuple(x_shape[:2])
        self.y_shape = (*x_shape[:2], *window.out_shape)
        # (output box, input view, flat offset of the tap in its window, box shape, box size)
        in_strides = [int(np.prod(x_shape[3 + i :], dtype=np.int64)) for i in range(window.rank)]
        self.taps = []
        for tap in window.taps:
            if tap.empty:
                continue
            shape = (*self.lead, *(s.stop - s.start for s in tap.out))
            offset = sum(
                j * d * st
                for j, d, st in zip(tap.offset, window.dilations, in_strides, strict=True)
            )
            self.taps.append(
                ((Ellipsis, *tap.out), (Ellipsis, *tap.inp), offset, shape, int(np.prod(shape)))
            )
        self.in_strides = in_strides
        return window

    def bind_chunks(self, scratch_per_element: int, tensor_bytes: int) -> int:
        """Cut the batch into chunks whose scratch (``scratch_per_element`` bytes per element
        of the output) fits COLUMNS_CAP, or the tensor's own size when that is smaller; returns
        the elements of the largest chunk, which is what the scratch regions must hold."""
        batch = self.y_shape[0]
        per_image = int(np.prod(self.y_shape[1:], dtype=np.int64))
        cap = min(COLUMNS_CAP, max(1, tensor_bytes))
        chunk = images_per_chunk(batch, per_image * scratch_per_element, cap)
        self.chunks = chunk_bounds(batch, chunk)
        return chunk * per_image

    def chunk_taps(self, images: int) -> list[tuple[Any, Any, int, tuple[int, ...], int]]:
        """The taps of a chunk of ``images`` images: box shapes and sizes along that batch."""
        batch = self.y_shape[0]
        return [
            (out, inp, offset, (images, *shape[1:]), size // batch * images)
            for out, inp, offset, shape, size in self.taps
        ]

    def index_terms(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Broadcastable int64 terms whose sums are, per output, the flat offset of the first
        real (non-padding) window element and the flat index of the window origin."""
        w, r = self.window, self.window.rank
        first, origin = [], []
        for axis in range(r):
            o = np.arange(w.out_shape[axis], dtype=np.int64)
            start = o * w.strides[axis] - w.pads_begin[axis]
            skip = np.maximum(0, -(start // w.dilations[axis]))  # ceil(-start / d) when start < 0
            shape = (-1,) + (1,) * (r - 1 - axis)
            first.append((skip * w.dilations[axis] * self.in_strides[axis]).reshape(shape))
            origin.append((start * self.in_strides[axis]).reshape(shape))
        n, c = self.lead
        per_image = int(np.prod(w.in_shape, dtype=np.int64))
        channel = (np.arange(n * c, dtype=np.int64) * per_image).reshape((n, c) + (1,) * r)
        return first, [channel, *origin]


@register("", "MaxPool")
class MaxPool(_Pool):
    """ONNX MaxPool with the optional Indices output (storage_order 0).

    Scratch: a bool mask of one chunk of Y when Indices is asked for, else none.
    """

    outputs = "Y Indices?"
    attributes: ClassVar = {**POOL_ATTRIBUTES, "storage_order": 0}

    def setup(self) -> Sequence[TensorSpec | None]:
        x = self.float_input(0)
        given = self.outs[0]
        self.bind_window(x.shape, given.shape if given is not None else None)
        if int(self.attrs["storage_order"]) != 0:
            raise BindError("attribute 'storage_order': only 0 (row major) is supported")
        self.indices = self.has_output(1)
        self.lowest = -np.inf
        if self.indices:
            regions = ScratchLayout()
            elements = self.bind_chunks(1, int(np.prod(self.y_shape)) * x.dtype.itemsize)
            self.mask = regions.add((elements,), np.bool_)
            self.layout(regions)
            self.first, self.origin = self.index_terms()
        return [TensorSpec(self.y_shape, x.dtype), TensorSpec(self.y_shape, np.dtype(np.int64))]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        x, y = inputs[0], outputs[0]
        y.fill(self.lowest)
        if not self.indices:
            for out, inp, _, _, _ in self.taps:
                box = y[out]
                xp.maximum(box, x[inp], out=box)
            return
        rel = outputs[1]
        rel.fill(0)
        for term in self.first:
            xp.add(rel, on_device(xp, term), out=rel)
        mask = view(scratch, self.mask)
        for start, stop in self.chunks:
            xc, yc, rc = x[start:stop], y[start:stop], rel[start:stop]
            for out, inp, offset, shape, size in self.chunk_taps(stop - start):
                box, src, hit = yc[out], xc[inp], mask[:size].reshape(shape)
                xp.greater(src, box, out=hit)
                xp.copyto(box, src, where=hit)
                xp.copyto(rc[out], offset, where=hit)
        for term in self.origin:
            xp.add(rel, on_device(xp, term), out=rel)


@register("", "MaxPoolGrad")
class MaxPoolGrad(_Pool):
    """``dX = 0; dX.flat[Indices] += dY`` (onnxruntime registers it in the default domain).

    With the MaxPool's window attributes (as autotm-graph writes them) it adds dY per tap;
    scratch: the offsets (int64), a mask and a product, each of one chunk of dY. Without them it
    falls back to a scattered add (no scratch, slower).
    """

    inputs = "dY Indices"
    outputs = "dX"
    attributes: ClassVar = {**POOL_ATTRIBUTES, "storage_order": 0}

    def setup(self) -> Sequence[TensorSpec | None]:
        dy, idx, dx = self.float_input(0), self.x(1), self.out_spec(0)
        if idx.shape != dy.shape or idx.dtype != np.int64:
            raise BindError(
                f"input 1 (Indices): expected int64 of dY's shape, got {spec_text(idx)}"
            )
        self.by_taps = self.attrs.get("kernel_shape") is not None
        if self.by_taps:
            self.bind_window(dx.shape, dy.shape)
            if self.y_shape != dy.shape:
                raise BindError(
                    f"input 0 (dY) {spec_text(dy)}: the window gives shape {list(self.y_shape)}"
                )
            if int(self.attrs["storage_order"]) != 0:
                raise BindError("attribute 'storage_order': only 0 (row major) is supported")
            _, self.origin = self.index_terms()
            per_element = 8 + 1 + dy.dtype.itemsize  # offsets, mask, product
            elements = self.bind_chunks(per_element, int(np.prod(dy.shape)) * dy.dtype.itemsize)
            regions = ScratchLayout()
            self.rel = regions.add((elements,), np.int64)
            self.mask = regions.add((elements,), np.bool_)
            self.product = regions.add((elements,), dy.dtype)
            self.layout(regions)
        return [TensorSpec(dx.shape, dy.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        dy, idx = inputs
        dx = outputs[0]
        dx.fill(0)
        if not self.by_taps:
            scatter_add(xp, dx.reshape(-1), idx.reshape(-1), dy.reshape(-1))
            return
        rel_flat = view(scratch, self.rel)
        mask, product = view(scratch, self.mask), view(scratch, self.product)
        channel, *spatial = (on_device(xp, term) for term in self.origin)
        for start, stop in self.chunks:
            dyc, dxc = dy[start:stop], dx[start:stop]
            rel = rel_flat[: dyc.size].reshape(dyc.shape)
            xp.subtract(idx[start:stop], channel[start:stop], out=rel)
            for term in spatial:
                xp.subtract(rel, term, out=rel)
            for out, inp, offset, shape, size in self.chunk_taps(stop - start):
                hit, part = mask[:size].reshape(shape), product[:size].reshape(shape)
                xp.equal(rel[out], offset, out=hit)
                xp.multiply(dyc[out], hit, out=part)
                dst = dxc[inp]
                xp.add(dst, part, out=dst)


def scatter_add(xp: ModuleType, target: Array, indices: Array, values: Array) -> None:
    """``target[indices] += values`` with repeated indices accumulating."""
    if xp is np:
        np.add.at(target, indices, values)
    else:  # cupy
        import cupyx

        cupyx.scatter_add(target, indices, values)


class _AveragePool(_Pool):
    attributes: ClassVar = {**POOL_ATTRIBUTES, "count_include_pad": 0}

    def bind_counts(self, dtype: np.dtype[Any]) -> None:
        include = bool(self.attrs["count_include_pad"])
        self.counts = self.window.counts(include).astype(dtype)


@register("", "AveragePool")
class AveragePool(_AveragePool):
    """Window sums per tap, divided by the number of elements counted per output
    (count_include_pad: padding counts, the part of a ceil_mode window beyond it does not)."""

    def setup(self) -> Sequence[TensorSpec | None]:
        x = self.float_input(0)
        given = self.outs[0]
        self.bind_window(x.shape, given.shape if given is not None else None)
        self.bind_counts(x.dtype)
        return [TensorSpec(self.y_shape, x.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        x, y = inputs[0], outputs[0]
        y.fill(0)
        for out, inp, _, _, _ in self.taps:
            box = y[out]
            xp.add(box, x[inp], out=box)
        xp.divide(y, on_device(xp, self.counts), out=y)


@register("", "AveragePoolGrad")
class AveragePoolGrad(_AveragePool):
    """The adjoint of :class:`AveragePool` (onnxruntime registers it in the default domain).

    Scratch: one chunk of dY divided by the counts.
    """

    inputs = "dY"
    outputs = "dX"

    def setup(self) -> Sequence[TensorSpec | None]:
        dy, dx = self.float_input(0), self.out_spec(0)
        self.bind_window(dx.shape, dy.shape)
        if self.y_shape != dy.shape:
            raise BindError(f"input 0 (dY) {spec_text(dy)}: the window gives {list(self.y_shape)}")
        self.bind_counts(dy.dtype)
        elements = self.bind_chunks(dy.dtype.itemsize, int(np.prod(dy.shape)) * dy.dtype.itemsize)
        regions = ScratchLayout()
        self.scaled = regions.add((elements,), dy.dtype)
        self.layout(regions)
        return [TensorSpec(dx.shape, dy.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        dy, dx = inputs[0], outputs[0]
        scaled_flat = view(scratch, self.scaled)
        counts = on_device(xp, self.counts)
        dx.fill(0)
        for start, stop in self.chunks:
            dyc, dxc = dy[start:stop], dx[start:stop]
            scaled = scaled_flat[: dyc.size].reshape(dyc.shape)
            xp.divide(dyc, counts, out=scaled)
            for out, inp, _, _, _ in self.taps:
                dst = dxc[inp]
                xp.add(dst, scaled[out], out=dst)


@register("", "GlobalAveragePool")
class GlobalAveragePool(Kernel):
    def setup(self) -> Sequence[TensorSpec | None]:
        x = self.float_input(0)
        if len(x.shape) < 3:
            raise BindError(f"expected [N, C, *spatial], got {spec_text(x)}")
        self.axes = tuple(range(2, len(x.shape)))
        return [TensorSpec((*x.shape[:2], *(1 for _ in self.axes)), x.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        xp.mean(inputs[0], axis=self.axes, keepdims=True, out=outputs[0])
