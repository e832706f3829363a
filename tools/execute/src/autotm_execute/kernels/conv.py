"""Conv and onnxruntime-training's ConvGrad, by im2col into scratch and BLAS matrix products.

Shapes: X ``[N, C, *S]``, W ``[M, C/G, *K]``, Y ``[N, M, *O]`` with G groups, ``P = prod(O)``.

Why the batch is cut into chunks: a kernel's scratch always lives in the fast memory tier, and
the AutoTM optimizer reserves it there for the kernel whatever the plan, so scratch is a floor
under every fast-memory budget. Columns for the whole batch are ``prod(K)`` times the input (9x
for a 3x3 Conv) and would make small budgets infeasible. So both kernels work on chunks of
images, as many as fit :data:`COLUMNS_CAP` bytes of scratch (at least one, and balanced: the
last chunk may be smaller), and their scratch holds one chunk, as MKL-DNN's small workspaces
did for the original AutoTM. A chunk's columns also stay in cache between im2col and the
matrix product. The chunking is fixed at bind time, so every run does the same arithmetic in
the same order and reruns are bit-identical.

im2col gathers a chunk's columns ``col[n, G, C/G, *K, *O]`` one kernel tap at a time, a
strided copy of the box of outputs that read real input, after zeroing the columns that read
padding as a few strips (one before and one after the real box, per kernel index along each
padded axis: 4 for a 3x3 Conv with padding 1; Conv zeroes them once per run, since nothing
else writes its columns). col2im is its adjoint: one strided add per tap into dX, which is
zeroed first or, when one tap reads every input once (a stride-1 "same" Conv), starts as that
tap's copy. About two numpy calls per tap and chunk: the per-chunk Python cost is what keeps
the cap from being much smaller (see :data:`COLUMNS_CAP`).

Forward, per chunk: im2col, then one batched matmul ``Y[n, g] = W[g] @ col[n, g]`` writes the
chunk of Y directly (and the bias is added while it is in cache). A 1x1, stride-1, unpadded
Conv needs no columns (X already is them) and runs on the whole batch at once.

Backward, per chunk: dY's images are transposed to ``dYt[G, M/G, n*P]`` and the columns
gathered in the matching layout ``[G, C/G * prod(K), n*P]``, so that ``dW[g] += dYt[g] @
col[g].T`` and ``dcol[g] = W[g].T @ dYt[g]`` are one matrix product per group. The first chunk
writes dW (and dB, a row sum of dYt) directly; later chunks multiply into a dW-sized scratch
region and add it (that region exists only when there are several chunks). dX's chunk is then
the col2im of dcol, which reuses the chunk's column region. A trivial 1x1 Conv's dX is one
matmul from dY, without columns; without dYt, dB is a sum over the whole of dY.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from autotm_execute.kernels.base import Array, TensorSpec, register
from autotm_execute.kernels.op import BindError, Kernel, Region, ScratchLayout, spec_text, view
from autotm_execute.kernels.window import Window, window_from_attributes

#: Bytes of scratch per chunk of images above which the batch is split: Conv needs one
#: image's columns per image, ConvGrad its columns plus its transposed dY. A chunk holds at
#: least one image, so a kernel's scratch is at most ``max(COLUMNS_CAP, one image's worth)``
#: plus region alignment (ConvGrad adds a dW-sized accumulator when there are several chunks).
#: Read when a kernel is bound, so tests may change it. Measured (benchmarks/execute_kernels.md):
#: 1 MiB is a per-core L2 here; large layers run up to 21 % faster than with whole-batch
#: columns, the mini networks' conv layers 1 to 2 % faster than before chunking, while 256 and
#: 512 KiB lose on their small layers (per-chunk numpy calls) and 2 MiB would leave
#: inception_v4-mini's largest ConvGrad (1.4 MiB) whole, and its 4:1 ratio infeasible.
COLUMNS_CAP = 1 << 20

CONV_ATTRIBUTES = {
    "auto_pad": "NOTSET",
    "dilations": None,
    "group": 1,
    "kernel_shape": None,
    "pads": None,
    "strides": None,
}


def columns_cap(x: TensorSpec) -> int:
    """The chunk cap of one layer: COLUMNS_CAP, or the layer's input size when that is smaller.

    Scratch counts against the fast tier's budget, and on small networks a fixed 1 MiB can be
    a large share of the whole footprint (a 7x7 stem's columns are 49x its input per channel);
    capping at the input's size keeps a layer's scratch no larger than a tensor it reads anyway
    (one image's columns at least), without costing speed on the layers big enough to matter.
    """
    return min(COLUMNS_CAP, max(1, x.nbytes))


def images_per_chunk(batch: int, per_image_bytes: int, cap: int | None = None) -> int:
    """Images per chunk: at least one, at most what fits ``cap`` (default COLUMNS_CAP), and
    balanced, since for the same number of chunks equal ones need the least scratch."""
    limit = COLUMNS_CAP if cap is None else cap
    fit = max(1, min(batch, limit // max(1, per_image_bytes)))
    count = -(-batch // fit)
    return -(-batch // count)


def chunk_bounds(batch: int, chunk: int) -> list[tuple[int, int]]:
    """``[start, stop)`` image ranges of the chunks, in order; the last may be smaller."""
    return [(start, min(batch, start + chunk)) for start in range(0, batch, chunk)]


def resized(region: Region, axis: int, size: int) -> Region:
    """The region's leading bytes viewed with ``size`` along ``axis``: a smaller last chunk
    is still one contiguous array, whatever axis its images are on."""
    start, _, shape, dtype = region
    new_shape = (*shape[:axis], size, *shape[axis + 1 :])
    nbytes = int(np.prod(new_shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return (start, nbytes, new_shape, dtype)


class _ConvGeometry(Kernel):
    """Binding shared by Conv and ConvGrad: the window, groups and per-tap index tuples."""

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
        # Per tap reading some real input, full index tuples (one indexing per numpy call):
        # into a [n, G, C/G, *K, *O] columns view, the box of outputs that read real input;
        # into X's [n, G, C/G, *S], the inputs they read.
        lead = (slice(None),) * 3
        self.taps = [
            ((*lead, *tap.offset, *tap.out), (*lead, *tap.inp))
            for tap in window.taps
            if not tap.empty
        ]
        # A tap reading every input exactly once (the centre of a stride-1 "same" Conv) lets
        # col2im start dX with a copy instead of zeroing it: put it first.
        self.covering = False
        for tap in window.taps:
            if not tap.empty and all(
                part.indices(size) == (0, size, 1) and box.stop - box.start == size
                for part, box, size in zip(tap.inp, tap.out, self.spatial_in, strict=True)
            ):
                first = (*lead, *tap.offset, *tap.out), (*lead, *tap.inp)
                self.taps.remove(first)
                self.taps.insert(0, first)
                self.covering = True
                break
        # The columns that read padding, as few boxes as possible: along each spatial axis,
        # whether an output reads padding depends only on the kernel index along that axis,
        # so each kernel index with padding gives one box before and one after the outputs
        # that read real input, across every other axis and kernel index.
        rank, full = window.rank, slice(None)
        self.padding: list[tuple[slice | int, ...]] = []
        for axis in range(rank):
            for tap in window.taps:
                if any(tap.offset[other] for other in range(rank) if other != axis):
                    continue  # one tap per kernel index along this axis
                part, size = tap.out[axis], window.out_shape[axis]
                for strip in (slice(0, part.start), slice(part.stop, size)):
                    if strip.start < strip.stop:
                        kernel: list[slice | int] = [full] * rank
                        kernel[axis] = tap.offset[axis]
                        spatial = [full] * rank
                        spatial[axis] = strip
                        self.padding.append((*lead, *kernel, *spatial))
        return window

    def column_bytes(self, dtype: Any) -> int:
        """Bytes of one image's columns: ``C * prod(K) * P`` elements."""
        return self.g * self.cg * self.kk * self.p * np.dtype(dtype).itemsize

    def zero_padding(self, cols: Array) -> None:
        """Zero the columns ``[n, G, C/G, *K, *O]`` that read padding."""
        for box in self.padding:
            cols[box].fill(0)

    def im2col(self, xp: ModuleType, x: Array, cols: Array, zero: bool = True) -> None:
        """Gather X's images ``[n, C, *S]`` into ``cols`` viewed as ``[n, G, C/G, *K, *O]``;
        ``zero=False`` when the columns that read padding are known to be zero already."""
        images = x.reshape(x.shape[0], self.g, self.cg, *self.spatial_in)
        if zero:
            self.zero_padding(cols)
        for out, inp in self.taps:
            xp.copyto(cols[out], images[inp])

    def col2im(self, xp: ModuleType, cols: Array, dx: Array) -> None:
        """Scatter-add ``cols`` viewed as ``[n, G, C/G, *K, *O]`` into dX's ``[n, C, *S]``;
        what the taps read from padding is dropped."""
        images = dx.reshape(dx.shape[0], self.g, self.cg, *self.spatial_in)
        taps = self.taps
        if self.covering:
            xp.copyto(images, cols[taps[0][0]])
            taps = taps[1:]
        else:
            dx.fill(0)
        for out, inp in taps:
            dst = images[inp]
            xp.add(dst, cols[out], out=dst)


@register("", "Conv")
class Conv(_ConvGeometry):
    """ONNX Conv (any spatial rank, groups, strides, pads, dilations, auto_pad).

    Scratch: one chunk's columns, ``chunk * C * prod(K) * P`` elements; none for a trivial
    1x1 Conv.
    """

    inputs = "X W B?"

    def setup(self) -> Sequence[TensorSpec | None]:
        x, w = self.float_input(0), self.float_input(1)
        window = self.bind_geometry(x, w)
        m = w.shape[0]
        self.bias = self.has_input(2)
        if self.bias and self.x(2).shape != (m,):
            raise BindError(f"input 2 (B): expected shape [{m}], got {spec_text(self.x(2))}")
        # (start, stop, columns region) per chunk; none for a trivial Conv
        self.chunks: list[tuple[int, int, Region]] = []
        if not self.trivial:
            self.chunk = images_per_chunk(self.n, self.column_bytes(x.dtype), columns_cap(x))
            regions = ScratchLayout()
            cols = regions.add(
                (self.chunk, self.g, self.cg, *window.kernel, *window.out_shape), x.dtype
            )
            self.chunks = [
                (start, stop, resized(cols, 0, stop - start))
                for start, stop in chunk_bounds(self.n, self.chunk)
            ]
            self.layout(regions)
        return [TensorSpec((self.n, m, *window.out_shape), x.dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        x, w = inputs[0], inputs[1]
        g, mg, p, ckk = self.g, self.mg, self.p, self.cg * self.kk
        w3 = w.reshape(g, mg, ckk)
        y = outputs[0].reshape(self.n, g, mg, p)
        bias = inputs[2].reshape(g, mg, 1) if self.bias else None
        if not self.chunks:  # trivial: X is the columns
            xp.matmul(w3, x.reshape(self.n, g, self.cg, p), out=y)
            if bias is not None:
                xp.add(y, bias, out=y)
            return
        # Only im2col writes the columns, and a smaller last chunk's view is a prefix of the
        # first one's (images lead): zero the columns that read padding once per run.
        self.zero_padding(view(scratch, self.chunks[0][2]))
        for start, stop, region in self.chunks:
            cols = view(scratch, region)
            self.im2col(xp, x[start:stop], cols, zero=False)
            y_chunk = y[start:stop]
            xp.matmul(w3, cols.reshape(stop - start, g, ckk, p), out=y_chunk)
            if bias is not None:  # while the chunk of Y is still in cache
                xp.add(y_chunk, bias, out=y_chunk)


@register("com.microsoft", "ConvGrad")
class ConvGrad(_ConvGeometry):
    """dX, dW, dB of Conv(X, W, B) from dY; each output optional (empty name when unused).

    Scratch, whenever dW or a non-trivial dX is asked for: one chunk's transposed dY
    (``chunk * M * P`` elements) and columns (``chunk * C * prod(K) * P``), plus a dW-sized
    accumulator when dW is asked for and the batch takes several chunks. dB alone, and a
    trivial 1x1 Conv's dX, need none.
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
        # (start, stop, dYt region, columns region) per chunk; none when no columns are needed
        self.chunks: list[tuple[int, int, Region, Region]] = []
        self.dw_part: Region | None = None
        r = window.rank
        if self.want_dw or (self.want_dx and not self.trivial):
            per_image = self.column_bytes(dy.dtype) + m * self.p * dy.dtype.itemsize
            self.chunk = images_per_chunk(self.n, per_image, columns_cap(x))
            dyt = regions.add((self.g, self.mg, self.chunk, self.p), dy.dtype)
            cols = regions.add(
                (self.g, self.cg, *window.kernel, self.chunk, *window.out_shape), dy.dtype
            )
            self.chunks = [
                (start, stop, resized(dyt, 2, stop - start), resized(cols, 2 + r, stop - start))
                for start, stop in chunk_bounds(self.n, self.chunk)
            ]
            if self.want_dw and len(self.chunks) > 1:
                self.dw_part = regions.add((self.g, self.mg, self.cg * self.kk), dy.dtype)
        self.layout(regions)
        # [G, C/G, *K, n, *O] -> [n, G, C/G, *K, *O]: the view im2col/col2im index.
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
        dy4 = dy.reshape(n, g, mg, p)
        if db is not None and not self.chunks:
            xp.sum(dy.reshape(n, g * mg, p), axis=(0, 2), out=db)
            db = None  # done; otherwise summed from dYt, contiguous, chunk by chunk
        if dx is not None and self.trivial:
            xp.matmul(w3.transpose(0, 2, 1), dy4, out=dx.reshape(n, g, cg, p))
            dx = None  # done: no columns needed
        dw3 = dw.reshape(g, mg, ckk) if dw is not None else None
        for index, (start, stop, dyt_region, cols_region) in enumerate(self.chunks):
            first, columns = index == 0, (stop - start) * p
            dyt = view(scratch, dyt_region)
            xp.copyto(dyt, dy4[start:stop].transpose(1, 2, 0, 3))
            dyt3 = dyt.reshape(g, mg, columns)
            if db is not None:
                if first:
                    xp.sum(dyt.reshape(g * mg, columns), axis=1, out=db)
                else:  # a per-channel temporary, M elements
                    xp.add(db, dyt.reshape(g * mg, columns).sum(axis=1), out=db)
            cols = view(scratch, cols_region)
            cols3 = cols.reshape(g, ckk, columns)
            if dw3 is not None:
                self.im2col(xp, x[start:stop], cols.transpose(self.to_ngc))
                if first:
                    xp.matmul(dyt3, cols3.transpose(0, 2, 1), out=dw3)
                else:
                    assert self.dw_part is not None  # allocated whenever there are 2+ chunks
                    part = view(scratch, self.dw_part)
                    xp.matmul(dyt3, cols3.transpose(0, 2, 1), out=part)
                    xp.add(dw3, part, out=dw3)
            if dx is not None:
                xp.matmul(w3.transpose(0, 2, 1), dyt3, out=cols3)
                self.col2im(xp, cols.transpose(self.to_ngc), dx[start:stop])
