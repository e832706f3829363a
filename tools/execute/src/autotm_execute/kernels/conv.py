"""Conv and onnxruntime-training's ConvGrad, by im2col into scratch and BLAS matrix products.

Shapes: X ``[N, C, *S]``, W ``[M, C/G, *K]``, Y ``[N, M, *O]`` with G groups, ``P = prod(O)``.

Forward: the columns ``col[N, G, C/G * prod(K), P]`` are gathered from X one kernel tap at
a time (a strided copy per tap, zeros where the tap reads padding), then one batched matmul
``Y[n, g] = W[g] @ col[n, g]`` writes Y directly. A 1x1, stride-1, unpadded Conv needs no
columns: X already is them.

Backward: dY is transposed once to ``dYt[G, M/G, N*P]`` and the columns are gathered in the
matching layout ``[G, C/G * prod(K), N*P]``, so that both ``dW[g] = dYt[g] @ col[g].T`` and
``dcol[g] = W[g].T @ dYt[g]`` are one large matrix product per group. dX is then the
scatter-add of dcol over the taps (col2im), which reuses the columns' scratch region.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from autotm_execute.kernels.base import Array, TensorSpec, register
from autotm_execute.kernels.op import BindError, Kernel, ScratchLayout, spec_text, view
from autotm_execute.kernels.window import Window, window_from_attributes

CONV_ATTRIBUTES = {
    "auto_pad": "NOTSET",
    "dilations": None,
    "group": 1,
    "kernel_shape": None,
    "pads": None,
    "strides": None,
}


class _ConvGeometry(Kernel):
    """Binding shared by Conv and ConvGrad: the window, groups and tap index tuples."""

    attributes: ClassVar = CONV_ATTRIBUTES

    def bind_geometry(self, x: TensorSpec, w: TensorSpec) -> Window:
        if len(x.shape) < 3 or len(w.shape) != len(x.shape):
            raise BindError(
                f"expected X [N, C, *spatial] and W [M, C/group, *kernel] of equal rank, got "
                f"{spec_text(x)} and {spec_text(w)}"
            )
        groups = int(self.attrs["group"])
        n, c = x.shape[:2]
        m, cg = w.shape[:2]
        if groups < 1 or c % groups or m % groups or cg * groups != c:
            raise BindError(
                f"group {groups}: expected C = {c} and M = {m} divisible by it and W's second "
                f"dimension {cg} = C / group"
            )
        window = window_from_attributes(self.attrs, x.shape[2:], w.shape[2:])
        self.window = window
        self.n, self.g, self.cg, self.mg = n, groups, cg, m // groups
        self.spatial_in = tuple(x.shape[2:])
        self.p = int(np.prod(window.out_shape, dtype=np.int64))
        self.kk = int(np.prod(window.kernel, dtype=np.int64))
        self.trivial = (
            all(k == 1 for k in window.kernel)
            and all(s == 1 for s in window.strides)
            and not any(window.pads_begin)
            and not any(window.pads_end)
        )
        # Index tuples per tap over a [N, G, C/G, *K, *O] columns view and [N, G, C/G, *S] X.
        lead = (slice(None),) * 3
        self.taps = [
            (
                lead + tap.offset,
                (Ellipsis, *tap.out),
                (Ellipsis, *tap.inp),
                [(Ellipsis, *box) for box in tap.border] if not tap.full else [],
                tap.empty,
            )
            for tap in window.taps
        ]
        return window

    def im2col(self, xp: ModuleType, x: Array, cols: Array) -> None:
        """Gather X ``[N, C, *S]`` into ``cols`` viewed as ``[N, G, C/G, *K, *O]``."""
        x5 = x.reshape(self.n, self.g, self.cg, *self.spatial_in)
        for at, out, inp, border, empty in self.taps:
            dst = cols[at]
            if empty:
                dst.fill(0)
                continue
            for box in border:
                dst[box].fill(0)
            xp.copyto(dst[out], x5[inp])

    def col2im(self, xp: ModuleType, cols: Array, dx: Array) -> None:
        """Scatter-add ``cols`` viewed as ``[N, G, C/G, *K, *O]`` into dX ``[N, C, *S]``."""
        dx.fill(0)
        dx5 = dx.reshape(self.n, self.g, self.cg, *self.spatial_in)
        for at, out, inp, _, empty in self.taps:
            if empty:
                continue
            dst = dx5[inp]
            xp.add(dst, cols[at][out], out=dst)


@register("", "Conv")
class Conv(_ConvGeometry):
    """ONNX Conv (any spatial rank, groups, strides, pads, dilations, auto_pad).

    Scratch: the columns, ``N * C * prod(K) * P`` elements, none for a trivial 1x1 Conv.
    """

    inputs = "X W B?"

    def setup(self) -> Sequence[TensorSpec | None]:
        x, w = self.float_input(0), self.float_input(1)
        window = self.bind_geometry(x, w)
        m = w.shape[0]
        self.bias = self.has_input(2)
        if self.bias and self.x(2).shape != (m,):
            raise BindError(f"input 2 (B): expected shape [{m}], got {spec_text(self.x(2))}")
        self.cols = None
        if not self.trivial:
            regions = ScratchLayout()
            self.cols = regions.add(
                (self.n, self.g, self.cg, *window.kernel, *window.out_shape), x.dtype
            )
            self.layout(regions)
        return [TensorSpec((self.n, m, *window.out_shape), x.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        x, w = inputs[0], inputs[1]
        n, g = self.n, self.g
        if self.cols is None:
            cols = x.reshape(n, g, self.cg, self.p)
        else:
            cols = view(scratch, self.cols)
            self.im2col(xp, x, cols)
            cols = cols.reshape(n, g, self.cg * self.kk, self.p)
        y = outputs[0].reshape(n, g, self.mg, self.p)
        xp.matmul(w.reshape(g, self.mg, self.cg * self.kk), cols, out=y)
        if self.bias:
            xp.add(y, inputs[2].reshape(g, self.mg, 1), out=y)


@register("com.microsoft", "ConvGrad")
class ConvGrad(_ConvGeometry):
    """dX, dW, dB of Conv(X, W, B) from dY; each output optional (empty name when unused).

    Scratch: ``dYt`` (dY's size) whenever dW or a non-trivial dX is asked for, plus the
    columns (``N * C * prod(K) * P`` elements) for dW or for a non-trivial dX; a trivial
    1x1 Conv's dX alone needs none.
    """

    inputs = "dY X W"
    outputs = "dX? dW? dB?"

    def setup(self) -> Sequence[TensorSpec | None]:
        dy, x, w = self.float_input(0), self.float_input(1), self.float_input(2)
        window = self.bind_geometry(x, w)
        m = w.shape[0]
        want = (self.n, m, *window.out_shape)
        if dy.shape != want:
            raise BindError(
                f"input 0 (dY): expected shape [{','.join(map(str, want))}], got {spec_text(dy)}"
            )
        self.want_dx, self.want_dw, self.want_db = (self.has_output(i) for i in range(3))
        regions = ScratchLayout()
        self.dyt = self.cols = None
        gemm_dx = self.want_dx and not self.trivial
        if self.want_dw or gemm_dx:
            self.dyt = regions.add((self.g, self.mg, self.n, self.p), dy.dtype)
            self.cols = regions.add(
                (self.g, self.cg, *window.kernel, self.n, *window.out_shape), dy.dtype
            )
        self.layout(regions)
        r = window.rank
        # [G, C/G, *K, N, *O] -> [N, G, C/G, *K, *O]: the view im2col/col2im index.
        self.to_ngc = (2 + r, 0, 1, *range(2, 2 + r), *range(3 + r, 3 + 2 * r))
        return [x, w, TensorSpec((m,), dy.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        dy, x, w = inputs
        # trailing optional outputs may be left out of the node altogether
        dx = outputs[0] if self.want_dx else None
        dw = outputs[1] if self.want_dw else None
        db = outputs[2] if self.want_db else None
        n, g, cg, mg, p, ckk = self.n, self.g, self.cg, self.mg, self.p, self.cg * self.kk
        w3 = w.reshape(g, mg, ckk)
        if self.dyt is None:  # at most a trivial dX and/or dB
            if db is not None:
                xp.sum(dy.reshape(n, g * mg, p).sum(axis=2), axis=0, out=db)
            if dx is not None:
                dx4 = dx.reshape(n, g, cg, p)
                xp.matmul(w3.transpose(0, 2, 1), dy.reshape(n, g, mg, p), out=dx4)
            return
        dyt = view(scratch, self.dyt)
        xp.copyto(dyt, dy.reshape(n, g, mg, p).transpose(1, 2, 0, 3))
        dyt3 = dyt.reshape(g, mg, n * p)
        if db is not None:
            xp.sum(dyt.reshape(g * mg, n * p), axis=1, out=db)
        assert self.cols is not None  # allocated together with dyt
        cols = view(scratch, self.cols)
        cols3 = cols.reshape(g, ckk, n * p)
        if dw is not None:
            self.im2col(xp, x, cols.transpose(self.to_ngc))
            xp.matmul(dyt3, cols3.transpose(0, 2, 1), out=dw.reshape(g, mg, ckk))
        if dx is not None:
            if self.trivial:
                xp.matmul(
                    w3.transpose(0, 2, 1), dy.reshape(n, g, mg, p), out=dx.reshape(n, g, cg, p)
                )
            else:
                xp.matmul(w3.transpose(0, 2, 1), dyt3, out=cols3)
                self.col2im(xp, cols.transpose(self.to_ngc), dx)
