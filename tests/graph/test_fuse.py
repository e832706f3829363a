"""Layer-norm and GELU decompositions are fused where they match and left alone where they
do not; either way the training graph's forward computes what the source graph computes
(run both in onnxruntime at the export batch and compare the logits)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import onnx
import pytest
from autotm_graph.train import TrainOptions, build_training_model
from autotm_graph.train.prepare import prepare

from .train_oracle import GraphMaker, feeds_for, metadata, ort, ort_has_training_ops, run_ort

oracle = pytest.mark.skipif(not ort_has_training_ops(), reason="needs onnxruntime-training")


def _tokens(g: GraphMaker) -> str:
    t = g.op("Conv", ["x", g.param([4, 3, 1, 1])], kernel_shape=[1, 1])
    t = g.op("Reshape", [t, g.const([0, 4, -1])])
    return g.op("Transpose", [t], perm=[0, 2, 1])  # [N, 9, 4]


def _layer_norm(
    g: GraphMaker,
    x: str,
    square: str = "Pow",
    eps_first: bool = False,
    weight: str | None = "[4]",
    swap: bool = False,
    axes_input: bool = False,
    axes: tuple[int, ...] = (-1,),
) -> str:
    """F.layer_norm as TorchScript writes it below opset 17, in the variants exporters use."""

    def mean(t: str) -> str:
        if axes_input:
            return g.op("ReduceMean", [t, g.const(list(axes))])
        return g.op("ReduceMean", [t], axes=list(axes))

    d = g.op("Sub", [x, mean(x)])
    sq = g.op("Pow", [d, g.const(2.0, np.float32)]) if square == "Pow" else g.op("Mul", [d, d])
    eps = g.const(1e-5, np.float32)
    var = mean(sq)
    std = g.op("Sqrt", [g.op("Add", [eps, var] if eps_first else [var, eps])])
    t = g.op("Div", [d, std])
    if weight is not None:
        w = g.param([4] if weight == "[4]" else [1, 1, 4], 0.3, np.linspace(0.5, 1.5, 4))
        t = g.op("Mul", [w, t] if swap else [t, w])
        b = g.param([4])
        t = g.op("Add", [b, t] if swap else [t, b])
    return t


def _model(build: str, opset: int = 13, **kwargs: Any) -> onnx.ModelProto:
    g = GraphMaker([2, 3, 3, 3])
    t = _layer_norm(g, _tokens(g), **kwargs)
    if build == "used twice":  # the mean and the centred input also read elsewhere
        mean, centred = g.nodes[3].output[0], g.nodes[4].output[0]
        t = g.op("Add", [g.op("Add", [t, centred]), mean])
    return g.model(g.head(t, 36), opset=opset)


def _ops(model: onnx.ModelProto) -> Counter[str]:
    fwd = prepare(model, 2, "m.onnx")
    return Counter(n.op_type for n in fwd.graph.nodes)


def _assert_same_logits(source: onnx.ModelProto) -> None:
    """The training graph at the export batch computes the source's logits."""
    assert ort is not None
    train = build_training_model(source, TrainOptions(batch=2), source="m.onnx")
    feeds = feeds_for(train, seed=3)
    logits = source.graph.output[0].name
    got = run_ort(train, feeds, [logits])[logits]
    readable = onnx.ModelProto()
    readable.CopyFrom(source)
    readable.ir_version = 8  # onnxruntime 1.19 reads up to 10; onnx.helper writes newer
    session = ort.InferenceSession(readable.SerializeToString(), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {"x": feeds["x"]})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert metadata(train)["loss"]


LAYER_NORMS: dict[str, dict[str, Any]] = {
    "pow": {},
    "mul square": {"square": "Mul"},
    "eps first, weight first": {"eps_first": True, "swap": True},
    "weight [1, 1, C]": {"weight": "[1, 1, 4]"},
    "no affine": {"weight": None},
    "opset 18 axes input": {"axes_input": True, "opset": 18},
    "used twice": {"build": "used twice"},
}


@pytest.mark.parametrize("name", sorted(LAYER_NORMS))
def test_layer_norm_decompositions_fuse(name: str) -> None:
    kwargs = dict(LAYER_NORMS[name])
    model = _model(str(kwargs.pop("build", "plain")), **kwargs)
    ops = _ops(model)
    assert ops["LayerNormalization"] == 1, ops
    assert not ops["Sqrt"] and not ops["Div"] and not ops["Pow"], ops
    assert ops["Add"] == (2 if name == "used twice" else 0), ops  # the bias Add is fused
    if ort_has_training_ops():
        _assert_same_logits(model)


@pytest.mark.parametrize(
    "kwargs",
    [{"axes": (1,)}, {"axes": (1, 2)}],
    ids=["token axis", "last two axes"],
)
def test_layer_norm_over_other_axes_is_not_fused(kwargs: dict[str, Any]) -> None:
    model = _model("plain", **kwargs)
    ops = _ops(model)
    if kwargs["axes"] == (1, 2):  # the last two axes of [N, T, C]: trailing, fused
        assert ops["LayerNormalization"] == 1, ops
    else:
        assert not ops["LayerNormalization"] and ops["Sqrt"] == 1, ops
    if ort_has_training_ops():
        _assert_same_logits(model)


def _gelu(g: GraphMaker, x: str, divisor: float = float(np.sqrt(2.0)), leak: bool = False) -> str:
    erf = g.op("Erf", [g.op("Div", [x, g.const(divisor, np.float32)])])
    a = g.op("Add", [erf, g.const(1.0, np.float32)])
    t = g.op("Mul", [g.op("Mul", [x, a]), g.const(0.5, np.float32)])
    return g.op("Add", [t, erf]) if leak else t


@pytest.mark.parametrize(
    ("kwargs", "fused"),
    [({}, True), ({"divisor": 1.5}, False), ({"leak": True}, False)],
    ids=["gelu", "other constant", "erf read elsewhere"],
)
def test_gelu_fusion(kwargs: dict[str, Any], fused: bool) -> None:
    g = GraphMaker([2, 3, 3, 3])
    t = _gelu(g, g.op("Conv", ["x", g.param([4, 3, 1, 1])], kernel_shape=[1, 1]), **kwargs)
    model = g.model(g.head(t, 36))
    ops = _ops(model)
    assert (ops["Gelu"], ops["Erf"]) == ((1, 0) if fused else (0, 1)), ops
    if ort_has_training_ops():
        _assert_same_logits(model)
