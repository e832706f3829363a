"""`autotm-graph train` end to end on small onnx.helper graphs: the file it writes follows the
training-graph conventions (versions, static shapes, metadata, execution order), re-batches
shape constants, updates batch-norm running statistics, lowers the loss, and refuses
unsupported ops and external data outside the model's folder with exit 2 and no output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from autotm_graph.opset import checker_view
from autotm_graph.train import TrainOptions, build_training_model
from autotm_graph.train.command import main
from autotm_graph.train.graph import TensorInfo
from autotm_graph.train.order import peak_live_bytes
from onnx import helper, numpy_helper

from .train_oracle import (
    GraphMaker,
    check_gradients,
    feeds_for,
    metadata,
    ort_has_training_ops,
    run_ort,
    sgd_losses,
    value_infos,
)

oracle = pytest.mark.skipif(not ort_has_training_ops(), reason="needs onnxruntime-training")


def small_cnn(batch: int | str = 2) -> onnx.ModelProto:
    g = GraphMaker([batch, 3, 8, 8])
    t = g.op("Conv", ["x", g.param([4, 3, 3, 3])], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    bn = [
        g.param([4], value=np.ones(4)),
        g.param([4], value=np.zeros(4)),
        g.param([4], value=np.full(4, 0.1)),
        g.param([4], value=np.full(4, 2.0)),
    ]
    t = g.op("Relu", [g.op("BatchNormalization", [t, *bn], momentum=0.75)])
    p = g.op("MaxPool", [t], kernel_shape=[2, 2], strides=[2, 2])
    b = g.op(
        "Conv", [p, g.param([4, 4, 3, 3]), g.param([4])], kernel_shape=[3, 3], pads=[1, 1, 1, 1]
    )
    t = g.op("Concat", [g.op("Add", [b, p]), p], axis=1)
    t = g.op(
        "Reshape",
        [g.op("GlobalAveragePool", [t]), g.const([batch if isinstance(batch, int) else -1, 8])],
    )
    t = g.op("Dropout", [t, g.const(0.25, np.float32)])
    return g.model(g.op("Gemm", [t, g.param([5, 8]), g.param([5])], transB=1))


def test_versions_shapes_and_metadata() -> None:
    model = build_training_model(
        small_cnn(), TrainOptions(batch=6, learning_rate=0.1), source="dir/small.onnx"
    )
    assert model.ir_version == 8
    assert {(o.domain, o.version) for o in model.opset_import} == {("", 17), ("com.microsoft", 1)}
    infos = value_infos(model)
    inits = {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        for name in (*node.input, *node.output):
            if name and name not in inits:
                dims = infos[name].type.tensor_type.shape.dim
                assert all(d.HasField("dim_value") for d in dims), name
    meta = metadata(model)
    assert meta["format"] == "autotm.training/1"
    assert meta["network"] == "small" and meta["batch"] == 6
    assert meta["optimizer"] == {"type": "sgd", "learning_rate": 0.1}
    assert meta["data_inputs"] == ["x", "labels"]
    assert model.graph.output[0].name == meta["loss"]
    outputs = {o.name for o in model.graph.output}
    assert all(p["updated"] in outputs for p in meta["parameters"])
    assert sum(not p["trainable"] for p in meta["parameters"]) == 2  # running mean and var
    assert all(p["init"] is None and p["name"] in inits for p in meta["parameters"])
    labels = infos["labels"].type.tensor_type
    assert labels.elem_type == onnx.TensorProto.INT64 and labels.shape.dim[0].dim_value == 6
    # shapes agree with ONNX's own inference, and the standard part passes the checker
    onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(checker_view(model))


def test_execution_order_updates_right_after_gradients_and_frees_early() -> None:
    model = build_training_model(small_cnn(), TrainOptions(batch=4), source="small.onnx")
    nodes = list(model.graph.node)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    for i, node in enumerate(nodes):
        if node.op_type == "SGDOptimizer":
            between = nodes[producer[node.input[2]] + 1 : i]
            assert all(n.op_type == "SGDOptimizer" for n in between), node.name
    # against the naive order (all updates at the end), the peak of live tensors is lower
    infos = value_infos(model)
    info = {
        name: TensorInfo(
            tuple(d.dim_value for d in v.type.tensor_type.shape.dim),
            helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type),
        )
        for name, v in infos.items()
    }
    persistent = {t.name for t in model.graph.initializer} | {v.name for v in model.graph.input}
    outputs = {o.name for o in model.graph.output}
    naive = [n for n in nodes if n.op_type != "SGDOptimizer"]
    naive += [n for n in nodes if n.op_type == "SGDOptimizer"]
    ours = peak_live_bytes(nodes, info, persistent, ())
    assert ours < peak_live_bytes(naive, info, persistent, ())
    assert peak_live_bytes(nodes, info, persistent, outputs) > 0


@pytest.mark.parametrize("exported", [2, "N"])
def test_rebatch_shape_constants(exported: int | str) -> None:
    model = build_training_model(small_cnn(exported), TrainOptions(batch=7), source="s.onnx")
    reshape = next(n for n in model.graph.node if n.op_type == "Reshape")
    shape = next(
        numpy_helper.to_array(t) for t in model.graph.initializer if t.name == reshape.input[1]
    )
    assert shape.tolist() == [7, 8]
    x = next(v for v in model.graph.input if v.name == "x")
    assert [d.dim_value for d in x.type.tensor_type.shape.dim] == [7, 3, 8, 8]


@pytest.mark.oracle
@oracle
def test_running_statistics_and_loss() -> None:
    source = small_cnn()
    for node in source.graph.node:  # a seeded Dropout: the same masks in every run
        if node.op_type == "Dropout":
            node.attribute.append(helper.make_attribute("seed", 0))
    model = build_training_model(source, TrainOptions(batch=4, learning_rate=0.1), source="s.onnx")
    feeds = feeds_for(model, seed=5)
    bn = next(n for n in model.graph.node if n.op_type == "BatchNormInternal")
    out = run_ort(model, feeds, [bn.input[0], bn.output[1], bn.output[2]])
    x = out[bn.input[0]].astype(np.float64)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(out[bn.output[1]], 0.75 * 0.1 + 0.25 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[bn.output[2]], 0.75 * 2.0 + 0.25 * var, rtol=1e-5, atol=1e-6)
    losses = sgd_losses(model, feeds, steps=8)
    assert losses[-1] < 0.8 * losses[0], losses


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def test_cli_writes_a_training_graph(tmp_path: Path) -> None:
    src = _save(small_cnn(), tmp_path / "cnn.onnx")
    out = tmp_path / "out" / "train.onnx"
    assert main([str(src), "--batch", "3", "--lr", "0.5", "-o", str(out)]) == 0
    meta = metadata(onnx.load(str(out)))
    assert meta["batch"] == 3 and meta["optimizer"]["learning_rate"] == 0.5


def test_unsupported_ops_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    g = GraphMaker([2, 3, 4, 4])
    t = g.op("LpPool", ["x"], kernel_shape=[2, 2])
    t = g.op("Hardmax", [g.op("LpPool", [t], kernel_shape=[1, 1])])
    g.nodes.append(helper.make_node("Fancy", [t], ["f"], name="fancy1", domain="com.acme"))
    src = _save(g.model(g.head("f", 12)), tmp_path / "bad.onnx")
    out = tmp_path / "train.onnx"
    assert main([str(src), "--batch", "2", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "com.acme:Fancy (node 'fancy1')" in err[0]
    assert "LpPool (node 'n1')" in err[0] and "Hardmax (node 'n3')" in err[0]
    assert not out.exists() and not list(tmp_path.glob(".train.onnx*"))


def test_external_data_inside_the_folder_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = small_cnn()
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(
        model,
        str(folder / "ok.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    assert (
        main([str(folder / "ok.onnx"), "--batch", "2", "-o", str(tmp_path / "ok.train.onnx")]) == 0
    )
    escaped = onnx.load(str(folder / "ok.onnx"), load_external_data=False)
    for tensor in escaped.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../secret.bin"
    (tmp_path / "secret.bin").write_bytes((folder / "weights.bin").read_bytes())
    onnx.save(escaped, str(folder / "escape.onnx"))
    out = tmp_path / "escape.train.onnx"
    assert main([str(folder / "escape.onnx"), "--batch", "2", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "inside the model's folder" in err and not out.exists()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--batch", "0"], "--batch"),
        (["--batch", "2", "--lr", "-1"], "--lr"),
        (["--batch", "2", "--loss", "mse"], "invalid choice"),
    ],
)
def test_bad_options_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    src = _save(small_cnn(), tmp_path / "cnn.onnx")
    assert main([str(src), *argv, "-o", str(tmp_path / "o.onnx")]) == 2
    assert needle in capsys.readouterr().err


def test_init_specs_become_parameter_inits() -> None:
    model = small_cnn()
    specs = {}
    for tensor in list(model.graph.initializer):
        if tensor.name in ("p1", "p6"):  # a conv weight and a batch-norm running mean
            model.graph.input.append(
                helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))
            )
            model.graph.initializer.remove(tensor)
            specs[tensor.name] = {"distribution": "normal", "seed": 3, "std": 0.1}
    helper.set_model_props(model, {"autotm.init": json.dumps(specs)})
    train = build_training_model(model, TrainOptions(batch=2), source="s.onnx")
    params = {p["name"]: p for p in metadata(train)["parameters"]}
    assert params["p1"]["init"] == specs["p1"] and params["p1"]["trainable"]
    assert params["p6"]["init"] == specs["p6"] and not params["p6"]["trainable"]
    assert {"p1", "p6"} <= {v.name for v in train.graph.input}


@pytest.mark.oracle
@oracle
def test_old_opset_is_upgraded() -> None:
    """Opset 12 (Split/Squeeze/Unsqueeze with attributes) is converted to 17 first."""
    g = GraphMaker([2, 3, 4, 4])
    t = g.op("Conv", ["x", g.param([4, 3, 3, 3])], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    t = g.op("Squeeze", [g.op("Unsqueeze", [t], axes=[0])], axes=[0])
    a = g.op("Split", [t], n_out=2, axis=1, split=[1, 3])
    t = g.op("Concat", [g.outs()[1], a], axis=1)
    model = build_training_model(g.model(g.head(t, 64), opset=12), TrainOptions(batch=3))
    assert check_gradients(model, feeds_for(model))
