"""Random ops of training-mode exports (stochastic depth): Bernoulli and RandomUniformLike.

``autotm-execute --verify`` compares a planned run with an all-fast one bit for bit, and a
kernel keeps no state, so the draws are a pure function of a 64-bit *stream key* and of each
element's flat index: ``u = hash(index, key)``, the ``lowbias32`` integer hash (as Dropout's
mask) applied twice, once per 32-bit half of the key. :func:`autotm_execute.kernels.bind_node`
derives the key from the run's seed, the node (its first output's name, unique in a graph)
and the node's ``seed`` attribute, and hands it over as the reserved attribute
:data:`STREAM_ATTRIBUTE`; bound without it (``lookup(...).bind``), the key comes from the
``seed`` attribute alone. So every node draws its own numbers, a run draws the same ones in
each iteration (iterations start from the same state and ``--verify`` compares the last one
with a single all-fast iteration), and numpy and cupy draw identical ones (uint32
arithmetic, exact conversions).

Uniform numbers take the top ``m`` bits of the hash, ``m`` the float type's significand
precision (24 for float32, 32 for float64): ``u = (h >> (32 - m)) * 2**-m`` lies in [0, 1)
exactly. Bernoulli outputs ``u < p`` in its output type.

The hash runs on chunks of at most :data:`CHUNK_ROWS` rows of :data:`ROW` indices, built as
``row * ROW + column`` from two small ranges; scratch: two uint32 arrays of one chunk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
from onnx import helper

from autotm_execute.kernels.base import Array, TensorSpec, register
from autotm_execute.kernels.op import BindError, Kernel, ScratchLayout, spec_text, view

#: The attribute through which bind_node passes a node's stream key (never in a model).
STREAM_ATTRIBUTE = "_autotm_stream"

ROW = 4096
CHUNK_ROWS = 16
_M1, _M2 = np.uint32(0x7FEB352D), np.uint32(0x846CA68B)
_MASK32 = 0xFFFFFFFF


def stream_key(run_seed: int, node_key: str, seed_attribute: Any) -> int:
    """The 64-bit stream of one node in one run (blake2b of the three, stable everywhere)."""
    text = f"{int(run_seed)}\x00{node_key}\x00{seed_attribute!r}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def _lowbias32(xp: ModuleType, h: Array, t: Array) -> None:
    """Chris Wellons' lowbias32 integer hash of ``h`` in place; ``t`` is a work array."""
    for shift, factor in ((16, _M1), (15, _M2), (16, None)):
        xp.right_shift(h, np.uint32(shift), out=t)
        xp.bitwise_xor(h, t, out=h)
        if factor is not None:
            xp.multiply(h, factor, out=h)


class _Random(Kernel):
    """Shared binding: output dtype, stream key, chunk layout; :meth:`draw` the hashes."""

    attributes: ClassVar = {"dtype": None, "seed": None, STREAM_ATTRIBUTE: None}
    #: bind_node passes the stream key to kernels that say so
    needs_stream: ClassVar[bool] = True
    kinds: ClassVar[str] = "f"  # output dtypes accepted

    def bind_stream(self, x: TensorSpec) -> np.dtype[Any]:
        """The output dtype; sets the key and the scratch layout."""
        dtype = x.dtype
        if self.attrs["dtype"] is not None:
            try:
                dtype = np.dtype(helper.tensor_dtype_to_np_dtype(int(self.attrs["dtype"])))
            except (KeyError, ValueError, TypeError):
                raise BindError(
                    f"attribute 'dtype': unsupported type {self.attrs['dtype']!r}"
                ) from None
        if dtype.kind not in self.kinds:
            raise BindError(f"output dtype {dtype.name} is not supported here")
        key = self.attrs[STREAM_ATTRIBUTE]
        if key is None:
            key = stream_key(0, "", self.attrs["seed"])
        self.key = (np.uint32(int(key) & _MASK32), np.uint32((int(key) >> 32) & _MASK32))
        self.size = int(np.prod(x.shape, dtype=np.int64))
        if self.size >= 1 << 32:
            raise BindError(f"{spec_text(x)}: more than 2**32 elements")
        self.cols = max(1, min(self.size, ROW))
        rows = -(-self.size // self.cols)
        self.rows = max(1, min(rows, CHUNK_ROWS))
        regions = ScratchLayout()
        self.work = regions.add((2, self.rows * self.cols), np.uint32)
        self.layout(regions)
        return dtype

    def draw(self, xp: ModuleType, scratch: Array) -> Iterator[tuple[slice, Array, Array]]:
        """Per chunk: a slice of the flat output, its uint32 hashes and a uint32 work array of
        the same length (both views of scratch, valid until the next chunk)."""
        work = view(scratch, self.work)
        h, t = work[0], work[1]
        columns = xp.arange(self.cols, dtype=np.uint32).reshape(1, self.cols)
        ramp = xp.arange(self.rows, dtype=np.uint32).reshape(self.rows, 1)
        grid, base = h.reshape(self.rows, self.cols), t[: self.rows].reshape(self.rows, 1)
        step = self.rows * self.cols
        for start in range(0, self.size, step):
            n = min(step, self.size - start)
            xp.add(ramp, np.uint32(start // self.cols), out=base)  # row numbers
            xp.multiply(base, np.uint32(self.cols), out=base)
            xp.add(base, columns, out=grid)  # flat indices start, start + 1, ...
            hn, tn = h[:n], t[:n]
            xp.bitwise_xor(hn, self.key[0], out=hn)
            _lowbias32(xp, hn, tn)
            xp.bitwise_xor(hn, self.key[1], out=hn)
            _lowbias32(xp, hn, tn)
            yield slice(start, start + n), hn, tn

    @staticmethod
    def bits(dtype: np.dtype[Any]) -> int:
        """Significand bits of a float type a uniform draw keeps (at most 32)."""
        return min(32, np.finfo(dtype).nmant + 1)


@register("", "RandomUniformLike")
class RandomUniformLike(_Random):
    """Uniform numbers in ``[low, high)`` (computed as ``low + u * (high - low)`` in the output
    type, which may round up to ``high`` for the largest u) shaped like the input."""

    inputs = "input"
    outputs = "output"
    attributes: ClassVar = {**_Random.attributes, "high": 1.0, "low": 0.0}

    def setup(self) -> Sequence[TensorSpec | None]:
        x = self.x(0)
        dtype = self.bind_stream(x)
        bits = self.bits(dtype)
        self.shift = np.uint32(32 - bits)
        self.unit = dtype.type(2.0**-bits)
        low, high = float(self.attrs["low"]), float(self.attrs["high"])
        self.low, self.span = dtype.type(low), dtype.type(high - low)
        return [TensorSpec(x.shape, dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        out = outputs[0].reshape(-1)
        for part, h, _ in self.draw(xp, scratch):
            y = out[part]
            xp.right_shift(h, self.shift, out=h)
            xp.copyto(y, h, casting="unsafe")  # exact: fewer bits than the significand
            xp.multiply(y, self.unit, out=y)
            xp.multiply(y, self.span, out=y)
            xp.add(y, self.low, out=y)


@register("", "Bernoulli")
class Bernoulli(_Random):
    """``output = u < input`` with u uniform in [0, 1) at 2**-24 resolution: 1 with
    probability ``input`` (rounded up to a multiple of 2**-24), in the output type (default:
    the input's; bool and integers allowed)."""

    inputs = "input"
    outputs = "output"
    kinds = "fbiu"

    def setup(self) -> Sequence[TensorSpec | None]:
        x = self.float_input(0)
        dtype = self.bind_stream(x)
        self.shift = np.uint32(8)
        self.unit = np.float32(2.0**-24)
        return [TensorSpec(x.shape, dtype)]

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        p, out = inputs[0].reshape(-1), outputs[0].reshape(-1)
        for part, h, t in self.draw(xp, scratch):
            u = t.view(np.float32)
            xp.right_shift(h, self.shift, out=h)
            xp.copyto(u, h, casting="unsafe")  # exact: 24 bits
            xp.multiply(u, self.unit, out=u)
            xp.less(u, p[part], out=out[part])
