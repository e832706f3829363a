"""Erf, and the exact GELU of onnxruntime (com.microsoft Gelu, GeluGrad), which need it.

numpy has no error function and ``autotm-execute`` does not depend on scipy, so on numpy the
kernels evaluate W. J. Cody's rational Chebyshev approximations ("Rational Chebyshev
approximations for the error function", Math. Comp. 23 (1969) 631-637; the coefficients of
his SPECFUN routine CALERF, near-minimax for IEEE double precision):

* ``|x| <= 0.46875``: ``erf(x) = x * P4(x^2) / Q4(x^2)``;
* ``0.46875 < |x| <= 4``: ``erfc(|x|) = exp(-x^2) * P8(|x|) / Q8(|x|)``;
* ``|x| > 4``: ``erfc(|x|) = exp(-x^2) / |x| * (1/sqrt(pi) - z * P5(z) / Q5(z))``, ``z = 1/x^2``;

and ``erf(x) = sign(x) * (1 - erfc(|x|))`` outside the first interval. Everything is computed
in float64 (the maximum error measured against ``math.erf`` is a few float64 ulps; CALERF's
extra care for ``exp(-x^2)`` at large ``|x|`` is left out, which costs nothing visible at
these magnitudes), then rounded once to the tensor's type: float32 results are the correctly
rounded ones but for rare ties. The third interval runs only for chunks that reach it.
GELU needs ``1 + erf(x / sqrt(2))``, taken from erfc itself (``erf_f64(plus_one=True)``) so
that the negative tail keeps its relative accuracy: Gelu and GeluGrad in float32 are also the
correctly rounded values (checked down to x = -13).

The evaluation goes in chunks of :data:`CHUNK` elements through float64 work arrays in the
kernel's scratch (a few hundred KiB at most, cache-resident). On cupy the kernels run as one
fused elementwise CUDA kernel each, with CUDA's own ``erf``/``erfc`` in the tensor's type,
and leave the scratch unused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from autotm_execute.kernels.base import Array, TensorSpec, register
from autotm_execute.kernels.op import BindError, Kernel, ScratchLayout, same_as, spec_text, view

#: Elements per chunk of the numpy evaluation: 64 KiB per float64 work array.
CHUNK = 8192
#: The fewest elements per chunk, so that a small tensor is not cut into many tiny chunks
#: whose per-call Python cost would outweigh the arithmetic.
MIN_CHUNK = 256

# Cody's coefficients, lowest degree first where he lists them so (see the module docstring).
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02)
_A3, _A4 = 3.20937758913846947e03, 1.85777706184603153e-1
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03)
_B3 = 2.84423683343917062e03
_C = (
    5.64188496988670089e-1,
    8.88314979438837594e00,
    6.61191906371416295e01,
    2.98635138197400131e02,
    8.81952221241769090e02,
    1.71204761263407058e03,
    2.05107837782607147e03,
)
_C7, _C8 = 1.23033935479799725e03, 2.15311535474403846e-8
_D = (
    1.57449261107098347e01,
    1.17693950891312499e02,
    5.37181101862009858e02,
    1.62138957456669019e03,
    3.29079923573345963e03,
    4.36261909014324716e03,
    3.43936767414372164e03,
)
_D7 = 1.23033935480374942e03
_P = (
    3.05326634961232344e-1,
    3.60344899949804439e-1,
    1.25781726111229246e-1,
    1.60837851487422766e-2,
)
_P4, _P5 = 6.58749161529837803e-4, 1.63153871373020978e-2
_Q = (
    2.56852019228982242e00,
    1.87295284992346047e00,
    5.27905102951428412e-1,
    6.05183413124413191e-2,
)
_Q4 = 2.33520497626869185e-3

SMALL, LARGE = 0.46875, 4.0
RSQRT_PI = 1.0 / math.sqrt(math.pi)
RSQRT_2 = 1.0 / math.sqrt(2.0)
RSQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

#: float64 work arrays of one chunk: the argument and result of erf, and :func:`erf_f64`'s.
WORK_ARRAYS = 2 + 5


def erf_f64(
    t: np.ndarray, out: np.ndarray, work: np.ndarray, masks: np.ndarray, plus_one: bool = False
) -> None:
    """``out = erf(t)`` (``plus_one``: ``1 + erf(t)``) for float64 1-D arrays of one length n
    (numpy only).

    ``plus_one`` is what GELU needs: ``1 + erf(t) = erfc(-t)`` is formed from erfc itself, so
    it keeps its relative accuracy for very negative t, where ``1 + erf(t)`` would cancel
    (GELU(-8) was 2 % off, GELU(-12) 0). ``work`` is a float64 ``[5, n]`` array and
    ``masks`` a bool ``[2, n]`` array, both scratch. ``out`` may not alias ``t``.
    """
    with np.errstate(invalid="ignore", over="ignore"):  # inf/inf where |x| is huge or inf:
        _erf_f64(t, out, work, masks, plus_one)  # that branch's result is replaced


def _erf_f64(
    t: np.ndarray, out: np.ndarray, work: np.ndarray, masks: np.ndarray, plus_one: bool
) -> None:
    y, z, num, den, extra = work
    big, far = masks
    np.absolute(t, out=y)
    # |x| <= 0.46875 (computed everywhere: it is the cheap part; overwritten below elsewhere).
    np.multiply(y, y, out=z)
    np.multiply(z, _A4, out=num)
    np.copyto(den, z)
    for a, b in zip(_A, _B, strict=True):
        np.add(num, a, out=num)
        np.multiply(num, z, out=num)
        np.add(den, b, out=den)
        np.multiply(den, z, out=den)
    np.add(num, _A3, out=num)
    np.add(den, _B3, out=den)
    np.divide(num, den, out=out)
    np.multiply(out, t, out=out)
    if plus_one:  # no cancellation here: |erf(t)| <= 0.5
        np.add(out, 1.0, out=out)
    np.greater(y, SMALL, out=big)
    if not big.any():
        return
    # 0.46875 < |x| <= 4: erfc(|x|) * exp(x^2) as P8(|x|) / Q8(|x|), on |x| clipped to 4.
    np.minimum(y, LARGE, out=z)
    np.multiply(z, _C8, out=num)
    np.copyto(den, z)
    for c, d in zip(_C, _D, strict=True):
        np.add(num, c, out=num)
        np.multiply(num, z, out=num)
        np.add(den, d, out=den)
        np.multiply(den, z, out=den)
    np.add(num, _C7, out=num)
    np.add(den, _D7, out=den)
    np.divide(num, den, out=num)
    # The mask, not y.max(): a NaN anywhere in the chunk would make the maximum NaN and skip
    # the asymptotic branch for every |x| > 4 of the chunk (erfc off by up to 100 %).
    np.greater(y, LARGE, out=far)
    if far.any():
        _erfcx_large(y, far, num, z, den, extra)
    # erfc(|x|) = exp(-x^2) * num, then erf = sign(x) * (1 - erfc) where |x| > 0.46875.
    np.multiply(y, y, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    np.multiply(z, num, out=z)
    if plus_one:  # 1 + erf(x) = erfc(|x|) for x < 0, 2 - erfc(|x|) for x > 0 (NaN stays)
        np.subtract(2.0, z, out=num)
        np.greater(t, 0.0, out=far)
        np.copyto(z, num, where=far)
    else:
        np.subtract(1.0, z, out=z)
        np.copysign(z, t, out=z)
    np.copyto(out, z, where=big)


def _erfcx_large(
    y: np.ndarray,
    far: np.ndarray,
    erfcx: np.ndarray,
    z: np.ndarray,
    den: np.ndarray,
    num: np.ndarray,
) -> None:
    """Overwrite ``erfcx`` (= ``erfc(y) * exp(y^2)``) where ``far`` (``y > 4``) with Cody's
    asymptotic rational; ``z``, ``den`` and ``num`` are work arrays."""
    np.maximum(y, LARGE, out=z)
    np.multiply(z, z, out=z)
    np.reciprocal(z, out=z)  # 1 / x^2
    np.multiply(z, _P5, out=num)
    np.copyto(den, z)
    for p, q in zip(_P, _Q, strict=True):
        np.add(num, p, out=num)
        np.multiply(num, z, out=num)
        np.add(den, q, out=den)
        np.multiply(den, z, out=den)
    np.add(num, _P4, out=num)
    np.add(den, _Q4, out=den)
    np.divide(num, den, out=num)
    np.multiply(num, z, out=num)
    np.subtract(RSQRT_PI, num, out=num)
    np.maximum(y, LARGE, out=z)
    np.divide(num, z, out=num)
    np.copyto(erfcx, num, where=far)


class _ErfKernel(Kernel):
    """Shared set-up: float inputs of one shape, chunked float64 scratch for numpy."""

    def setup(self) -> Sequence[TensorSpec | None]:
        specs = [self.float_input(i) for i in range(len(self.ins))]
        if specs[0].dtype not in (np.float32, np.float64):
            raise BindError(f"input 0: expected float32 or float64, got {spec_text(specs[0])}")
        for spec in specs[1:]:
            if spec.shape != specs[0].shape or spec.dtype != specs[0].dtype:
                raise BindError(
                    f"inputs differ: {spec_text(specs[0])} vs {spec_text(spec)} (same expected)"
                )
        self.size = int(np.prod(specs[0].shape, dtype=np.int64))
        # Scratch lives in the fast tier: no more than the tensor itself (as the convolutions'
        # COLUMNS_CAP rule), else a small network's GELU would need more fast memory than its
        # activations do, and at most CHUNK elements.
        per_element = WORK_ARRAYS * 8 + 2
        n = min(
            self.size, CHUNK, max(MIN_CHUNK, self.size * specs[0].dtype.itemsize // per_element)
        )
        self.chunk = n = max(1, n)
        regions = ScratchLayout()
        self.work = regions.add((WORK_ARRAYS, n), np.float64)
        self.masks = regions.add((2, n), np.bool_)
        self.layout(regions)
        return [same_as(specs[0])]

    def chunks(
        self, scratch: Array
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[slice]]:
        """Scratch views (argument, result, work, mask) and the chunk slices of the flat data."""
        work, masks = view(scratch, self.work), view(scratch, self.masks)
        parts = [slice(s, min(s + self.chunk, self.size)) for s in range(0, self.size, self.chunk)]
        return work[0], work[1], work[2:], masks, parts

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        if xp is np:
            self.run_numpy(inputs, outputs[0], scratch)
        else:
            self.run_cupy(xp, inputs, outputs[0])

    def run_numpy(self, inputs: Sequence[np.ndarray], out: np.ndarray, scratch: Array) -> None:
        raise NotImplementedError

    def run_cupy(self, xp: ModuleType, inputs: Sequence[Array], out: Array) -> None:
        _cuda_kernel(xp, type(self).__name__)(*inputs, out)


#: The fused CUDA bodies (cupy.ElementwiseKernel), one per op; T is the tensor's float type.
#: GELU uses ``1 + erf(t) = erfc(-t)`` (CUDA's erfc/erfcf, both overloads exist), which keeps
#: its relative accuracy for very negative x where ``1 + erf`` cancels. Unlike numpy's float64
#: evaluation, the argument is rounded to T, which erfc's tail amplifies: for x < -5 float32
#: results may differ from numpy's by tens of ulps (190 at x = -13; all below 1e-6).
_CUDA_BODIES = {
    "Erf": ("T x", "y = erf(x)"),
    "Gelu": ("T x", "y = (T)0.5 * x * erfc(-x * (T)RSQRT_2)"),
    "GeluGrad": (
        "T dy, T x",
        "y = dy * ((T)0.5 * erfc(-x * (T)RSQRT_2) + x * exp((T)-0.5 * x * x) * (T)RSQRT_2PI)",
    ),
}
_CUDA_CACHE: dict[str, Any] = {}


def _cuda_kernel(xp: ModuleType, name: str) -> Any:
    """The compiled fused kernel of an op (built on first use)."""
    kernel = _CUDA_CACHE.get(name)
    if kernel is None:
        params, body = _CUDA_BODIES[name]
        body = body.replace("RSQRT_2PI", repr(RSQRT_2PI)).replace("RSQRT_2", repr(RSQRT_2))
        kernel = xp.ElementwiseKernel(params, "T y", body, f"autotm_{name.lower()}")
        _CUDA_CACHE[name] = kernel
    return kernel


@register("", "Erf")
class Erf(_ErfKernel):
    def run_numpy(self, inputs: Sequence[np.ndarray], out: np.ndarray, scratch: Array) -> None:
        x, y = inputs[0].reshape(-1), out.reshape(-1)
        t, e, work, masks, parts = self.chunks(scratch)
        for part in parts:
            n = part.stop - part.start
            np.copyto(t[:n], x[part])
            erf_f64(t[:n], e[:n], work[:, :n], masks[:, :n])
            np.copyto(y[part], e[:n], casting="same_kind")


def two_phi(
    x: np.ndarray, t: np.ndarray, out: np.ndarray, work: np.ndarray, masks: np.ndarray
) -> None:
    """``out = 1 + erf(x / sqrt(2))`` (twice the normal distribution Phi) in float64, leaving
    ``t = x / sqrt(2)``; ``work`` and ``masks`` as for :func:`erf_f64`.

    x / sqrt(2) is formed in float64: np.multiply(x32, RSQRT_2, out=t) would pick the float32
    loop (a Python float is weak) and round the argument, which erfc's tail amplifies (Gelu(x)
    off by 20 float32 ulps at x = -5, 190 at x = -13).
    """
    np.copyto(t, x)
    np.multiply(t, RSQRT_2, out=t)
    erf_f64(t, out, work, masks, plus_one=True)


@register("com.microsoft", "Gelu")
class Gelu(_ErfKernel):
    """``Y = X * Phi(X) = 0.5 * X * (1 + erf(X / sqrt(2)))`` (onnxruntime's exact GELU)."""

    def run_numpy(self, inputs: Sequence[np.ndarray], out: np.ndarray, scratch: Array) -> None:
        x, y = inputs[0].reshape(-1), out.reshape(-1)
        t, e, work, masks, parts = self.chunks(scratch)
        for part in parts:
            n = part.stop - part.start
            tn, en = t[:n], e[:n]
            two_phi(x[part], tn, en, work[:, :n], masks[:, :n])
            np.multiply(en, x[part], out=en)
            np.multiply(en, 0.5, out=y[part], casting="same_kind")


@register("com.microsoft", "GeluGrad")
class GeluGrad(_ErfKernel):
    """``dX = dY * (Phi(X) + X * phi(X))``: the derivative of X * Phi(X), with the standard
    normal's distribution Phi and density ``phi(x) = exp(-x^2 / 2) / sqrt(2 pi)``."""

    inputs = "dY X"
    outputs = "dX"

    def run_numpy(self, inputs: Sequence[np.ndarray], out: np.ndarray, scratch: Array) -> None:
        dy, x, dx = inputs[0].reshape(-1), inputs[1].reshape(-1), out.reshape(-1)
        t, e, work, masks, parts = self.chunks(scratch)
        for part in parts:
            n = part.stop - part.start
            tn, en = t[:n], e[:n]
            two_phi(x[part], tn, en, work[:, :n], masks[:, :n])
            np.multiply(en, 0.5, out=en)  # Phi(x)
            np.multiply(tn, tn, out=tn)  # x^2 / 2
            np.negative(tn, out=tn)
            np.exp(tn, out=tn)
            np.multiply(tn, x[part], out=tn)
            np.multiply(tn, RSQRT_2PI, out=tn)  # x * phi(x)
            np.add(en, tn, out=en)
            np.multiply(en, dy[part], out=dx[part], casting="same_kind")
