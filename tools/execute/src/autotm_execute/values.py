"""The values every iteration starts from: parameters, one batch of inputs, constants.

Each iteration of a run starts from the same values (parameters as the graph defines them,
inputs drawn from ``--seed``), so iterations, plans and runs are comparable and ``--verify``
can demand bit-identical results. Parameters and inputs come from
:mod:`autotm_graph.weights`, the reference implementation of the graph's seeded initialiser
specs; constants are the graph's other initializers.
"""

from __future__ import annotations

import numpy as np
from autotm_graph.ir import Graph
from autotm_graph.weights import example_inputs, parameter_values
from autotm_schemas import BadInputError


def initial_values(graph: Graph, seed: int) -> dict[str, np.ndarray]:
    """A value for every tensor that no node produces, in its declared dtype and shape."""
    values: dict[str, np.ndarray] = dict(parameter_values(graph))
    values.update(example_inputs(graph, seed))
    for name, tensor in graph.tensors.items():
        if tensor.producer is not None or name in values:
            continue
        if name in graph.initializer_names:
            values[name] = np.asarray(graph.initializer(name))
        else:
            raise BadInputError(
                f"{graph.path}: tensor {name!r}: expected an initializer, a parameter or a data "
                "input (no node produces it)"
            )
    for name, value in values.items():
        if name not in graph.tensors:
            continue
        spec = graph.tensors[name]
        values[name] = np.ascontiguousarray(value, dtype=spec.dtype).reshape(spec.shape)
    return values
