"""Seeded initialiser specs, parameter values and example inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from autotm_graph import zoo
from autotm_graph.ir import load_graph
from autotm_graph.weights import example_inputs, materialize, parameter_values
from autotm_schemas import BadInputError
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from tests.handmade import write_tiny_mlp

SPECS = [
    {"distribution": "he_normal", "seed": 7, "fan_in": 27},
    {"distribution": "normal", "seed": 7, "std": 0.5, "mean": 1.0},
    {"distribution": "uniform", "seed": 7, "low": -2.0, "high": 3.0},
    {"distribution": "zeros", "seed": 7},
    {"distribution": "ones", "seed": 7},
]


@settings(max_examples=25, deadline=None)
@given(
    spec=st.sampled_from(SPECS),
    seed=st.integers(0, 2**32 - 1),
    shape=st.lists(st.integers(1, 5), min_size=0, max_size=4),
)
def test_materialize_is_deterministic_and_dtype_independent(
    spec: dict[str, object], seed: int, shape: list[int]
) -> None:
    spec = {**spec, "seed": seed}
    first = materialize(spec, shape, np.float32)
    again = materialize(spec, tuple(shape), np.float32)
    wide = materialize(spec, shape, np.float64)
    assert first.dtype == np.float32 and wide.dtype == np.float64
    assert first.shape == tuple(shape)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(wide, first.astype(np.float64))


def test_materialize_follows_the_documented_recipe() -> None:
    rng = np.random.Generator(np.random.PCG64(11))
    expected = rng.standard_normal((4, 3), dtype=np.float32) * np.float32(np.sqrt(2 / 12))
    got = materialize({"distribution": "he_normal", "seed": 11, "fan_in": 12}, (4, 3))
    np.testing.assert_array_equal(got, expected)
    rng = np.random.Generator(np.random.PCG64(5))
    expected = rng.random((6,), dtype=np.float32) * np.float32(4.0) + np.float32(-1.0)
    got = materialize({"distribution": "uniform", "seed": 5, "low": -1, "high": 3}, (6,))
    np.testing.assert_array_equal(got, expected)


def test_distributions_have_their_moments() -> None:
    he = materialize({"distribution": "he_normal", "seed": 1, "fan_in": 50}, (200_000,))
    assert abs(he.std() - np.sqrt(2 / 50)) < 0.002 and abs(he.mean()) < 0.002
    normal = materialize({"distribution": "normal", "seed": 1, "std": 3, "mean": -2}, (200_000,))
    assert abs(normal.std() - 3) < 0.03 and abs(normal.mean() + 2) < 0.03
    uniform = materialize({"distribution": "uniform", "seed": 1, "low": 2, "high": 4}, (10_000,))
    assert uniform.min() >= 2 and uniform.max() < 4
    assert not materialize({"distribution": "zeros", "seed": 0}, (3,)).any()
    assert (materialize({"distribution": "ones", "seed": 0}, (3,)) == 1).all()


def test_different_seeds_give_different_values() -> None:
    a = materialize({"distribution": "he_normal", "seed": 1, "fan_in": 4}, (16,))
    b = materialize({"distribution": "he_normal", "seed": 2, "fan_in": 4}, (16,))
    assert not np.array_equal(a, b)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"distribution": "xavier", "seed": 1}, "distribution: expected one of"),
        ({"distribution": "he_normal", "seed": -1, "fan_in": 3}, "seed: expected"),
        ({"distribution": "he_normal", "seed": "1", "fan_in": 3}, "seed: expected"),
        ({"distribution": "he_normal", "seed": 1}, "fan_in: expected a number"),
        ({"distribution": "he_normal", "seed": 1, "fan_in": 0}, "fan_in: expected a positive"),
        ({"distribution": "normal", "seed": 1}, "std: expected a number"),
        ({"distribution": "uniform", "seed": 1, "low": 0}, "high: expected a number"),
    ],
)
def test_bad_specs_are_bad_input(spec: dict[str, object], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        materialize(spec, (2,))


@pytest.mark.parametrize("name", ["resnet50-tiny", "densenet264-tiny", "vgg19-tiny"])
def test_seeded_and_embedded_files_hold_identical_values(name: str, tmp_path: Path) -> None:
    seeded_path, embed_path = tmp_path / "seeded.onnx", tmp_path / "embed.onnx"
    onnx.save(zoo.build(name, weights="seeded"), seeded_path)
    onnx.save(zoo.build(name, weights="embed"), embed_path)
    seeded = parameter_values(load_graph(seeded_path))
    embedded = parameter_values(load_graph(embed_path))
    assert seeded.keys() == embedded.keys()
    assert len(seeded) == len(zoo.builder(name).params)
    for key, value in seeded.items():
        np.testing.assert_array_equal(value, embedded[key], err_msg=key)


def test_parameter_values_of_a_training_graph_with_initializers(tmp_path: Path) -> None:
    graph = load_graph(write_tiny_mlp(tmp_path / "mlp.onnx"))
    values = parameter_values(graph)
    assert sorted(values) == ["b1", "b2", "w1", "w2"]
    np.testing.assert_array_equal(values["w1"], graph.initializer("w1"))
    assert parameter_values(graph, dtype=np.float64)["w2"].dtype == np.float64


def test_example_inputs_draw_labels_in_range(tmp_path: Path) -> None:
    graph = load_graph(write_tiny_mlp(tmp_path / "mlp.onnx", batch=64, classes=3))
    batch = example_inputs(graph, seed=3)
    assert sorted(batch) == ["labels", "x"]
    assert batch["x"].dtype == np.float32 and batch["x"].shape == (64, 8)
    assert batch["labels"].dtype == np.int64 and batch["labels"].shape == (64,)
    assert set(batch["labels"].tolist()) == {0, 1, 2}
    again = example_inputs(graph, seed=3)
    np.testing.assert_array_equal(batch["x"], again["x"])
    assert not np.array_equal(batch["x"], example_inputs(graph, seed=4)["x"])


def test_example_inputs_of_an_inference_graph(tmp_path: Path) -> None:
    path = tmp_path / "net.onnx"
    onnx.save(zoo.build("vgg19-tiny", batch=2), path)
    batch = example_inputs(load_graph(path))
    assert list(batch) == ["images"]
    assert batch["images"].shape == (2, 3, 32, 32)
    assert abs(float(batch["images"].std()) - 1) < 0.1


def test_integer_input_without_a_loss_is_bad_input(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Cast", ["ids"], ["y"], to=TensorProto.FLOAT)],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    path = tmp_path / "ids.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(BadInputError, match="'ids': expected integer labels"):
        example_inputs(load_graph(path))
