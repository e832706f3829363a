"""Elementwise kernels: activations, their gradients, broadcast arithmetic and comparisons.

Each one is a ufunc or two with ``out=`` the output buffer, so none allocates anything of
tensor size (two-pass kernels reuse the output buffer as their temporary).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
from onnx import helper

from autotm_execute.kernels.base import Array, TensorSpec, register
from autotm_execute.kernels.op import REQUIRED, BindError, Kernel, same_as, spec_text


class Unary(Kernel):
    """One float input, one output of the same shape and dtype.

    Constants are numpy scalars of the tensor's type (``zero``, ``half``, ``one``): numpy
    converts them faster than Python numbers, and cupy accepts them too.
    """

    def setup(self) -> Sequence[TensorSpec | None]:
        spec = self.float_input(0)
        self.zero, self.half, self.one = (spec.dtype.type(v) for v in (0, 0.5, 1))
        return [same_as(spec)]


@register("", "Relu")
class Relu(Unary):
    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        xp.maximum(inputs[0], self.zero, out=outputs[0])


@register("", "Neg")
class Neg(Kernel):
    def setup(self) -> Sequence[TensorSpec | None]:
        return [same_as(self.x(0))]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        xp.negative(inputs[0], out=outputs[0])


@register("", "Identity")
class Identity(Kernel):
    def setup(self) -> Sequence[TensorSpec | None]:
        return [same_as(self.x(0))]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        xp.copyto(outputs[0], inputs[0])


@register("", "Sigmoid")
class Sigmoid(Unary):
    """``1 / (1 + exp(-x))`` computed as ``0.5 * tanh(x / 2) + 0.5``: no overflow, no temporary.

    The tanh form has an absolute error below one float32 ulp of 0.5 (about 3e-8); for very
    negative x the result rounds to 0 where the exact value is a tiny positive number.
    """

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        y, half = outputs[0], self.half
        xp.multiply(inputs[0], half, out=y)
        xp.tanh(y, out=y)
        xp.multiply(y, half, out=y)
        xp.add(y, half, out=y)


class _UfuncUnary(Unary):
    """``Y = ufunc(X)`` for a float X: one ufunc call writing Y."""

    ufunc: ClassVar[str] = ""

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        getattr(xp, self.ufunc)(inputs[0], out=outputs[0])


@register("", "Exp")
class Exp(_UfuncUnary):
    ufunc = "exp"


@register("", "Tanh")
class Tanh(_UfuncUnary):
    ufunc = "tanh"


@register("", "Sqrt")
class Sqrt(_UfuncUnary):
    ufunc = "sqrt"


@register("", "Reciprocal")
class Reciprocal(_UfuncUnary):
    ufunc = "reciprocal"


@register("", "HardSigmoid")
class HardSigmoid(Unary):
    attributes: ClassVar = {"alpha": 0.2, "beta": 0.5}

    def setup(self) -> Sequence[TensorSpec | None]:
        expected = super().setup()
        dtype = self.x(0).dtype.type
        self.alpha, self.beta = dtype(self.attrs["alpha"]), dtype(self.attrs["beta"])
        return expected

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        y = outputs[0]
        xp.multiply(inputs[0], self.alpha, out=y)
        xp.add(y, self.beta, out=y)
        xp.clip(y, self.zero, self.one, out=y)


@register("", "HardSwish")
class HardSwish(Unary):
    """``x * HardSigmoid(x, alpha=1/6, beta=1/2)`` (ONNX opset 14)."""

    def setup(self) -> Sequence[TensorSpec | None]:
        expected = super().setup()
        self.alpha = self.x(0).dtype.type(1.0 / 6.0)
        return expected

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        x, y = inputs[0], outputs[0]
        xp.multiply(x, self.alpha, out=y)
        xp.add(y, self.half, out=y)
        xp.clip(y, self.zero, self.one, out=y)
        xp.multiply(y, x, out=y)


@register("", "Clip")
class Clip(Kernel):
    """``min(max(x, min), max)``; min and max are optional scalar inputs (read on device)."""

    inputs = "X min? max?"

    def setup(self) -> Sequence[TensorSpec | None]:
        spec = self.x(0)
        for index in (1, 2):
            if self.has_input(index) and self.x(index).shape not in ((), (1,)):
                raise BindError(
                    f"input {index} ({self.input_name(index)}): expected a scalar, got "
                    f"{spec_text(self.x(index))}"
                )
        self.lo, self.hi = self.has_input(1), self.has_input(2)
        return [same_as(spec)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        x, y = inputs[0], outputs[0]
        if self.lo and self.hi:
            xp.clip(x, inputs[1], inputs[2], out=y)
        elif self.lo:
            xp.maximum(x, inputs[1], out=y)
        elif self.hi:
            xp.minimum(x, inputs[2], out=y)
        else:
            xp.copyto(y, x)


@register("", "Cast")
class Cast(Kernel):
    attributes: ClassVar = {"to": REQUIRED, "saturate": 1}

    def setup(self) -> Sequence[TensorSpec | None]:
        spec = self.x(0)
        to = self.attrs["to"]
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(int(to)))
        except (KeyError, ValueError, TypeError):
            raise BindError(f"attribute 'to': unsupported ONNX element type {to!r}") from None
        return [same_as(spec, dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        xp.copyto(outputs[0], inputs[0], casting="unsafe")


# ---- gradients of activations (onnxruntime-training, com.microsoft) ----------------------


class _GradOfOutput(Kernel):
    """``dX = f(dY, Y)``: the gradient from the forward output, all of one shape."""

    inputs = "dY Y"
    outputs = "dX"

    def setup(self) -> Sequence[TensorSpec | None]:
        dy, y = self.float_input(0), self.float_input(1)
        if dy.shape != y.shape:
            raise BindError(f"inputs dY and Y differ in shape: {spec_text(dy)} vs {spec_text(y)}")
        self.zero, self.one = dy.dtype.type(0), dy.dtype.type(1)
        return [same_as(dy)]


@register("com.microsoft", "ReluGrad")
class ReluGrad(_GradOfOutput):
    """``dX = dY * (Y > 0)``: heaviside(Y, 0) is the 0/1 mask, written into dX itself."""

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        dx = outputs[0]
        xp.heaviside(inputs[1], self.zero, out=dx)
        xp.multiply(dx, inputs[0], out=dx)


@register("com.microsoft", "SigmoidGrad")
class SigmoidGrad(_GradOfOutput):
    """``dX = dY * Y * (1 - Y)``."""

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        dy, y = inputs
        dx = outputs[0]
        xp.subtract(self.one, y, out=dx)
        xp.multiply(dx, y, out=dx)
        xp.multiply(dx, dy, out=dx)


@register("com.microsoft", "TanhGrad")
class TanhGrad(_GradOfOutput):
    """``dX = dY * (1 - Y * Y)``."""

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        dy, y = inputs
        dx = outputs[0]
        xp.multiply(y, y, out=dx)
        xp.subtract(self.one, dx, out=dx)
        xp.multiply(dx, dy, out=dx)


# ---- broadcasting binary ops --------------------------------------------------------------


class Binary(Kernel):
    """``C = ufunc(A, B)`` with numpy (= ONNX multidirectional) broadcasting."""

    inputs = "A B"
    outputs = "C"
    ufunc: ClassVar[str] = ""
    result: ClassVar[str | None] = None  # output dtype when not the inputs' (comparisons: bool)
    kinds: ClassVar[str] = "fiub"  # accepted dtype kinds

    def setup(self) -> Sequence[TensorSpec | None]:
        a, b = self.x(0), self.x(1)
        if a.dtype != b.dtype:
            raise BindError(f"inputs A and B differ in dtype: {spec_text(a)} vs {spec_text(b)}")
        if a.dtype.kind not in self.kinds:
            raise BindError(f"input A: unsupported dtype {a.dtype.name}")
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise BindError(f"inputs do not broadcast: {spec_text(a)} and {spec_text(b)}") from None
        return [TensorSpec(tuple(shape), np.dtype(self.result) if self.result else a.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        getattr(xp, self.ufunc)(inputs[0], inputs[1], out=outputs[0])


@register("", "Add")
class Add(Binary):
    ufunc = "add"


@register("", "Sub")
class Sub(Binary):
    ufunc = "subtract"


@register("", "Mul")
class Mul(Binary):
    ufunc = "multiply"


@register("", "Div")
class Div(Binary):
    """Float division only: ONNX integer Div truncates, numpy's floors (never in a training graph)."""

    ufunc = "divide"
    kinds = "f"


@register("", "Greater")
class Greater(Binary):
    ufunc = "greater"
    result = "bool"


@register("", "Less")
class Less(Binary):
    ufunc = "less"
    result = "bool"


@register("", "GreaterOrEqual")
class GreaterOrEqual(Binary):
    ufunc = "greater_equal"
    result = "bool"


@register("", "LessOrEqual")
class LessOrEqual(Binary):
    ufunc = "less_equal"
    result = "bool"


@register("", "And")
class And(Binary):
    ufunc = "logical_and"
    result = "bool"
    kinds = "b"


@register("", "Sum")
class Sum(Kernel):
    """Elementwise sum of any number of inputs (gradient accumulation), broadcasting."""

    inputs = "X..."
    outputs = "Y"

    def setup(self) -> Sequence[TensorSpec | None]:
        specs = [self.x(i) for i in range(len(self.ins))]
        if len({s.dtype for s in specs}) > 1:
            raise BindError(f"inputs differ in dtype: {[spec_text(s) for s in specs]}")
        try:
            shape = np.broadcast_shapes(*(s.shape for s in specs))
        except ValueError:
            raise BindError(f"inputs do not broadcast: {[spec_text(s) for s in specs]}") from None
        return [TensorSpec(tuple(shape), specs[0].dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Array | None], outputs: Sequence[Any], scratch: Any
    ) -> None:
        y = outputs[0]
        if len(inputs) == 1:
            xp.copyto(y, inputs[0])
            return
        xp.add(inputs[0], inputs[1], out=y)
        for x in inputs[2:]:
            xp.add(y, x, out=y)


@register("", "Pow")
class Pow(Kernel):
    """``Z = X ** Y`` with numpy broadcasting; Z has X's (float) type, Y may be any number type.

    A constant one-element Y (the usual case: ``x ** 2`` in a layer-norm decomposition, where
    the gradient path needs it constant) is read at bind time: 1 copies, 2 multiplies X by
    itself (exactly the rounded square, as ``pow`` gives), anything else is one ``power``
    with a scalar of the type numpy computes ``X ** Y`` in, so that the result is the one a
    variable Y gives. A Y of another type is converted inside the ufunc (numpy's buffered
    casting; no temporary of tensor size).
    """

    inputs = "X Y"
    outputs = "Z"

    def setup(self) -> Sequence[TensorSpec | None]:
        x, y = self.float_input(0), self.x(1)
        if y.dtype.kind not in "fiu":
            raise BindError(f"input 1 (Y): expected a number type, got {spec_text(y)}")
        try:
            shape = tuple(np.broadcast_shapes(x.shape, y.shape))
        except ValueError:
            raise BindError(f"inputs do not broadcast: {spec_text(x)} and {spec_text(y)}") from None
        self.exponent: Any = None
        if y.value is not None and y.value.size == 1:
            # In the type numpy computes X ** Y in (float64 for a float32 X and an int64 or
            # float64 Y), as the variable path and ONNX do: rounding the exponent to X's type
            # and computing in float32 is up to 4 ulps off (x ** -1.7).
            compute = np.result_type(x.dtype, y.dtype)
            self.exponent = compute.type(np.asarray(y.value).reshape(-1)[0])
        return [TensorSpec(shape, x.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        x, z = inputs[0], outputs[0]
        if self.exponent is None:
            xp.power(x, inputs[1], out=z)
        elif self.exponent == 1:
            xp.copyto(z, x)
        elif self.exponent == 2:
            xp.multiply(x, x, out=z)
        else:
            xp.power(x, self.exponent, out=z)
