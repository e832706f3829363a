"""Re-batching: the batch dimensions found by propagation match the graph built at batch B."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from autotm_graph.ir import Graph, kernel_key, load_graph
from autotm_profile.rebatch import batch_dims, rebatch
from autotm_schemas import BadInputError
from onnx import TensorProto, helper, numpy_helper

from tests.handmade import write_tiny_mlp
from tests.profile.conftest import zoo_training_graph


def assert_same_graph(rebatched: Graph, reference: Graph) -> None:
    """Every tensor shape, constant value and kernel key equal to the graph built at B."""
    assert rebatched.meta is not None and reference.meta is not None
    assert rebatched.meta.batch == reference.meta.batch
    for name, tensor in reference.tensors.items():
        assert rebatched.tensors[name].shape == tensor.shape, name
    params = {p.name for p in reference.meta.parameters}
    for name in reference.initializer_names - params:
        np.testing.assert_array_equal(rebatched.initializer(name), reference.initializer(name))
    for node in reference.nodes:
        assert kernel_key(rebatched, node) == kernel_key(reference, node), node.name


def test_tiny_mlp_rebatched_equals_tiny_mlp_built_at_that_batch(tmp_path: Path) -> None:
    big = load_graph(write_tiny_mlp(tmp_path / "b8.onnx", batch=8))
    small = load_graph(write_tiny_mlp(tmp_path / "b2.onnx", batch=2))
    dims = batch_dims(big)
    assert dims.axes["x"] == (0,) and dims.axes["logits_grad"] == (0,)
    assert "w1_grad" not in dims.axes and "w1" not in dims.axes  # contracted over the batch
    assert_same_graph(rebatch(big, 2, dims), small)


@pytest.mark.parametrize(
    "name",
    ["vgg19-tiny", "resnet50-tiny", "inception_v4-tiny", "densenet264-tiny", "vgg416-tiny"],
)
def test_zoo_networks_rebatch_exactly(tmp_path: Path, name: str) -> None:
    big = load_graph(zoo_training_graph(name, 6, tmp_path / "big.onnx"))
    small = load_graph(zoo_training_graph(name, 2, tmp_path / "small.onnx"))
    assert_same_graph(rebatch(big, 2), small)


def _reshape_graph(
    tmp_path: Path, shape_value: list[int], batch: int = 4, meta_batch: int | None = None
) -> Path:
    """x [N, 6] -> Reshape(shape) -> y; metadata marks x as the data input."""
    import json

    out_shape = [
        batch * 6 // int(np.prod([v for v in shape_value if v > 0])) if v == -1 else v
        for v in shape_value
    ]
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
        "r",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(np.array(shape_value, np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    meta = {
        "format": "autotm.training/1",
        "network": "reshape",
        "batch": meta_batch or batch,
        "loss": "y",
        "optimizer": {"type": "sgd", "learning_rate": 0.1},
        "data_inputs": ["x"],
        "parameters": [],
    }
    helper.set_model_props(model, {"autotm.training": json.dumps(meta)})
    path = tmp_path / "reshape.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize(
    ("value", "expected_shape", "expected_value"),
    [
        ([4, 3, 2], (2, 3, 2), [2, 3, 2]),  # the batch element is rewritten
        ([-1, 3, 2], (2, 3, 2), [-1, 3, 2]),  # -1 is left to the kernel
        ([24], (12,), [12]),  # flattening the batch into one axis scales that axis
        ([4, 6, 1], (2, 6, 1), [2, 6, 1]),  # unit axes are never the batch
    ],
)
def test_reshape_shape_constants_are_rewritten(
    tmp_path: Path, value: list[int], expected_shape: tuple[int, ...], expected_value: list[int]
) -> None:
    graph = load_graph(_reshape_graph(tmp_path, value))
    small = rebatch(graph, 2)
    assert small.tensors["y"].shape == expected_shape
    assert small.initializer("shape").tolist() == expected_value
    assert graph.initializer("shape").tolist() == value  # the source graph is untouched


def test_a_data_input_without_the_batch_first_is_refused(tmp_path: Path) -> None:
    graph = load_graph(_reshape_graph(tmp_path, [4, 3, 2], batch=4, meta_batch=5))
    with pytest.raises(BadInputError, match="axis 0 to be the batch 5"):
        batch_dims(graph)


def test_an_inference_graph_cannot_be_rebatched(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
    )
    path = tmp_path / "inference.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(BadInputError, match="training graph"):
        batch_dims(load_graph(path))
