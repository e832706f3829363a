"""Batch normalization: inference, training (ONNX and onnxruntime's BatchNormInternal), and
onnxruntime-training's BatchNormalizationGrad.

Statistics are per channel (axis 1) over every other axis. Channel sums reduce the
contiguous spatial block first (``[N, C, S] -> [N, C]``, pairwise summation) and then the
batch, so the only temporaries are ``[N, C]`` and ``[C]`` arrays. The variance's squared
deviations and the gradient's intermediate products are formed in the output buffer itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from autotm_execute.kernels.base import Array, TensorSpec, register
from autotm_execute.kernels.op import BindError, Kernel, channel_shape, same_as, spec_text


class _BatchNorm(Kernel):
    """Shapes shared by the three kernels: X ``[N, C, ...]`` and per-channel vectors."""

    def bind_channels(self, x: TensorSpec, vectors: Sequence[int]) -> None:
        if len(x.shape) < 2:
            raise BindError(f"expected X of rank >= 2 [N, C, ...], got {spec_text(x)}")
        self.n, self.c = x.shape[:2]
        self.rest = int(np.prod(x.shape[2:], dtype=np.int64))
        self.count = self.n * self.rest
        self.cshape = channel_shape(len(x.shape))
        for index in vectors:
            spec = self.float_input(index)
            if spec.shape != (self.c,):
                raise BindError(
                    f"input {index} ({self.input_name(index)}): expected shape [{self.c}], "
                    f"got {spec_text(spec)}"
                )
        self.dtype = x.dtype
        self.eps = x.dtype.type(self.attrs["epsilon"])

    def channel_sum(self, xp: ModuleType, x: Array, out: Array) -> None:
        """``out[c] = sum of x over every axis but 1``."""
        xp.sum(x.reshape(self.n, self.c, self.rest).sum(axis=2), axis=0, out=out)


class _Normalize(_BatchNorm):
    """Y from X; in training mode from the batch statistics, which also update the running
    statistics (``running = momentum * input + (1 - momentum) * batch``, biased variance)."""

    inputs = "X scale B input_mean input_var"
    attributes: ClassVar = {"epsilon": 1e-5, "momentum": 0.9, "training_mode": 0}

    def setup(self) -> Sequence[TensorSpec | None]:
        x = self.float_input(0)
        self.bind_channels(x, (1, 2, 3, 4))
        self.training = bool(self.attrs["training_mode"])
        self.momentum = x.dtype.type(self.attrs["momentum"])
        vector = TensorSpec((self.c,), x.dtype)
        return [same_as(x)] + [vector] * (len(self.outs) - 1)

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        x, scale, bias, mean_in, var_in = inputs
        y = outputs[0]
        if not self.training:
            inv_std = xp.reciprocal(xp.sqrt(var_in + self.eps))
            self.apply(xp, x, y, scale, bias, mean_in, inv_std)
            return
        saved_mean = outputs[3] if len(outputs) > 3 else None
        saved_inv_std = outputs[4] if len(outputs) > 4 else None
        mean = saved_mean if saved_mean is not None else xp.empty(self.c, self.dtype)
        self.channel_sum(xp, x, mean)
        xp.divide(mean, self.count, out=mean)
        xp.subtract(x, mean.reshape(self.cshape), out=y)
        xp.multiply(y, y, out=y)
        var = xp.empty(self.c, self.dtype)
        self.channel_sum(xp, y, var)
        xp.divide(var, self.count, out=var)
        keep = self.momentum
        if len(outputs) > 1 and outputs[1] is not None:
            xp.add(mean_in * keep, mean * (1 - keep), out=outputs[1])
        if len(outputs) > 2 and outputs[2] is not None:
            xp.add(var_in * keep, var * (1 - keep), out=outputs[2])
        inv_std = saved_inv_std if saved_inv_std is not None else var
        xp.sqrt(xp.reciprocal(var + self.eps), out=inv_std)
        self.apply(xp, x, y, scale, bias, mean, inv_std)

    def apply(
        self,
        xp: ModuleType,
        x: Array,
        y: Array,
        scale: Array,
        bias: Array,
        mean: Array,
        inv_std: Array,
    ) -> None:
        """``Y = X * (inv_std * scale) + (B - mean * inv_std * scale)``, as onnxruntime fuses it."""
        new_scale = inv_std * scale
        new_bias = bias - mean * new_scale
        xp.multiply(x, new_scale.reshape(self.cshape), out=y)
        xp.add(y, new_bias.reshape(self.cshape), out=y)


@register("", "BatchNormalization")
class BatchNormalization(_Normalize):
    """ONNX BatchNormalization (opset 15): inference, or training_mode=1 with the updated
    running statistics as optional outputs 1 and 2."""

    outputs = "Y running_mean? running_var?"


@register("com.microsoft", "BatchNormInternal")
class BatchNormInternal(_Normalize):
    """onnxruntime's training batch norm: also outputs the batch mean and 1/sqrt(var + eps)
    that BatchNormalizationGrad needs."""

    outputs = "Y running_mean? running_var? saved_mean? saved_inv_std?"
    attributes: ClassVar = {"epsilon": 1e-5, "momentum": 0.9, "training_mode": 1}


@register("com.microsoft", "BatchNormalizationGrad")
class BatchNormalizationGrad(_BatchNorm):
    """With ``xhat = (X - mean) * inv_std`` and M elements per channel:
    ``dB = sum(dY)``, ``dScale = sum(dY * xhat)``,
    ``dX = scale * inv_std * (dY - dB / M - xhat * dScale / M)``."""

    inputs = "dY X scale saved_mean saved_inv_std"
    outputs = "dX dScale dB"
    attributes: ClassVar = {"epsilon": 1e-5}

    def setup(self) -> Sequence[TensorSpec | None]:
        dy, x = self.float_input(0), self.float_input(1)
        if dy.shape != x.shape:
            raise BindError(f"inputs dY and X differ in shape: {spec_text(dy)} vs {spec_text(x)}")
        self.bind_channels(x, (2, 3, 4))
        vector = TensorSpec((self.c,), x.dtype)
        return [same_as(x), vector, vector]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        dy, x, scale, mean, inv_std = inputs
        dx, dscale, dbias = outputs
        cshape, count = self.cshape, self.count
        self.channel_sum(xp, dy, dbias)
        mean_c, inv_std_c = mean.reshape(cshape), inv_std.reshape(cshape)
        xp.subtract(x, mean_c, out=dx)
        xp.multiply(dx, inv_std_c, out=dx)
        xp.multiply(dx, dy, out=dx)
        self.channel_sum(xp, dx, dscale)
        xp.subtract(x, mean_c, out=dx)
        xp.multiply(dx, (inv_std * dscale / count).reshape(cshape), out=dx)
        xp.add(dx, (dbias / count).reshape(cshape), out=dx)
        xp.subtract(dy, dx, out=dx)
        xp.multiply(dx, (scale * inv_std).reshape(cshape), out=dx)
