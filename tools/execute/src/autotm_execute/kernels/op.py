"""The base class of every kernel: bind-time checks so that each kernel is a few lines.

In the style of ``onnx/reference/ops``: a kernel class declares its signature (input and output
names as ``autotm_graph.opset`` writes them, ``?`` for optional, ``...`` for variadic) and its
attributes with their defaults, then implements two methods:

* :meth:`Kernel.setup` runs once at bind time: it reads attributes and input specs, precomputes
  whatever :meth:`Kernel.run` needs (slices, per-channel shapes, scratch layout) and returns the
  output specs the kernel will produce. The base class compares them with the output specs the
  caller gave, so a wrong shape, dtype or output count fails at bind time with a message that
  says what was expected, never later inside numpy.
* :meth:`Kernel.run` is the hot path: it only calls ``xp`` functions on the given buffers.

The registered object is an unbound instance (made without arguments by ``register``); its
:meth:`bind` makes a new, bound instance per node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from autotm_execute.kernels.base import Array, TensorSpec

#: Marks an attribute without a default: binding fails when the node does not give it.
REQUIRED: Any = object()

#: Scratch regions start at multiples of this many bytes (a cache line; SIMD-friendly).
SCRATCH_ALIGN = 64


class BindError(ValueError):
    """A node a kernel cannot bind: wrong arity, attribute, shape or dtype.

    ``autotm_execute.kernels.bind_node`` turns it into a ``BadInputError`` naming the node.
    """


def spec_text(spec: TensorSpec | None) -> str:
    """``float32[2,3]``: how messages print a spec."""
    if spec is None:
        return "absent"
    return f"{spec.dtype.name}[{','.join(map(str, spec.shape))}]"


def _parse_signature(text: str) -> tuple[tuple[str, ...], int, bool]:
    """Names, number of required leading entries, and whether the last one repeats."""
    names = tuple(text.split())
    variadic = bool(names) and names[-1].endswith("...")
    required = 0
    for name in names:
        if name.endswith("?"):
            break
        required += 1
    clean = tuple(n.rstrip("?").removesuffix("...") for n in names)
    return clean, required, variadic


#: A scratch region: byte offset, byte size, shape, dtype.
Region = tuple[int, int, tuple[int, ...], Any]


class ScratchLayout:
    """Regions of one scratch buffer, each aligned, laid out at bind time.

    ``add`` returns a region; ``view(scratch, region)`` is the typed array over it at run time.
    The total is exactly what the regions need plus alignment padding between them.
    """

    def __init__(self) -> None:
        self.nbytes = 0

    def add(self, shape: Sequence[int], dtype: Any) -> Region:
        dt = np.dtype(dtype)
        start = -(-self.nbytes // SCRATCH_ALIGN) * SCRATCH_ALIGN
        size = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        self.nbytes = start + size
        return (start, size, tuple(int(s) for s in shape), dt)


def view(scratch: Array, region: Region) -> Array:
    """The typed array over one region of the scratch buffer (no copy)."""
    start, size, shape, dtype = region
    return scratch[start : start + size].view(dtype).reshape(shape)


class Kernel:
    """Base of every kernel. Subclasses set ``inputs``, ``outputs``, ``attributes``.

    A bound instance has ``attrs`` (the node's attributes over the defaults), ``ins`` and
    ``outs`` (the specs, None for absent optional ones) and ``scratch_bytes``.
    """

    #: input and output names as in autotm_graph.opset ("X W B?", "X0 X1..." variadic)
    inputs: ClassVar[str] = "X"
    outputs: ClassVar[str] = "Y"
    #: every attribute the kernel understands, with its default (REQUIRED for none)
    attributes: ClassVar[Mapping[str, Any]] = {}

    attrs: dict[str, Any]
    ins: tuple[TensorSpec | None, ...]
    outs: tuple[TensorSpec | None, ...]
    scratch_bytes: int = 0

    # ---- binding -------------------------------------------------------------------------

    def bind(
        self,
        attributes: Mapping[str, Any],
        inputs: Sequence[TensorSpec | None],
        outputs: Sequence[TensorSpec | None],
    ) -> Kernel:
        """A new kernel bound to one node; BindError when the node does not fit."""
        bound = type(self).__new__(type(self))
        bound._bind(attributes, inputs, outputs)
        return bound

    def _bind(
        self,
        attributes: Mapping[str, Any],
        inputs: Sequence[TensorSpec | None],
        outputs: Sequence[TensorSpec | None],
    ) -> None:
        self.ins = self._arity("input", self.inputs, inputs)
        self.outs = self._arity("output", self.outputs, outputs)
        unknown = sorted(set(attributes) - set(self.attributes))
        if unknown:
            raise BindError(f"unknown attribute {unknown[0]!r}; known: {sorted(self.attributes)}")
        self.attrs = {**self.attributes, **attributes}
        missing = sorted(k for k, v in self.attrs.items() if v is REQUIRED)
        if missing:
            raise BindError(f"attribute {missing[0]!r} is required")
        self.scratch_bytes = 0
        expected = self.setup()
        for index, (want, got) in enumerate(zip(expected, self.outs, strict=False)):
            if want is None or got is None:
                continue
            if tuple(want.shape) != tuple(got.shape) or np.dtype(want.dtype) != got.dtype:
                raise BindError(
                    f"output {index} ({self.output_name(index)}): expected {spec_text(want)}, "
                    f"got {spec_text(got)}"
                )

    @staticmethod
    def _arity(
        what: str, signature: str, specs: Sequence[TensorSpec | None]
    ) -> tuple[TensorSpec | None, ...]:
        names, required, variadic = _parse_signature(signature)
        count = len(specs)
        if count < required or (not variadic and count > len(names)):
            most = "any number of" if variadic else f"at most {len(names)}"
            raise BindError(
                f"expected at least {required} and {most} {what}s ({' '.join(names)}), got {count}"
            )
        for index in range(required):
            if specs[index] is None:
                raise BindError(f"{what} {index} ({names[index]}) is required")
        return tuple(specs)

    def setup(self) -> Sequence[TensorSpec | None]:
        """Precompute what :meth:`run` needs; return the specs of the outputs it writes."""
        raise NotImplementedError

    def run(
        self,
        xp: ModuleType,
        inputs: Sequence[Array | None],
        outputs: Sequence[Array | None],
        scratch: Array | None,
    ) -> None:
        raise NotImplementedError

    # ---- helpers for setup ---------------------------------------------------------------

    def input_name(self, index: int) -> str:
        names, _, variadic = _parse_signature(self.inputs)
        if index < len(names):
            return names[index]
        return f"{names[-1]}{index - len(names) + 1}" if variadic else f"#{index}"

    def output_name(self, index: int) -> str:
        names, _, variadic = _parse_signature(self.outputs)
        if index < len(names):
            return names[index]
        return f"{names[-1]}{index - len(names) + 1}" if variadic else f"#{index}"

    def x(self, index: int) -> TensorSpec:
        """The spec of a required input."""
        spec = self.ins[index] if index < len(self.ins) else None
        if spec is None:
            raise BindError(f"input {index} ({self.input_name(index)}) is required")
        return spec

    def has_input(self, index: int) -> bool:
        return index < len(self.ins) and self.ins[index] is not None

    def has_output(self, index: int) -> bool:
        return index < len(self.outs) and self.outs[index] is not None

    def out_spec(self, index: int) -> TensorSpec:
        """The given spec of an output whose shape the kernel cannot infer (MaxPoolGrad's dX)."""
        spec = self.outs[index] if index < len(self.outs) else None
        if spec is None:
            raise BindError(f"output {index} ({self.output_name(index)}) is required")
        return spec

    def const(self, index: int) -> np.ndarray:
        """The value of an input that must be known at bind time (an initializer)."""
        spec = self.x(index)
        if spec.value is None:
            raise BindError(
                f"input {index} ({self.input_name(index)}) must be a constant known when "
                "binding (an initializer or a Constant output)"
            )
        return np.asarray(spec.value)

    def float_input(self, index: int) -> TensorSpec:
        spec = self.x(index)
        if spec.dtype.kind != "f":
            raise BindError(
                f"input {index} ({self.input_name(index)}): expected a float tensor, "
                f"got {spec_text(spec)}"
            )
        return spec

    def ints(self, name: str) -> tuple[int, ...]:
        return tuple(int(v) for v in self.attrs[name])

    def axis(self, value: int, rank: int, what: str = "axis") -> int:
        """A possibly negative axis made positive; BindError when out of range."""
        if not -rank <= value < max(rank, 1):
            raise BindError(f"{what} {value} is out of range for rank {rank}")
        return value % max(rank, 1)

    def layout(self, regions: ScratchLayout) -> None:
        """Adopt a scratch layout's size as this kernel's ``scratch_bytes``."""
        self.scratch_bytes = regions.nbytes


def same_as(spec: TensorSpec, dtype: Any = None) -> TensorSpec:
    """A spec with the shape of ``spec`` and its dtype (or ``dtype``)."""
    return TensorSpec(tuple(spec.shape), np.dtype(dtype) if dtype is not None else spec.dtype)


def channel_shape(rank: int) -> tuple[int, ...]:
    """Shape a per-channel vector is reshaped to so it broadcasts over N, C, spatial...."""
    return (-1,) + (1,) * (rank - 2)


def on_device(xp: ModuleType, array: np.ndarray) -> Array:
    """A small host array (per-channel or per-position constants) in ``xp``'s memory.

    Free for numpy; a small host-to-device copy for cupy. Only for arrays far smaller than
    the tensors a kernel works on.
    """
    return array if xp is np else xp.asarray(array)
