"""The graph IR: kinds, lifetimes, kernel keys, the conventions check and safe loading."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from autotm_graph import zoo
from autotm_graph.ir import (
    Graph,
    Node,
    _attribute_values,
    canonical_attributes,
    kernel_key,
    load_graph,
    load_model,
    verify_training_graph,
)
from autotm_schemas import BadInputError
from onnx import TensorProto, helper, numpy_helper

from tests.handmade import tiny_mlp, write_tiny_mlp


@pytest.fixture
def mlp(tmp_path: Path) -> Graph:
    return load_graph(write_tiny_mlp(tmp_path / "mlp.onnx"))


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, path)
    return path


def _set_meta(model: onnx.ModelProto, **changes: object) -> onnx.ModelProto:
    props = {p.key: p.value for p in model.metadata_props}
    meta = json.loads(props["autotm.training"])
    meta.update(changes)
    del model.metadata_props[:]
    helper.set_model_props(model, {"autotm.training": json.dumps(meta)})
    return model


def test_tensor_kinds_of_a_training_graph(mlp: Graph) -> None:
    kinds = {name: t.kind for name, t in mlp.tensors.items()}
    assert {n for n, k in kinds.items() if k == "parameter"} == {"w1", "b1", "w2", "b2"}
    assert {n for n, k in kinds.items() if k == "input"} == {"x", "labels"}
    assert {n for n, k in kinds.items() if k == "constant"} == {"lr", "loss_grad", "axes0"}
    assert {n for n, k in kinds.items() if k == "output"} == {"loss"}
    assert {n for n, k in kinds.items() if k == "updated_parameter"} == {
        "w1.updated",
        "b1.updated",
        "w2.updated",
        "b2.updated",
    }
    assert {n for n, k in kinds.items() if k == "activation"} == {
        "h_pre",
        "h",
        "logits",
        "log_prob",
    }
    assert kinds["logits_grad"] == kinds["w1_grad"] == "gradient"
    assert mlp.tensors["labels"].dtype == np.int64
    assert mlp.tensors["h"].users == (2, 5, 10)
    assert mlp.tensors["h"].producer == 1


def test_lifetimes(mlp: Graph) -> None:
    assert mlp.lifetime("w1") == (0, 14)  # parameters: the whole iteration
    assert mlp.lifetime("lr") == (0, 14)  # constants: to their last user
    assert mlp.lifetime("loss_grad") == (0, 4)
    assert mlp.lifetime("loss") == (3, 14)  # outputs: to the end
    assert mlp.lifetime("b2.updated") == (8, 14)
    assert mlp.lifetime("h_pre") == (0, 1)
    assert mlp.lifetime("h_pre_grad") == (10, 13)
    assert mlp.peak_live_bytes() == int(mlp.live_bytes_per_node().max())


def test_unused_output_lives_at_its_producer_only(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["y"], name="a"),
            helper.make_node("Dropout", ["y"], ["z", "mask"], name="b"),
            helper.make_node("Relu", ["z"], ["out"], name="c"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    g = load_graph(_save(model, tmp_path / "g.onnx"))
    assert g.lifetime("mask") == (1, 1)
    assert g.tensors["mask"].dtype == np.bool_ and g.tensors["mask"].nbytes == 6


def test_kinds_and_parameters_of_a_seeded_zoo_graph(tmp_path: Path) -> None:
    g = load_graph(_save(zoo.build("vgg19-mini", batch=2), tmp_path / "v.onnx"))
    assert g.tensors["images"].kind == "input"
    assert g.tensors["logits"].kind == "output"
    assert g.tensors["conv1_1.weight"].kind == "parameter"
    assert g.tensors["fc6.dropout.ratio"].kind == "constant"  # a Constant node's output
    assert g.tensors["conv1_1.out"].kind == "activation"
    params = {p.name: p for p in g.parameters}
    assert params["conv1_1.weight"].init == {
        "distribution": "he_normal",
        "seed": params["conv1_1.weight"].init["seed"],  # type: ignore[index]
        "fan_in": 27,
    }
    assert all(p.updated is None and p.trainable for p in params.values())


def test_running_statistics_of_an_inference_graph_are_not_trainable(tmp_path: Path) -> None:
    for weights in ("seeded", "embed"):
        path = _save(zoo.build("resnet50-tiny", weights=weights), tmp_path / f"{weights}.onnx")
        params = {p.name: p for p in load_graph(path).parameters}
        assert not params["stem.bn.running_mean"].trainable
        assert not params["stem.bn.running_var"].trainable
        assert params["stem.bn.weight"].trainable and params["stem.conv.weight"].trainable
        assert (params["stem.conv.weight"].init is None) == (weights == "embed")


def test_integer_initializers_of_an_inference_graph_are_constants(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["x", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])],
        initializer=[
            numpy_helper.from_array(np.array([2, 12], np.int64), "shape"),
            numpy_helper.from_array(np.ones((12, 5), np.float32), "w"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    g = load_graph(_save(model, tmp_path / "g.onnx"))
    assert g.tensors["shape"].kind == "constant"
    assert g.tensors["w"].kind == "parameter"
    assert g.tensors["flat"].shape == (2, 12)  # from shape inference
    assert [p.name for p in g.parameters] == ["w"]


def test_identical_kernels_share_a_key(tmp_path: Path) -> None:
    g = load_graph(_save(zoo.build("vgg19-tiny"), tmp_path / "v.onnx"))
    by_name = {n.name: n for n in g.nodes}
    # conv4_1 and conv4_2 are both 16->16 channels at 2x2: the same kernel, other weights.
    assert kernel_key(g, by_name["conv4_1"]) == kernel_key(g, by_name["conv4_2"])
    # conv3_2 and conv5_1 run the same op at 4x4 and 1x1: different kernels.
    assert kernel_key(g, by_name["conv3_2"]) != kernel_key(g, by_name["conv4_2"])
    assert kernel_key(g, by_name["conv5_1"]) != kernel_key(g, by_name["conv4_2"])
    assert kernel_key(g, by_name["conv4_1.relu"]) == kernel_key(g, by_name["conv4_2.relu"])
    assert kernel_key(g, by_name["conv4_1"]).startswith("Conv-")


def test_kernel_key_is_the_documented_hash(mlp: Graph) -> None:
    fc1 = mlp.nodes[0]
    text = (
        "ai.onnx|Gemm|" + '{"transB":1}' + "|float32[4,8];float32[16,8];float32[16]|float32[4,16]"
    )
    assert canonical_attributes(fc1) == '{"transB":1}'
    assert kernel_key(mlp, fc1) == "Gemm-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def test_kernel_key_is_stable_across_processes(mlp: Graph, tmp_path: Path) -> None:
    script = (
        "import sys; from autotm_graph.ir import load_graph, kernel_key; "
        "g = load_graph(sys.argv[1]); print(' '.join(kernel_key(g, n) for n in g.nodes))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, mlp.path],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    ).stdout.split()
    assert out == [kernel_key(mlp, n) for n in mlp.nodes]


def test_canonical_attributes_with_tensors_and_lists() -> None:
    node = helper.make_node(
        "Constant", [], ["c"], value=numpy_helper.from_array(np.array([1.5, 2], np.float32))
    )
    ir_node = Node(0, "c", "Constant", "", (), ("c",), _attribute_values(node))
    assert canonical_attributes(ir_node) == (
        '{"value":{"data":[1.5,2.0],"dtype":"float32","shape":[2]}}'
    )
    pool = helper.make_node("MaxPool", ["x"], ["y"], strides=[2, 2], kernel_shape=[3, 3])
    ir_pool = Node(0, "p", "MaxPool", "", ("x",), ("y",), _attribute_values(pool))
    assert canonical_attributes(ir_pool) == '{"kernel_shape":[3,3],"strides":[2,2]}'


def test_verify_accepts_the_handmade_graph(mlp: Graph) -> None:
    verify_training_graph(mlp)


def test_verify_rejects_an_inference_graph(tmp_path: Path) -> None:
    g = load_graph(_save(zoo.build("vgg19-tiny"), tmp_path / "v.onnx"))
    with pytest.raises(BadInputError, match="expected a training graph"):
        verify_training_graph(g)


def test_verify_rejects_a_node_order_that_is_not_topological(tmp_path: Path) -> None:
    model = tiny_mlp()
    nodes = list(model.graph.node)
    nodes[0], nodes[1] = nodes[1], nodes[0]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    g = load_graph(_save(model, tmp_path / "m.onnx"))
    with pytest.raises(BadInputError, match="node 'relu1': input 'h_pre' is used before"):
        verify_training_graph(g)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"parameters": [{"name": "w1", "updated": "nope", "trainable": True, "init": None}]},
            "updated tensor 'nope' is not a graph output",
        ),
        (
            {"parameters": [{"name": "ghost", "updated": None, "trainable": True, "init": None}]},
            "'ghost' is not a tensor of the graph",
        ),
        ({"loss": "nowhere"}, "metadata loss: 'nowhere' is not a tensor"),
    ],
)
def test_verify_names_the_broken_rule(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    g = load_graph(_save(_set_meta(tiny_mlp(), **change), tmp_path / "m.onnx"))
    with pytest.raises(BadInputError, match=message):
        verify_training_graph(g)


def test_verify_wants_data_or_a_spec_for_every_parameter(tmp_path: Path) -> None:
    model = tiny_mlp()
    kept = [t for t in model.graph.initializer if t.name != "w1"]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    model.graph.input.append(helper.make_tensor_value_info("w1", TensorProto.FLOAT, [16, 8]))
    g = load_graph(_save(model, tmp_path / "m.onnx"))
    with pytest.raises(BadInputError, match="parameter 'w1': expected an initializer or a seeded"):
        verify_training_graph(g)


def test_bad_training_metadata(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=re.escape("format: expected 'autotm.training/1'")):
        load_graph(_save(_set_meta(tiny_mlp(), format="other/2"), tmp_path / "a.onnx"))
    model = tiny_mlp()
    del model.metadata_props[:]
    helper.set_model_props(model, {"autotm.training": json.dumps({"format": "autotm.training/1"})})
    with pytest.raises(BadInputError, match="expected the training-graph fields"):
        load_graph(_save(model, tmp_path / "b.onnx"))


def test_bad_init_metadata(tmp_path: Path) -> None:
    model = zoo.build("vgg19-tiny")
    for prop in model.metadata_props:
        if prop.key == "autotm.init":
            prop.value = "{not json"
    with pytest.raises(BadInputError, match=re.escape("metadata autotm.init: expected JSON")):
        load_graph(_save(model, tmp_path / "a.onnx"))
    model = zoo.build("vgg19-tiny")
    for prop in model.metadata_props:
        if prop.key == "autotm.init":
            prop.value = json.dumps({"nobody": {"distribution": "zeros", "seed": 0}})
    with pytest.raises(BadInputError, match="'nobody' is not a graph input"):
        load_graph(_save(model, tmp_path / "b.onnx"))


def test_dynamic_shapes_are_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(
        BadInputError, match="tensor 'x': expected a static shape, got dimension 'N'"
    ):
        load_graph(_save(model, tmp_path / "g.onnx"))


def test_files_that_are_not_onnx(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="expected an existing ONNX file"):
        load_graph(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\xfe not a protobuf at all")
    with pytest.raises(BadInputError, match="expected an ONNX model"):
        load_graph(junk)


def _with_external_weights(location: str) -> onnx.ModelProto:
    model = tiny_mlp()
    for tensor in model.graph.initializer:
        if tensor.name == "w1":
            tensor.ClearField("raw_data")
            tensor.ClearField("float_data")
            tensor.data_location = TensorProto.EXTERNAL
            entry = tensor.external_data.add()
            entry.key, entry.value = "location", location
    return model


def test_external_data_inside_the_model_folder_loads(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(
        tiny_mlp(),
        folder / "m.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="m.data",
        size_threshold=0,
    )
    g = load_graph(folder / "m.onnx")
    np.testing.assert_array_equal(
        g.initializer("w1"), numpy_helper.to_array(tiny_mlp().graph.initializer[0])
    )


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../x.bin"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path: Path, location: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 512)
    path = _save(_with_external_weights(location), folder / "m.onnx")
    with pytest.raises(BadInputError, match="expected external data inside the model's folder"):
        load_model(path)


def test_missing_external_data_is_named(tmp_path: Path) -> None:
    path = _save(_with_external_weights("w1.bin"), tmp_path / "m.onnx")
    with pytest.raises(BadInputError, match=re.escape("external data file 'w1.bin' is missing")):
        load_model(path)
