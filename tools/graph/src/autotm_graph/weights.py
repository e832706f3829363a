"""Parameter values and example inputs, deterministically from seeds.

A zoo graph (and the training graph built from it) may carry no weight data at all: each
parameter is a shaped graph input with a seeded initialiser spec (see the training-graph
conventions, "Seeded initialiser specs"). :func:`materialize` is the reference
implementation of those specs; every tool that needs the values (executor, profiler, tests)
calls it, so the same file always means the same numbers.

The recipe, for a spec with seed ``s`` and a shape ``shape``:

* the generator is ``numpy.random.Generator(numpy.random.PCG64(s))``;
* ``he_normal``: ``standard_normal(shape, dtype=float32) * float32(sqrt(2 / fan_in))``;
* ``normal``: ``standard_normal(shape, dtype=float32) * float32(std) + float32(mean)``
  (``mean`` defaults to 0);
* ``uniform``: ``random(shape, dtype=float32) * float32(high - low) + float32(low)``;
* ``zeros`` / ``ones``: constant, the generator is not used.

Values are always drawn in float32 and then cast, so a float64 copy (for finite
differences) holds exactly the float32 values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from autotm_schemas import BadInputError

if TYPE_CHECKING:
    from .ir import Graph

DISTRIBUTIONS = ("he_normal", "normal", "uniform", "zeros", "ones")
LOSS_OPS = ("SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss")


def _number(spec: Mapping[str, Any], key: str, default: float | None = None) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInputError(
            f"init spec {json.dumps(dict(spec), sort_keys=True)}: {key}: expected a number"
        )
    return float(value)


def materialize(
    spec: Mapping[str, Any], shape: tuple[int, ...] | list[int], dtype: Any = np.float32
) -> np.ndarray:
    """The values a seeded initialiser spec stands for (see the module docstring)."""
    shape = tuple(int(d) for d in shape)
    distribution = spec.get("distribution")
    if distribution == "zeros":
        return np.zeros(shape, dtype=dtype)
    if distribution == "ones":
        return np.ones(shape, dtype=dtype)
    if distribution not in DISTRIBUTIONS:
        raise BadInputError(
            f"init spec distribution: expected one of {', '.join(DISTRIBUTIONS)}, "
            f"got {distribution!r}"
        )
    seed = spec.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise BadInputError(f"init spec seed: expected a non-negative integer, got {seed!r}")
    rng = np.random.Generator(np.random.PCG64(seed))
    if distribution == "he_normal":
        fan_in = _number(spec, "fan_in")
        if fan_in <= 0:
            raise BadInputError(f"init spec fan_in: expected a positive number, got {fan_in}")
        values = rng.standard_normal(shape, dtype=np.float32)
        values *= np.float32(np.sqrt(2.0 / fan_in))
    elif distribution == "normal":
        values = rng.standard_normal(shape, dtype=np.float32)
        values *= np.float32(_number(spec, "std"))
        values += np.float32(_number(spec, "mean", 0.0))
    else:  # uniform
        low, high = _number(spec, "low"), _number(spec, "high")
        values = rng.random(shape, dtype=np.float32)
        values *= np.float32(high - low)
        values += np.float32(low)
    return values.astype(dtype, copy=False)


def parameter_values(graph: Graph, dtype: Any = None) -> dict[str, np.ndarray]:
    """Every parameter of ``graph``: initializer data, or its seeded spec materialised.

    ``dtype`` overrides the element type (for example float64 for finite differences);
    by default each parameter gets the element type its tensor declares.
    """
    values: dict[str, np.ndarray] = {}
    for param in graph.parameters:
        tensor = graph.tensors[param.name]
        target = dtype if dtype is not None else tensor.dtype
        if param.name in graph.initializer_names:
            values[param.name] = np.asarray(graph.initializer(param.name)).astype(target)
        elif param.init is not None:
            values[param.name] = materialize(param.init, tensor.shape, target)
        else:
            raise BadInputError(
                f"{graph.path}: parameter {param.name!r}: expected an initializer or a seeded "
                "init spec"
            )
    return values


def _label_classes(graph: Graph, labels: str) -> int:
    """Classes of a label input: the class axis of the logits its loss node compares it with."""
    for node in graph.nodes:
        if node.op_type in LOSS_OPS and len(node.inputs) > 1 and node.inputs[1] == labels:
            logits = graph.tensors[node.inputs[0]]
            if len(logits.shape) >= 2:
                return int(logits.shape[1])
    raise BadInputError(
        f"{graph.path}: input {labels!r}: expected integer labels read by a "
        f"{' or '.join(LOSS_OPS)} node (to know the number of classes)"
    )


def example_inputs(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """One batch of data inputs: images ~ N(0, 1), integer labels uniform in [0, classes)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    names = (
        list(graph.meta.data_inputs)
        if graph.meta is not None
        else [t.name for t in graph.iter_tensors("input")]
    )
    batch: dict[str, np.ndarray] = {}
    for name in names:
        tensor = graph.tensors[name]
        if np.issubdtype(tensor.dtype, np.floating):
            batch[name] = rng.standard_normal(tensor.shape, dtype=np.float32).astype(tensor.dtype)
        elif np.issubdtype(tensor.dtype, np.integer):
            classes = _label_classes(graph, name)
            batch[name] = rng.integers(0, classes, size=tensor.shape).astype(tensor.dtype)
        else:
            raise BadInputError(
                f"{graph.path}: input {name!r}: expected a float or integer data input, "
                f"got {tensor.dtype}"
            )
    return batch
