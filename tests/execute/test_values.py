"""Initial values: every unproduced tensor gets one, deterministic in the seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from autotm_execute.values import initial_values
from autotm_graph.ir import load_graph
from autotm_schemas import BadInputError

from tests.execute.graphs import write_graph
from tests.execute.plans import load_tiny_mlp


def test_every_tensor_without_a_producer_has_a_value(tmp_path: Path) -> None:
    _, graph = load_tiny_mlp(tmp_path)
    values = initial_values(graph, 0)
    unproduced = {n for n, t in graph.tensors.items() if t.producer is None}
    assert set(values) == unproduced
    for name, value in values.items():
        assert value.shape == graph.tensors[name].shape
        assert value.dtype == graph.tensors[name].dtype
        assert value.flags.c_contiguous
    assert np.array_equal(values["w1"], graph.initializer("w1"))
    assert values["labels"].min() >= 0 and values["labels"].max() < 3


def test_the_seed_changes_inputs_not_parameters(tmp_path: Path) -> None:
    _, graph = load_tiny_mlp(tmp_path)
    a, b, c = initial_values(graph, 0), initial_values(graph, 0), initial_values(graph, 1)
    assert all(np.array_equal(a[n], b[n]) for n in a)
    assert not np.array_equal(a["x"], c["x"])
    assert np.array_equal(a["w1"], c["w1"])


def test_seeded_parameters_are_materialised(tmp_path: Path) -> None:
    graph = load_graph(write_graph("vgg19-tiny", tmp_path))
    values = initial_values(graph, 0)
    seeded = [p.name for p in graph.parameters if p.init is not None]
    assert seeded and all(np.isfinite(values[n]).all() for n in seeded)


def test_an_input_without_value_is_refused(tmp_path: Path) -> None:
    _, graph = load_tiny_mlp(tmp_path)
    graph.initializer_names = frozenset(graph.initializer_names - {"lr"})
    with pytest.raises(BadInputError, match="'lr'"):
        initial_values(graph, 0)
