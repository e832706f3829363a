"""Gemm and MatMul: one BLAS call each (``xp.matmul(out=)`` on transposed views, no copies).

The backward of a Gemm in a training graph is itself made of Gemms with transposes, so these
two kernels carry the fully connected layers both ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from autotm_execute.kernels.base import TensorSpec, register
from autotm_execute.kernels.op import BindError, Kernel, ScratchLayout, spec_text, view


@register("", "Gemm")
class Gemm(Kernel):
    """``Y = alpha * A' @ B' + beta * C`` with ``A'`` = A or A.T (transA), likewise B.

    Scratch: C's size when a C is given and beta is neither 0 nor 1 (it holds beta * C).
    """

    inputs = "A B C?"
    attributes: ClassVar = {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0}

    def setup(self) -> Sequence[TensorSpec | None]:
        a, b = self.float_input(0), self.float_input(1)
        if len(a.shape) != 2 or len(b.shape) != 2:
            raise BindError(f"expected 2-D A and B, got {spec_text(a)} and {spec_text(b)}")
        self.trans_a, self.trans_b = bool(self.attrs["transA"]), bool(self.attrs["transB"])
        m, k = a.shape[::-1] if self.trans_a else a.shape
        k2, n = b.shape[::-1] if self.trans_b else b.shape
        if k != k2:
            raise BindError(
                f"inner dimensions differ: A' is {m}x{k}, B' is {k2}x{n} "
                f"(transA={int(self.trans_a)}, transB={int(self.trans_b)})"
            )
        dtype = a.dtype.type
        self.alpha, self.beta = dtype(self.attrs["alpha"]), dtype(self.attrs["beta"])
        self.has_c = self.has_input(2) and self.beta != 0
        self.scaled_c = None
        if self.has_c:
            c = self.x(2)
            try:
                if np.broadcast_shapes(c.shape, (m, n)) != (m, n):
                    raise ValueError
            except ValueError:
                raise BindError(f"input C {spec_text(c)} does not broadcast to [{m},{n}]") from None
            if self.beta != 1:
                regions = ScratchLayout()
                self.scaled_c = regions.add(c.shape, c.dtype)
                self.layout(regions)
        return [TensorSpec((m, n), a.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        a, b = inputs[0], inputs[1]
        y = outputs[0]
        xp.matmul(a.T if self.trans_a else a, b.T if self.trans_b else b, out=y)
        if self.alpha != 1:
            xp.multiply(y, self.alpha, out=y)
        if self.has_c:
            c = inputs[2]
            if self.scaled_c is not None:
                tmp = view(scratch, self.scaled_c)
                xp.multiply(c, self.beta, out=tmp)
                c = tmp
            xp.add(y, c, out=y)


def matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """The shape ``numpy.matmul`` (= ONNX MatMul) gives, or ValueError."""
    if not a or not b:
        raise ValueError("scalars cannot be multiplied as matrices")
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ValueError(f"inner dimensions differ ({a2[-1]} vs {b2[-2]})")
    batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    shape = (*batch, a2[-2], b2[-1])
    if len(a) == 1:
        shape = shape[:-2] + shape[-1:]
    if len(b) == 1:
        shape = shape[:-1]
    return tuple(int(s) for s in shape)


@register("", "MatMul")
class MatMul(Kernel):
    """numpy matmul semantics: batched over leading dimensions, which broadcast (attention's
    ``[N, H, T, D] @ [N, H, D, T]``, ``[N, T, D] @ [D, E]``, 1-D operands as numpy treats them).

    One ``matmul(out=)`` writing the output: numpy loops over the (broadcast) batch calling
    BLAS per matrix, cupy calls one batched cuBLAS GEMM (through pointer arrays when the batch
    broadcasts), neither copies contiguous operands. A batch of A times a 2-D B is one GEMM of
    the stacked rows instead (``[N*T, D] @ [D, E]``, views of the same buffers), which BLAS
    runs faster than N small ones.
    """

    inputs = "A B"

    def setup(self) -> Sequence[TensorSpec | None]:
        a, b = self.float_input(0), self.float_input(1)
        if a.dtype != b.dtype:
            raise BindError(f"inputs A and B differ in dtype: {spec_text(a)} vs {spec_text(b)}")
        try:
            shape = matmul_shape(a.shape, b.shape)
        except ValueError as exc:
            raise BindError(f"{spec_text(a)} @ {spec_text(b)}: {exc}") from None
        self.stacked: tuple[tuple[int, int], tuple[int, int]] | None = None
        if len(a.shape) > 2 and len(b.shape) == 2:
            rows = int(np.prod(a.shape[:-1], dtype=np.int64))
            self.stacked = ((rows, a.shape[-1]), (rows, b.shape[-1]))
        return [TensorSpec(shape, a.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        a, b = inputs
        y = outputs[0]
        if self.stacked is not None:
            a_shape, y_shape = self.stacked
            xp.matmul(a.reshape(a_shape), b, out=y.reshape(y_shape))
        else:
            xp.matmul(a, b, out=y)
