"""The kernel interface: what the executor and the profiler call, what each op implements.

A kernel is bound once per node to the node's attributes and its tensors' static shapes and
dtypes (:meth:`KernelFactory.bind`). The bound kernel says how much scratch space it needs and
then runs any number of times on buffers it is given: it writes its outputs into the output
arrays (``out=``, ``xp.copyto``) and never allocates anything of tensor size on its own; larger
temporaries (im2col columns and the like) live in the scratch buffer, which the caller carves
out of the fast pool and counts.

``xp`` is the array namespace, numpy or cupy, so that the same kernel code runs on both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

import numpy as np

Array = Any  # numpy.ndarray or cupy.ndarray: the kernels only use what both provide


@dataclass(frozen=True)
class TensorSpec:
    """Static shape and dtype of one input or output."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    #: The data of an input known when binding (an initializer or a ``Constant`` output), or
    #: None. Kernels whose meaning depends on an integer input (``ReduceSum`` axes, ``Slice``
    #: starts and ends) read it here once instead of reading a device buffer at every run.
    value: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


class BoundKernel(Protocol):
    """A kernel bound to one node's attributes, shapes and dtypes."""

    @property
    def scratch_bytes(self) -> int:
        """Bytes of scratch space :meth:`run` needs; 0 for none."""
        ...

    def run(
        self,
        xp: ModuleType,
        inputs: Sequence[Array | None],
        outputs: Sequence[Array | None],
        scratch: Array | None,
    ) -> None:
        """Compute outputs from inputs. ``None`` marks an omitted optional input or output.

        ``scratch`` is a 1-D uint8 array of at least ``scratch_bytes`` bytes (or None when 0).
        Inputs are read-only; outputs are preallocated with the bound shapes and dtypes.
        """
        ...


class KernelFactory(Protocol):
    """Binds nodes of one op type to :class:`BoundKernel` objects."""

    def bind(
        self,
        attributes: Mapping[str, Any],
        inputs: Sequence[TensorSpec | None],
        outputs: Sequence[TensorSpec | None],
    ) -> BoundKernel: ...


_REGISTRY: dict[tuple[str, str], KernelFactory] = {}


def register(domain: str, op_type: str) -> Callable[[Any], Any]:
    """Class or instance decorator: ``@register("com.microsoft", "ReluGrad")``.

    Registration is explicit, one line per op beside its implementation, so that a reader finds
    every kernel by grepping for its name.
    """

    def decorate(factory: Any) -> Any:
        key = (domain, op_type)
        if key in _REGISTRY:
            raise ValueError(f"kernel {domain or 'ai.onnx'}::{op_type} registered twice")
        _REGISTRY[key] = factory() if isinstance(factory, type) else factory
        return factory

    return decorate


def lookup(domain: str, op_type: str) -> KernelFactory:
    """The factory for an op; KeyError listing what exists when there is none."""
    try:
        return _REGISTRY[(domain, op_type)]
    except KeyError:
        known = sorted(f"{d + '::' if d else ''}{o}" for d, o in _REGISTRY)
        raise KeyError(
            f"no kernel for {domain + '::' if domain else ''}{op_type}; known: {known}"
        ) from None


def supported_ops() -> frozenset[tuple[str, str]]:
    """Every (domain, op_type) with a kernel."""
    return frozenset(_REGISTRY)
