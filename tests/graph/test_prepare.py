"""Canonical forms and re-batching in autotm_graph.train.prepare that the gradient tests do
not pin down: deduplicated running statistics, casts and constants that must (not) fold,
random ops that must never fold, static exports re-batched sample by sample."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from autotm_graph.train import TrainOptions, build_training_model
from autotm_graph.train.prepare import prepare
from autotm_schemas import BadInputError
from onnx import helper

from .train_oracle import (
    GraphMaker,
    check_gradients,
    feeds_for,
    metadata,
    ort,
    ort_has_training_ops,
    run_ort,
)

oracle = pytest.mark.skipif(not ort_has_training_ops(), reason="needs onnxruntime-training")


def _bn(g: GraphMaker, x: str, scale: str, bias: str, mean: str, var: str) -> str:
    return g.op("BatchNormalization", [x, scale, bias, mean, var])


def test_shared_running_statistics_get_private_copies() -> None:
    """An eval-mode export deduplicates equal initializers: one zeros tensor is a batch
    norm's bias and two batch norms' running means. Each batch norm updates its own copy;
    the bias still trains."""
    g = GraphMaker([2, 3, 4, 4])
    zeros, ones = g.param([3], value=np.zeros(3)), g.param([3], value=np.ones(3))
    t = _bn(g, "x", ones, zeros, zeros, ones)
    t = _bn(g, g.op("Identity", [t]), g.param([3]), g.param([3]), g.op("Identity", [zeros]), ones)
    model = build_training_model(g.model(g.head(t, 48)), TrainOptions(batch=3), source="s")
    params = metadata(model)["parameters"]
    stats = [p for p in params if not p["trainable"]]
    assert len(stats) == 4 and len({p["name"] for p in stats}) == 4
    assert zeros in {p["name"] for p in params if p["trainable"]}
    if ort_has_training_ops():
        check_gradients(model, feeds_for(model))


def test_shared_running_statistics_with_init_specs() -> None:
    """The same with parameters as graph inputs: the copy is a second input, same spec."""
    g = GraphMaker([2, 3, 4, 4])
    t = _bn(g, "x", "scale", "bias", "stat", "stat")
    model = g.model(g.head(t, 48))
    for name in ("scale", "bias", "stat"):
        model.graph.input.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [3]))
    spec = {"distribution": "ones", "seed": 1}
    helper.set_model_props(
        model, {"autotm.init": json.dumps(dict.fromkeys(("scale", "bias", "stat"), spec))}
    )
    train = build_training_model(model, TrainOptions(batch=2), source="s")
    stats = [p for p in metadata(train)["parameters"] if not p["trainable"]]
    assert len(stats) == 2 and all(p["init"] == spec for p in stats)
    assert len({p["name"] for p in stats}) == 2


def test_cast_of_a_parameter_keeps_training_and_masks_fold() -> None:
    """A float-to-float Cast of a weight is removed (not folded: the weight trains); a mask
    built by ScatterND with float updates (Swin's attention mask) folds to a constant."""
    g = GraphMaker([2, 3, 2, 2])
    w = g.op("Cast", [g.param([4, 3, 1, 1])], to=1)
    t = g.op("Conv", ["x", w], kernel_shape=[1, 1])
    mask = g.op(
        "ScatterND",
        [
            g.op("ConstantOfShape", [g.const([4, 1, 1])]),
            g.const([[1], [3]]),
            g.const(np.full([2, 1, 1], -100.0), np.float32),
        ],
    )
    t = g.op(
        "Add", [t, g.op("Where", [g.op("Equal", [mask, g.const(0.0, np.float32)]), mask, mask])]
    )
    model = build_training_model(g.model(g.head(t, 16)), TrainOptions(batch=3), source="s")
    ops = Counter(n.op_type for n in model.graph.node)
    assert not ops["Cast"] and not ops["ScatterND"] and not ops["Where"]
    assert "p1" in {p["name"] for p in metadata(model)["parameters"] if p["trainable"]}


def test_random_ops_are_never_folded() -> None:
    g = GraphMaker([2, 3, 2, 2])
    noise = g.op("RandomUniformLike", [g.op("ConstantOfShape", [g.const([2, 1, 1, 1])])])
    t = g.op("Conv", ["x", g.param([4, 3, 1, 1])], kernel_shape=[1, 1])
    t = g.op("Mul", [t, g.op("Cast", [g.op("Less", [noise, g.const(0.5, np.float32)])], to=1)])
    fwd = prepare(g.model(g.head(t, 16)), 5, "s.onnx")
    random = [n for n in fwd.graph.nodes if n.op_type == "RandomUniformLike"]
    assert len(random) == 1
    assert fwd.graph.shape(random[0].input[0]) == (5, 1, 1, 1)  # re-batched from 2


def test_pad_reflect_on_a_gradient_path_is_refused() -> None:
    g = GraphMaker([2, 3, 4, 4])
    t = g.op("Conv", ["x", g.param([4, 3, 1, 1])], kernel_shape=[1, 1])
    t = g.op("Pad", [t, g.const([0, 0, 1, 1, 0, 0, 1, 1])], mode="reflect")
    with pytest.raises(BadInputError, match="Pad mode 'reflect'"):
        build_training_model(g.model(g.head(t, 4 * 36)), TrainOptions(batch=2), source="s")


@pytest.mark.parametrize(
    ("op", "inputs", "needle"),
    [
        ("Pow", ["t", "p"], "Pow does not provide"),  # a trained exponent
        ("GatherND", ["t", "i"], "indices: expected a constant"),
    ],
)
def test_unsupported_gradient_forms_exit_2(op: str, inputs: list[str], needle: str) -> None:
    g = GraphMaker([2, 3, 2, 2])
    t = g.op("Conv", ["x", g.param([4, 3, 1, 1])], kernel_shape=[1, 1])
    names = {"t": t, "p": g.op("Relu", [g.param([1])])}
    if op == "GatherND":
        names["i"] = g.op(
            "Unsqueeze", [g.op("Cast", [g.op("Relu", [g.param([2])])], to=7), g.const([1])]
        )
    t = g.op(op, [names[n] for n in inputs])
    with pytest.raises(BadInputError, match=needle):
        build_training_model(g.model(g.head(t, 16)), TrainOptions(batch=2), source="s")


TORCHVISION = Path(__file__).parent / "data" / "torchvision"
STATIC = ["vit", "swin", "swin_v2", "convnext"]  # dynamo: static batch 2, no batch norm


@pytest.mark.oracle
@oracle
@pytest.mark.parametrize("family", STATIC)
@pytest.mark.parametrize("batch", [1, 5])
def test_static_exports_rebatch_per_sample(family: str, batch: int) -> None:
    """A dynamo export (batch 2 in every shape constant) trained at another batch computes,
    for each sample, the logits the export computes for it: no axis mixes samples."""
    assert ort is not None
    path = TORCHVISION / f"{family}_dynamo_eval.onnx"
    if not path.exists():
        pytest.skip(f"{path.name} not shipped")
    source = onnx.load(path)
    model = build_training_model(source, TrainOptions(batch=batch), source=path.name)
    feeds = feeds_for(model, seed=1)
    logits = source.graph.output[0].name
    got = run_ort(model, feeds, [logits])[logits]
    image = metadata(model)["data_inputs"][0]
    pair = np.concatenate([feeds[image]] * 2)[:2]
    inputs = {v.name for v in source.graph.input}
    source_feeds = {k: v for k, v in feeds.items() if k in inputs and k != image}
    readable = onnx.ModelProto()
    readable.CopyFrom(source)
    readable.ir_version = min(readable.ir_version, 10)  # onnxruntime 1.19 reads up to 10
    session = ort.InferenceSession(readable.SerializeToString(), providers=["CPUExecutionProvider"])
    (want,) = session.run([logits], {image: pair, **source_feeds})
    shared = min(batch, 2)
    np.testing.assert_allclose(got[:shared], want[:shared], rtol=1e-4, atol=1e-5)


# --- re-batching a static export where sizes alone are ambiguous ---------------------------
def _same_logits_per_sample(source: onnx.ModelProto, batch: int) -> None:
    """The training graph at ``batch`` gives each sample the logits the export (batch 2)
    gives it."""
    assert ort is not None
    model = build_training_model(source, TrainOptions(batch=batch), source="s.onnx")
    feeds = feeds_for(model, seed=1)
    logits = source.graph.output[0].name
    got = run_ort(model, feeds, [logits])[logits]
    readable = onnx.ModelProto()
    readable.CopyFrom(source)
    readable.ir_version = 8
    session = ort.InferenceSession(readable.SerializeToString(), providers=["CPUExecutionProvider"])
    (want,) = session.run([logits], {"x": np.concatenate([feeds["x"]] * 2)[:2]})
    shared = min(batch, 2)
    np.testing.assert_allclose(got[:shared], want[:shared], rtol=1e-5, atol=1e-6)


def _sequence_first(tokens: int, channels: int, path: list[list[int]]) -> onnx.ModelProto:
    """Attention's sequence-first layout, exported at batch 2: [N, T, C] transposed to
    [T, N, C], reshaped along ``path`` (merging the batch with the axes around it), back to
    [T, N, C], a per-token bias, and back to [N, T, C]."""
    g = GraphMaker([2, tokens, channels])
    t = g.op("Transpose", ["x"], perm=[1, 0, 2])
    for shape in path:
        t = g.op("Reshape", [t, g.const(shape)])
        t = g.op("Mul", [t, g.op("Relu", [t])])
    t = g.op("Reshape", [t, g.const([tokens, 2, channels])])
    t = g.op("Add", [t, g.param([tokens, 1, channels])])
    t = g.op("Transpose", [t], perm=[1, 0, 2])
    return g.model(g.head(t, tokens * channels))


@oracle
@pytest.mark.parametrize(
    ("tokens", "channels", "path"),
    [
        (2, 3, [[4, 3]]),  # [T*N] -> [T, N] with T equal to the export batch
        (3, 2, [[12], [6, 2]]),  # [T*N*C] -> [T*N, C] with C equal to the export batch
        (4, 3, [[24], [4, 6]]),  # [T*N*C] -> [T, N*C]: no axis equals the export batch
        (2, 2, [[8], [2, 4]]),  # every size equals the export batch
    ],
    ids=["T=2", "C=2", "N*C", "all 2"],
)
@pytest.mark.parametrize("batch", [1, 5])
def test_batch_merged_inside_an_axis_rebatches_per_sample(
    tokens: int, channels: int, path: list[list[int]], batch: int
) -> None:
    """Sizes alone put the batch on the wrong axis here (the outermost, or the one equal to
    the export batch); following the batch from the input puts it where it is."""
    _same_logits_per_sample(_sequence_first(tokens, channels, path), batch)


def test_reshape_that_splits_the_batch_is_refused() -> None:
    """[N, 3] viewed as [3, N] at N = 2 spreads each sample over two rows: no target at
    another batch computes per sample what the export computes."""
    g = GraphMaker([2, 3])
    t = g.op("Reshape", [g.op("Relu", ["x"]), g.const([3, 2])])
    t = g.op("Reshape", [g.op("Mul", [t, t]), g.const([2, 3])])
    model = g.model(g.head(t, 3))
    assert prepare(model, 2, "s.onnx").graph.shape(t) == (2, 3)  # at the export batch: fine
    with pytest.raises(BadInputError, match="keeps the batch"):
        prepare(model, 5, "s.onnx")


@oracle
def test_flat_indices_into_a_table_are_not_rebatched() -> None:
    """A Gather with constant [2, 3] indices whose rows are shifted by 3, into a 1-D table
    of 6 values that does not depend on the batch: it stays as exported (re-batched to 5
    rows, it would read past the table's end)."""
    g = GraphMaker([2, 3])
    table = g.op("Relu", [g.param([6])])
    rows = g.op("Gather", [table, g.const([[2, 0, 1], [5, 3, 4]])])
    bias = g.op("ReduceSum", [rows, g.const([0])], keepdims=1)
    model = g.model(g.head(g.op("Add", ["x", bias]), 3))
    fwd = prepare(model, 5, "s.onnx")
    gather = next(n for n in fwd.graph.nodes if n.op_type == "Gather")
    assert fwd.graph.shape(gather.output[0]) == (2, 3)
    _same_logits_per_sample(model, 5)


def _scatter(indices: list, updates: np.ndarray) -> onnx.ModelProto:
    """ScatterND into a weighted copy of the input [N, 3, 4] (N = 2, a static export)."""
    g = GraphMaker([2, 3, 4])
    t = g.op("Mul", ["x", g.param([3, 4])])
    t = g.op("ScatterND", [t, g.const(indices), g.const(updates, np.float32)])
    return g.model(g.head(t, 12))


@oracle
def test_scatter_nd_is_data_times_keep_plus_placed() -> None:
    """Indices of 2 components into [N, 3, 4], one counted from the end: the training graph
    computes what onnxruntime's ScatterND computes, and the weight's gradient is right."""
    model = _scatter([[0, -1], [1, 0]], np.arange(8.0).reshape(2, 4) - 3.0)
    _same_logits_per_sample(model, 2)
    train = build_training_model(model, TrainOptions(batch=2), source="s.onnx")
    assert "ScatterND" not in {n.op_type for n in train.graph.node}
    check_gradients(train, feeds_for(train))


@pytest.mark.parametrize(
    ("indices", "updates", "needle"),
    [
        ([[0, 3]], np.zeros([1, 4]), "within data's axes"),  # row 3 of 3
        ([[0, 0, 0, 0]], np.zeros([1]), "1 to 3 components"),
        ([[0, 1]], np.zeros([1]), r"updates of shape \[1\]: expected \[1, 4\]"),  # broadcast
    ],
    ids=["past the end", "too many components", "updates of another shape"],
)
def test_scatter_nd_refuses_what_onnx_refuses(
    indices: list, updates: np.ndarray, needle: str
) -> None:
    with pytest.raises(BadInputError, match=needle):
        prepare(_scatter(indices, updates), 2, "s.onnx")


@pytest.mark.parametrize("op", ["Gather", "GatherND", "ScatterND"])
def test_constant_indices_into_the_batch_of_a_static_export(op: str) -> None:
    """Indices that pick or write the export's samples (here: swap them) have no known
    meaning at another batch: refused there, kept at the export batch."""
    g = GraphMaker([2, 3])
    t = g.op("Relu", ["x"])
    if op == "Gather":
        t = g.op("Gather", [t, g.const([1, 0])], axis=0)
    elif op == "GatherND":
        t = g.op("GatherND", [t, g.const([[1], [0]])])
    else:
        t = g.op("ScatterND", [t, g.const([[0]]), g.const(np.ones([1, 3]), np.float32)])
    model = g.model(g.head(t, 3))
    assert prepare(model, 2, "s.onnx").graph.shape(t) == (2, 3)
    for batch in (1, 5):
        with pytest.raises(BadInputError, match=r"along the batch|expected values"):
            prepare(model, batch, "s.onnx")
