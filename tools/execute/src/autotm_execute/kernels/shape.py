"""Data-movement kernels: reshapes, transposes, concatenation, slicing, gathering, constants.

Every output is a copy into its own buffer (``xp.copyto`` into a reshaped view of the
output): the executor places each tensor at its own offset, so views never alias across
tensors. Shapes are static, so Reshape, Flatten, Squeeze, Unsqueeze and Expand only need the
output spec, never the values of their shape inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
from onnx import numpy_helper

from autotm_execute.kernels.base import Array, TensorSpec, register
from autotm_execute.kernels.op import (
    REQUIRED,
    BindError,
    Kernel,
    Region,
    ScratchLayout,
    on_device,
    spec_text,
    view,
)
from autotm_execute.kernels.pool import scatter_add


def _size(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64))


class _SameData(Kernel):
    """Output = input data in another shape (given by the output spec)."""

    def setup(self) -> Sequence[TensorSpec | None]:
        x, y = self.x(0), self.out_spec(0)
        if _size(x.shape) != _size(y.shape):
            raise BindError(
                f"output {spec_text(y)} has another number of elements than input {spec_text(x)}"
            )
        self.in_shape = x.shape
        return [TensorSpec(y.shape, x.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        xp.copyto(outputs[0].reshape(self.in_shape), inputs[0])


@register("", "Reshape")
class Reshape(_SameData):
    inputs = "X shape"
    attributes: ClassVar = {"allowzero": 0}


@register("", "Flatten")
class Flatten(_SameData):
    attributes: ClassVar = {"axis": 1}

    def setup(self) -> Sequence[TensorSpec | None]:
        x = self.x(0)
        axis = self.axis(int(self.attrs["axis"]), len(x.shape) + 1)
        want = (_size(x.shape[:axis]), _size(x.shape[axis:]))
        self.in_shape = x.shape
        return [TensorSpec(want, x.dtype)]


@register("", "Squeeze")
class Squeeze(_SameData):
    inputs = "X axes?"


@register("", "Unsqueeze")
class Unsqueeze(_SameData):
    inputs = "X axes"


@register("", "Expand")
class Expand(Kernel):
    """numpy broadcasting of X to the output shape (ONNX Expand's rule)."""

    inputs = "X shape"

    def setup(self) -> Sequence[TensorSpec | None]:
        x, y = self.x(0), self.out_spec(0)
        try:
            shape = np.broadcast_shapes(x.shape, y.shape)
        except ValueError:
            raise BindError(f"input {spec_text(x)} does not broadcast to {spec_text(y)}") from None
        return [TensorSpec(tuple(shape), x.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        xp.copyto(outputs[0], inputs[0])


@register("", "Transpose")
class Transpose(Kernel):
    attributes: ClassVar = {"perm": None}

    def setup(self) -> Sequence[TensorSpec | None]:
        x = self.x(0)
        rank = len(x.shape)
        perm = self.attrs["perm"]
        self.perm = tuple(int(p) for p in perm) if perm is not None else tuple(range(rank))[::-1]
        if sorted(self.perm) != list(range(rank)):
            raise BindError(f"attribute 'perm' {list(self.perm)} is no permutation of rank {rank}")
        return [TensorSpec(tuple(x.shape[p] for p in self.perm), x.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        xp.copyto(outputs[0], inputs[0].transpose(self.perm))


@register("", "Concat")
class Concat(Kernel):
    inputs = "X..."
    attributes: ClassVar = {"axis": REQUIRED}

    def setup(self) -> Sequence[TensorSpec | None]:
        specs = [self.x(i) for i in range(len(self.ins))]
        first = specs[0]
        self.ax = self.axis(int(self.attrs["axis"]), len(first.shape))
        for spec in specs[1:]:
            rest = [n for i, n in enumerate(spec.shape) if i != self.ax]
            want = [n for i, n in enumerate(first.shape) if i != self.ax]
            if len(spec.shape) != len(first.shape) or rest != want or spec.dtype != first.dtype:
                raise BindError(
                    f"inputs {spec_text(first)} and {spec_text(spec)} do not concatenate "
                    f"along axis {self.ax}"
                )
        shape = list(first.shape)
        shape[self.ax] = sum(s.shape[self.ax] for s in specs)
        return [TensorSpec(tuple(shape), first.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        xp.concatenate(inputs, axis=self.ax, out=outputs[0])


@register("", "Split")
class Split(Kernel):
    """Split along an axis; the part sizes are the outputs' (the ``split`` input agrees)."""

    inputs = "X split?"
    outputs = "Y..."
    attributes: ClassVar = {"axis": 0, "num_outputs": None}

    def setup(self) -> Sequence[TensorSpec | None]:
        x = self.x(0)
        self.ax = self.axis(int(self.attrs["axis"]), len(x.shape))
        outs = [self.out_spec(i) for i in range(len(self.outs))]
        sizes = [o.shape[self.ax] if len(o.shape) == len(x.shape) else -1 for o in outs]
        if self.has_input(1) and self.x(1).value is not None:
            given = [int(v) for v in self.const(1).reshape(-1)]
            if given != sizes:
                raise BindError(f"input split {given} disagrees with the outputs' sizes {sizes}")
        if sum(sizes) != x.shape[self.ax] or min(sizes) < 0:
            raise BindError(
                f"outputs {[spec_text(o) for o in outs]} do not split {spec_text(x)} "
                f"along axis {self.ax}"
            )
        self.parts = []
        start = 0
        expected = []
        for size in sizes:
            index = [slice(None)] * len(x.shape)
            index[self.ax] = slice(start, start + size)
            self.parts.append(tuple(index))
            shape = list(x.shape)
            shape[self.ax] = size
            expected.append(TensorSpec(tuple(shape), x.dtype))
            start += size
        return expected

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        x = inputs[0]
        for out, part in zip(outputs, self.parts, strict=True):
            if out is not None:
                xp.copyto(out, x[part])


def onnx_slices(
    shape: Sequence[int],
    starts: Sequence[int],
    ends: Sequence[int],
    axes: Sequence[int] | None,
    steps: Sequence[int] | None,
) -> tuple[slice, ...]:
    """Python slices for ONNX Slice's starts/ends/axes/steps with its clamping rules."""
    rank = len(shape)
    index = [slice(None)] * rank
    axes = list(axes) if axes is not None else list(range(len(starts)))
    steps = list(steps) if steps is not None else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise BindError("starts, ends, axes and steps differ in length")
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        if not -rank <= axis < rank:
            raise BindError(f"slice axis {axis} is out of range for rank {rank}")
        if step == 0:
            raise BindError("slice step 0")
        dim = shape[axis % rank]
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
            index[axis % rank] = slice(start, end, step)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
            index[axis % rank] = slice(start, None if end < 0 else end, step)
    return tuple(index)


def _slice_shape(shape: Sequence[int], index: tuple[slice, ...]) -> tuple[int, ...]:
    return tuple(len(range(*s.indices(n))) for s, n in zip(index, shape, strict=True))


def _bound_ints(kernel: Kernel, index: int) -> list[int] | None:
    return [int(v) for v in kernel.const(index).reshape(-1)] if kernel.has_input(index) else None


@register("", "Slice")
class Slice(Kernel):
    """starts, ends, axes and steps must be constants known at bind time."""

    inputs = "X starts ends axes? steps?"

    def setup(self) -> Sequence[TensorSpec | None]:
        x = self.x(0)
        self.index = onnx_slices(
            x.shape,
            _bound_ints(self, 1) or [],
            _bound_ints(self, 2) or [],
            _bound_ints(self, 3),
            _bound_ints(self, 4),
        )
        return [TensorSpec(_slice_shape(x.shape, self.index), x.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        xp.copyto(outputs[0], inputs[0][self.index])


@register("com.microsoft", "SliceGrad")
class SliceGrad(Kernel):
    """``dX = zeros(shape)`` with the sliced region set to dY; dX's shape is its spec's."""

    inputs = "dY shape starts ends axes? steps?"
    outputs = "dX"

    def setup(self) -> Sequence[TensorSpec | None]:
        dy, dx = self.x(0), self.out_spec(0)
        self.index = onnx_slices(
            dx.shape,
            _bound_ints(self, 2) or [],
            _bound_ints(self, 3) or [],
            _bound_ints(self, 4),
            _bound_ints(self, 5),
        )
        if _slice_shape(dx.shape, self.index) != dy.shape:
            raise BindError(f"dY {spec_text(dy)} is not the slice's shape of {spec_text(dx)}")
        return [TensorSpec(dx.shape, dy.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        dx = outputs[0]
        dx.fill(0)
        xp.copyto(dx[self.index], inputs[0])


@register("", "Gather")
class Gather(Kernel):
    """``numpy.take`` along an axis; negative indices count from the end, and (unlike ONNX,
    which calls them an error) indices out of range wrap around instead of failing."""

    inputs = "X indices"
    attributes: ClassVar = {"axis": 0}

    def setup(self) -> Sequence[TensorSpec | None]:
        x, idx = self.x(0), self.x(1)
        if idx.dtype.kind not in "iu":
            raise BindError(f"input 1 (indices): expected integers, got {spec_text(idx)}")
        self.ax = self.axis(int(self.attrs["axis"]), len(x.shape))
        shape = (*x.shape[: self.ax], *idx.shape, *x.shape[self.ax + 1 :])
        return [TensorSpec(shape, x.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        take_into(xp, inputs[0], inputs[1], self.ax, outputs[0])


@register("com.microsoft", "GatherGrad")
class GatherGrad(Kernel):
    """The adjoint of Gather: ``dX = zeros(shape)``, then ``dY`` added at ``indices`` along
    ``axis`` (repeated indices accumulate; negative ones count from the end).

    Deterministic on numpy and cupy alike, so reruns are bit-identical: with indices known at
    bind time (a constant, as autotm-graph's gradients of Gather have them), the positions
    are split into layers, the r-th occurrence of every index in layer r, so that the targets
    within a layer are distinct. Layer 0 is written, later layers are added (each a scatter
    without collisions, hence without atomics racing on the GPU), every target summing its
    positions in ascending order. Scratch: the largest layer's slices of dY, gathered (none
    when no index repeats). Indices only known at run time take one scattered add
    (``np.add.at``, deterministic; on cupy its atomics may sum repeats in any order).
    """

    inputs = "shape indices dY"
    outputs = "dX"
    attributes: ClassVar = {"axis": 0}

    def setup(self) -> Sequence[TensorSpec | None]:
        idx, dy, dx = self.x(1), self.float_input(2), self.out_spec(0)
        if idx.dtype.kind not in "iu":
            raise BindError(f"input 1 (indices): expected integers, got {spec_text(idx)}")
        if self.x(0).value is not None:
            want = tuple(int(v) for v in self.const(0).reshape(-1))
            if want != dx.shape:
                raise BindError(f"input shape {list(want)} disagrees with output {spec_text(dx)}")
        rank = len(dx.shape)
        self.ax = self.axis(int(self.attrs["axis"]), rank)
        expected = (*dx.shape[: self.ax], *idx.shape, *dx.shape[self.ax + 1 :])
        if dy.shape != expected:
            raise BindError(
                f"input 2 (dY) {spec_text(dy)}: gathering {spec_text(idx)} along axis "
                f"{self.ax} of {spec_text(dx)} gives shape {list(expected)}"
            )
        self.dim = dx.shape[self.ax]
        self.pre = _size(dx.shape[: self.ax])
        self.post = _size(dx.shape[self.ax + 1 :])
        self.count = _size(idx.shape)
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []
        self.gathered: Region | None = None
        if idx.value is not None:
            self.bind_layers(np.asarray(idx.value).reshape(-1).astype(np.int64))
        return [TensorSpec(dx.shape, dy.dtype)]

    def bind_layers(self, raw: np.ndarray) -> None:
        """Positions and targets of each layer (see the class docstring), and the scratch."""
        if raw.size and (raw.min() < -self.dim or raw.max() >= self.dim):
            bad = int(raw[(raw < -self.dim) | (raw >= self.dim)][0])
            raise BindError(f"input 1 (indices): {bad} is out of range for axis size {self.dim}")
        targets = raw % max(self.dim, 1)
        order = np.argsort(targets, kind="stable")
        ordered = targets[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        lengths = np.diff(np.r_[starts, ordered.size])
        rank = np.empty(ordered.size, np.int64)
        rank[order] = np.arange(ordered.size) - np.repeat(starts, lengths)
        for layer in range(int(lengths.max(initial=0))):
            positions = np.flatnonzero(rank == layer)
            self.layers.append((positions, targets[positions]))
        if len(self.layers) > 1:
            regions = ScratchLayout()
            self.gathered = regions.add(
                (self.pre * len(self.layers[0][0]) * self.post,), self.x(2).dtype
            )
            self.layout(regions)

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        indices, dy = inputs[1], inputs[2]
        dx = outputs[0]
        dx.fill(0)
        dx3 = dx.reshape(self.pre, self.dim, self.post)
        dy3 = dy.reshape(self.pre, self.count, self.post)
        every = slice(None)
        if not self.layers and self.count and self.dim:  # indices known only now
            targets = xp.remainder(indices.reshape(-1), self.dim)
            scatter_add(xp, dx3, (every, targets, every), dy3)
            return
        if self.gathered is None:  # no index repeats: one scatter
            for _, targets in self.layers:
                dx3[every, on_device(xp, targets), every] = dy3
            return
        flat = view(scratch, self.gathered)
        for layer, (positions, targets) in enumerate(self.layers):
            part = flat[: self.pre * len(positions) * self.post].reshape(
                self.pre, len(positions), self.post
            )
            take_into(xp, dy3, on_device(xp, positions), 1, part)
            if layer == 0:
                dx3[every, on_device(xp, targets), every] = part
            else:
                scatter_add(xp, dx3, (every, on_device(xp, targets), every), part)


def take_into(xp: ModuleType, data: Array, indices: Array, axis: int, out: Array) -> None:
    """``out = take(data, indices, axis)`` written into ``out`` (contiguous) without buffering."""
    if xp is np:  # mode "raise" (the default) would buffer the whole output
        np.take(data, indices, axis=axis, out=out, mode="wrap")
    else:  # cupy's take always wraps
        xp.take(data, indices, axis=axis, out=out)


def _tensor_attribute(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    return np.asarray(numpy_helper.to_array(value))


@register("", "Constant")
class Constant(Kernel):
    """The ``value`` attribute (or value_float(s)/value_int(s)) copied into the output."""

    inputs = ""
    attributes: ClassVar = {
        "value": None,
        "value_float": None,
        "value_floats": None,
        "value_int": None,
        "value_ints": None,
    }

    def setup(self) -> Sequence[TensorSpec | None]:
        given = {k: v for k, v in self.attrs.items() if v is not None}
        if len(given) != 1:
            raise BindError(f"expected exactly one value attribute, got {sorted(given)}")
        ((name, value),) = given.items()
        if name == "value":
            self.value = _tensor_attribute(value)
        elif name.startswith("value_float"):
            self.value = np.asarray(value, np.float32)
        else:
            self.value = np.asarray(value, np.int64)
        return [TensorSpec(self.value.shape, self.value.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        xp.copyto(outputs[0], xp.asarray(self.value))


@register("", "ConstantOfShape")
class ConstantOfShape(Kernel):
    """The output filled with ``value`` (a one-element tensor, default float32 0)."""

    inputs = "shape"

    attributes: ClassVar = {"value": None}

    def setup(self) -> Sequence[TensorSpec | None]:
        out = self.out_spec(0)
        raw = self.attrs["value"]
        value = _tensor_attribute(raw) if raw is not None else np.zeros(1, np.float32)
        if value.size != 1:
            raise BindError(f"attribute 'value': expected one element, got {value.size}")
        self.fill = value.reshape(()).item()
        if self.x(0).value is not None:
            want = tuple(int(v) for v in self.const(0).reshape(-1))
            if want != out.shape:
                raise BindError(f"input shape {list(want)} disagrees with output {spec_text(out)}")
        return [TensorSpec(out.shape, value.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        outputs[0].fill(self.fill)
