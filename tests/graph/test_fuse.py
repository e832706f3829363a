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


# --- adversarial variants: what must fuse, and look-alikes that must not -------------------
def _conv(g: GraphMaker) -> str:
    return g.op("Conv", ["x", g.param([4, 3, 1, 1])], kernel_shape=[1, 1])  # [N, 4, 3, 3]


def _gelu_form(g: GraphMaker, x: str, form: str) -> str:
    """GELU (or a look-alike) in the Mul orders and scalings exporters write."""
    f32 = np.float32
    half = g.const(0.25 if form == "quarter" else 0.5, f32)
    if form == "mul by 1/sqrt2":
        scaled = g.op("Mul", [g.const(np.sqrt(0.5), f32), x])
    else:
        scaled = g.op("Div", [x, g.const(np.sqrt(2.0), f32)])
    erf = g.op("Erf", [scaled])
    one = g.const(np.full([1, 1, 1, 1, 1], 1.0) if form == "rank-5 one" else 1.0, f32)
    a = g.op("Add", [one, erf])
    if form == "(x*0.5)*a":
        t = g.op("Mul", [g.op("Mul", [half, x]), a])
    elif form == "(a*0.5)*x":
        t = g.op("Mul", [x, g.op("Mul", [a, half])])
    elif form == "(x*a)*0.5 of another x":
        t = g.op("Mul", [g.op("Mul", [g.op("Relu", [x]), a]), half])
    elif form == "(a*0.5)*0.5":
        t = g.op("Mul", [g.op("Mul", [a, half]), half])
    else:
        t = g.op("Mul", [g.op("Mul", [a, x]), half])
    if form == "one plus read elsewhere":
        t = g.op("Add", [t, a])
    if form == "rank-5 one":
        t = g.op("ReduceSum", [t, g.const([0])], keepdims=0)  # back to [N, 4, 3, 3]
    return t


GELU_FORMS = {
    "(x*0.5)*a": True,
    "(a*0.5)*x": True,
    "mul by 1/sqrt2": True,
    "quarter": False,
    "(x*a)*0.5 of another x": False,
    "(a*0.5)*0.5": False,
    "one plus read elsewhere": False,
    "rank-5 one": False,  # fusing would write Gelu(X) of shape [N, 4, 3, 3] as [1, N, 4, 3, 3]
}


@pytest.mark.parametrize("form", sorted(GELU_FORMS))
def test_gelu_look_alikes(form: str) -> None:
    g = GraphMaker([2, 3, 3, 3])
    model = g.model(g.head(_gelu_form(g, _conv(g), form), 36))
    ops = _ops(model)
    assert (ops["Gelu"], ops["Erf"]) == ((1, 0) if GELU_FORMS[form] else (0, 1)), ops
    if ort_has_training_ops():
        _assert_same_logits(model)


def _layer_norm_form(g: GraphMaker, x: str, form: str) -> str:
    """Layer norm of [N, 9, 4] over the last axis, or a look-alike of it."""
    f32 = np.float32
    mean = g.op("ReduceMean", [x], axes=[-1])
    d = g.op("Sub", [x, mean])
    var_axes = [-2, -1] if form == "variance over two axes" else [-1]
    var = g.op("ReduceMean", [g.op("Mul", [d, d])], axes=var_axes)
    eps = g.const(np.full([1, 1, 1, 1], 1e-5) if form == "rank-4 epsilon" else 1e-5, f32)
    if form == "epsilon after sqrt":
        std = g.op("Add", [g.op("Sqrt", [var]), eps])
    else:
        std = g.op("Sqrt", [g.op("Add", [var, eps])])
    t = g.op("Div", [d, std])
    weight_shape = {"weight [9, 1]": [9, 1], "weight [1, 1, 1, 4]": [1, 1, 1, 4]}
    w = g.param(weight_shape.get(form, [4]), 0.3)
    t = g.op("Mul", [t, w])
    b = g.param([9, 1] if form == "bias [9, 1]" else [4])
    t = g.op("Add", [t, b])
    if form in ("rank-4 epsilon", "weight [1, 1, 1, 4]"):
        t = g.op("ReduceSum", [t, g.const([0])], keepdims=0)  # back to [N, 9, 4]
    return t


# form -> (LayerNormalization nodes, Mul nodes left: the weight's Mul when it is not fused)
LAYER_NORM_FORMS = {
    "variance over two axes": (0, 2),
    "epsilon after sqrt": (0, 2),
    "rank-4 epsilon": (0, 2),
    "weight [9, 1]": (1, 1),  # one weight per token, not per channel: a Mul after the norm
    "weight [1, 1, 1, 4]": (1, 1),  # rank 4 over [N, 9, 4]: broadcasts, so not fused
    "bias [9, 1]": (1, 0),  # one bias per token: the Add stays after the fused norm
}


@pytest.mark.parametrize("form", sorted(LAYER_NORM_FORMS))
def test_layer_norm_look_alikes(form: str) -> None:
    g = GraphMaker([2, 3, 3, 3])
    model = g.model(g.head(_layer_norm_form(g, _tokens(g), form), 36))
    ops = _ops(model)
    assert (ops["LayerNormalization"], ops["Mul"]) == LAYER_NORM_FORMS[form], ops
    if ort_has_training_ops():
        _assert_same_logits(model)
