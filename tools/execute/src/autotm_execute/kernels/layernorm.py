"""Layer normalization (ONNX opset 17) and onnxruntime-training's LayerNormalizationGrad.

X is viewed as a matrix ``[M, N]``: M rows (the dimensions before ``axis``), each normalized
over its N elements (the dimensions from ``axis`` on). Statistics are per row, so the only
temporaries of the forward pass are ``[M, 1]`` arrays; the squared deviations are formed in
Y itself. The gradient needs the normalized input beside ``dY * scale``, which would be a
tensor-sized temporary, so it runs on chunks of rows with one chunk's ``x_hat`` in scratch
(at most :data:`ROWS_CAP` bytes, or one row when a row is larger), the way ConvGrad chunks
its images.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
from onnx import helper

from autotm_execute.kernels.base import Array, TensorSpec, register
from autotm_execute.kernels.op import BindError, Kernel, ScratchLayout, same_as, spec_text, view

#: Bytes of scratch one chunk of LayerNormalizationGrad rows may take (a per-core L2).
ROWS_CAP = 1 << 20


class _RowKernel(Kernel):
    """Binds X as ``[rows, cols]`` split at ``axis`` and a scale (and bias) over the columns."""

    def bind_rows(self, x: TensorSpec, params: Sequence[int]) -> None:
        if x.dtype not in (np.float32, np.float64):
            raise BindError(f"input X: expected float32 or float64, got {spec_text(x)}")
        rank = len(x.shape)
        if rank == 0:
            raise BindError("input X: expected a tensor of rank >= 1, got a scalar")
        self.ax = self.axis(int(self.attrs["axis"]), rank)
        self.norm_shape = tuple(x.shape[self.ax :])
        self.rows = int(np.prod(x.shape[: self.ax], dtype=np.int64))
        self.cols = int(np.prod(self.norm_shape, dtype=np.int64))
        self.stat_shape = tuple(x.shape[: self.ax]) + (1,) * (rank - self.ax)
        for index in params:
            spec = self.float_input(index)
            try:
                fits = np.broadcast_shapes(spec.shape, self.norm_shape) == self.norm_shape
            except ValueError:
                fits = False
            if not fits or spec.dtype != x.dtype:
                raise BindError(
                    f"input {index} ({self.input_name(index)}): expected {x.dtype.name} "
                    f"broadcasting to the normalized shape {list(self.norm_shape)}, got "
                    f"{spec_text(spec)}"
                )


@register("", "LayerNormalization")
class LayerNormalization(_RowKernel):
    """``Y = (X - mean) * inv_std * Scale + B`` with ``inv_std = 1 / sqrt(var + epsilon)``,
    the biased variance per row. Mean and InvStdDev (optional outputs, shaped
    ``X.shape[:axis] + [1] * (rank - axis)``) have the ``stash_type`` (1: float32, as ONNX
    says; 11: float64 is accepted too); the statistics are computed in X's type (for a float64
    X with stash_type 1, in float64 and then rounded, where the ONNX function would compute in
    float32: the reference evaluator does the same as we do)."""

    inputs = "X Scale B?"
    outputs = "Y Mean? InvStdDev?"
    attributes: ClassVar = {"axis": -1, "epsilon": 1e-5, "stash_type": 1}

    def setup(self) -> Sequence[TensorSpec | None]:
        x = self.x(0)
        self.bind_rows(x, (1, 2) if self.has_input(2) else (1,))
        stash = int(self.attrs["stash_type"])
        try:
            stash_dtype = np.dtype(helper.tensor_dtype_to_np_dtype(stash))
        except (KeyError, ValueError, TypeError):
            stash_dtype = None
        if stash_dtype not in (np.float32, np.float64):
            raise BindError(
                f"attribute 'stash_type': expected 1 (float) or 11 (double), got {stash}"
            )
        self.eps = x.dtype.type(self.attrs["epsilon"])
        self.inv_cols = x.dtype.type(1.0 / self.cols) if self.cols else x.dtype.type(0)
        stats = TensorSpec(self.stat_shape, np.dtype(stash_dtype))
        return [same_as(x), stats, stats]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        x, scale = inputs[0], inputs[1]
        bias = inputs[2] if len(inputs) > 2 else None
        y = outputs[0]
        x2, y2 = x.reshape(self.rows, self.cols), y.reshape(self.rows, self.cols)
        mean = xp.sum(x2, axis=1, keepdims=True)
        xp.multiply(mean, self.inv_cols, out=mean)
        xp.subtract(x2, mean, out=y2)
        xp.multiply(y2, y2, out=y2)
        inv_std = xp.sum(y2, axis=1, keepdims=True)
        xp.multiply(inv_std, self.inv_cols, out=inv_std)
        xp.add(inv_std, self.eps, out=inv_std)
        xp.sqrt(inv_std, out=inv_std)
        xp.reciprocal(inv_std, out=inv_std)
        xp.subtract(x2, mean, out=y2)
        xp.multiply(y2, inv_std, out=y2)
        xp.multiply(y, scale, out=y)
        if bias is not None:
            xp.add(y, bias, out=y)
        for index, stat in ((1, mean), (2, inv_std)):
            if len(outputs) > index and outputs[index] is not None:
                xp.copyto(outputs[index].reshape(self.rows, 1), stat, casting="same_kind")


@register("com.microsoft", "LayerNormalizationGrad")
class LayerNormalizationGrad(_RowKernel):
    """With ``x_hat = (X - mean) * inv_std`` per row and ``g = dY * scale``:
    ``dBias = sum_rows(dY)``, ``dScale = sum_rows(dY * x_hat)``,
    ``dX = inv_std * (g - mean_cols(g) - x_hat * mean_cols(g * x_hat))``.

    mean and inv_std_var are the forward's Mean and InvStdDev (any shape of M elements). The
    column means of g and g * x_hat are matrix-vector products with scale (``dY @ scale``,
    ``(dY * x_hat) @ scale``), so no product is ever formed beside the chunk's x_hat.
    Scratch: ``x_hat`` for one chunk of rows (see the module docstring).
    """

    inputs = "dY X scale mean inv_std_var"
    outputs = "dX dScale dBias?"
    attributes: ClassVar = {"axis": -1}

    def setup(self) -> Sequence[TensorSpec | None]:
        dy, x = self.x(0), self.x(1)
        if dy.shape != x.shape or dy.dtype != x.dtype:
            raise BindError(f"inputs dY and X differ: {spec_text(dy)} vs {spec_text(x)}")
        self.bind_rows(x, (2,))
        scale = self.x(2)
        if int(np.prod(scale.shape, dtype=np.int64)) != self.cols:
            raise BindError(
                f"input 2 (scale): expected {self.cols} elements (the normalized shape "
                f"{list(self.norm_shape)}), got {spec_text(scale)}"
            )
        for index in (3, 4):
            stat = self.float_input(index)
            if int(np.prod(stat.shape, dtype=np.int64)) != self.rows:
                raise BindError(
                    f"input {index} ({self.input_name(index)}): expected {self.rows} elements "
                    f"(one per normalized row), got {spec_text(stat)}"
                )
        row_bytes = max(1, self.cols * x.dtype.itemsize)
        self.chunk = max(1, min(self.rows, ROWS_CAP // row_bytes))
        self.inv_cols = x.dtype.type(1.0 / self.cols) if self.cols else x.dtype.type(0)
        self.scale_shape = scale.shape
        regions = ScratchLayout()
        self.x_hat = regions.add((self.chunk, self.cols), x.dtype)
        self.layout(regions)
        vector = TensorSpec(scale.shape, x.dtype)
        return [same_as(x), vector, vector]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        dy, x, scale, mean, inv_std = inputs
        dx, dscale = outputs[0], outputs[1]
        dbias = outputs[2] if len(outputs) > 2 else None
        shape = (self.rows, self.cols)
        dy2, x2, dx2 = dy.reshape(shape), x.reshape(shape), dx.reshape(shape)
        mean2, inv2 = mean.reshape(self.rows, 1), inv_std.reshape(self.rows, 1)
        w = scale.reshape(self.cols)
        dscale1 = dscale.reshape(self.cols)
        if dbias is not None:
            xp.sum(dy2, axis=0, out=dbias.reshape(self.cols))
        if not self.rows:  # no chunk writes dScale: the sum over no rows
            dscale.fill(0)
        x_hat_all = view(scratch, self.x_hat)
        for start in range(0, self.rows, self.chunk):
            stop = min(start + self.chunk, self.rows)
            rows = slice(start, stop)
            self.chunk_grad(
                xp,
                dy2[rows],
                x2[rows],
                mean2[rows],
                inv2[rows],
                w,
                dx2[rows],
                x_hat_all[: stop - start],
                dscale1,
                first=start == 0,
            )

    def chunk_grad(
        self,
        xp: ModuleType,
        dy: Array,
        x: Array,
        mean: Array,
        inv: Array,
        w: Array,
        dx: Array,
        x_hat: Array,
        dscale: Array,
        first: bool,
    ) -> None:
        """One chunk of rows: dX, and its rows' share of dScale."""
        xp.subtract(x, mean, out=x_hat)
        xp.multiply(x_hat, inv, out=x_hat)
        xp.multiply(dy, x_hat, out=dx)  # dY * x_hat
        if first:
            xp.sum(dx, axis=0, out=dscale)
        else:
            xp.add(dscale, xp.sum(dx, axis=0), out=dscale)
        b = xp.matmul(dx, w)  # sum_cols(g * x_hat), one per row
        a = xp.matmul(dy, w)  # sum_cols(g)
        xp.multiply(b, self.inv_cols, out=b)
        xp.multiply(a, self.inv_cols, out=a)
        xp.multiply(dy, w, out=dx)  # g
        xp.multiply(x_hat, b.reshape(-1, 1), out=x_hat)
        xp.subtract(dx, x_hat, out=dx)
        xp.subtract(dx, a.reshape(-1, 1), out=dx)
        xp.multiply(dx, inv, out=dx)
