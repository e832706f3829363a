"""A small vision transformer, hand-built the way the exporters write one, goes through
`train`: patch-embedding Conv, class token Expand + Concat, positional Add, layer norm,
multi-head attention with batched MatMuls and Softmax, a GELU MLP, the class-token Gather and
a linear head. Three spellings: opset 17 with a dynamic batch (LayerNormalization, erf GELU as
TorchScript writes it), opset 13 with a static batch (layer norm decomposed, as TorchScript
writes it below 17) and opset 20 with a static batch (ONNX Gelu, as dynamo writes it).

Checked: the forward computes the source's logits, the gradients match float64 finite
differences, and SGD lowers the loss."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from autotm_graph.train import TrainOptions, build_training_model

from .train_oracle import (
    GraphMaker,
    check_gradients,
    feeds_for,
    ort,
    ort_has_training_ops,
    run_ort,
    sgd_losses,
    value_infos,
)

oracle = pytest.mark.skipif(not ort_has_training_ops(), reason="needs onnxruntime-training")

DIM, HEADS, PATCH, IMAGE, CLASSES = 8, 2, 4, 8, 4
TOKENS = (IMAGE // PATCH) ** 2 + 1


class ViT:
    """Builds the graph in one of the three spellings (see the module docstring)."""

    def __init__(self, opset: int, static: bool) -> None:
        self.opset = opset
        self.static = static
        self.g = GraphMaker([2 if static else "N", 3, IMAGE, IMAGE], seed=1)

    def linear(self, t: str, fan_in: int, fan_out: int) -> str:
        w = self.g.param([fan_in, fan_out], 1 / np.sqrt(fan_in))
        return self.g.op("Add", [self.g.op("MatMul", [t, w]), self.g.param([fan_out], 0.1)])

    def layer_norm(self, t: str) -> str:
        g = self.g
        scale, bias = g.param([DIM], 0.1, 1 + 0.1 * np.arange(DIM)), g.param([DIM], 0.1)
        if self.opset >= 17:
            return g.op("LayerNormalization", [t, scale, bias], axis=-1, epsilon=1e-6)
        mean = g.op("ReduceMean", [t], axes=[-1])
        d = g.op("Sub", [t, mean])
        var = g.op("ReduceMean", [g.op("Pow", [d, g.const(2.0, np.float32)])], axes=[-1])
        std = g.op("Sqrt", [g.op("Add", [var, g.const(1e-6, np.float32)])])
        return g.op("Add", [g.op("Mul", [g.op("Div", [d, std]), scale]), bias])

    def gelu(self, t: str) -> str:
        g = self.g
        if self.opset >= 20:
            return g.op("Gelu", [t])
        erf = g.op("Erf", [g.op("Div", [t, g.const(float(np.sqrt(2.0)), np.float32)])])
        plus = g.op("Add", [erf, g.const(1.0, np.float32)])
        return g.op("Mul", [g.op("Mul", [t, plus]), g.const(0.5, np.float32)])

    def attention(self, t: str) -> str:
        g = self.g
        head = DIM // HEADS
        qkv = self.linear(t, DIM, 3 * DIM)  # [N, T, 3 * DIM]
        qkv = g.op("Reshape", [qkv, g.const([0, TOKENS, 3, HEADS, head])])
        qkv = g.op("Transpose", [qkv], perm=[2, 0, 3, 1, 4])  # [3, N, heads, T, d]
        q, k, v = (g.op("Gather", [qkv, g.const(i)], axis=0) for i in range(3))
        q = g.op("Mul", [q, g.const(head**-0.5, np.float32)])
        scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])])
        t = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])  # [N, heads, T, d]
        t = g.op("Transpose", [t], perm=[0, 2, 1, 3])
        return self.linear(g.op("Reshape", [t, g.const([0, TOKENS, DIM])]), DIM, DIM)

    def model(self) -> onnx.ModelProto:
        g = self.g
        w = g.param([DIM, 3, PATCH, PATCH], 0.2)
        t = g.op("Conv", ["x", w, g.param([DIM])], kernel_shape=[PATCH] * 2, strides=[PATCH] * 2)
        t = g.op("Transpose", [g.op("Reshape", [t, g.const([0, DIM, -1])])], perm=[0, 2, 1])
        if self.static:
            shape = g.const([2, 1, DIM])
        else:
            n = g.op("Gather", [g.op("Shape", ["x"]), g.const([0])], axis=0)
            shape = g.op("Concat", [n, g.const([-1, -1])], axis=0)
            shape = g.op("Where", [g.op("Equal", [shape, g.const(-1)]), g.const(1), shape])
        token = g.op("Expand", [g.param([1, 1, DIM], 0.5), shape])
        t = g.op("Concat", [token, t], axis=1)
        t = g.op("Add", [t, g.param([1, TOKENS, DIM], 0.5)])
        t = g.op("Add", [t, self.attention(self.layer_norm(t))])
        mlp = self.gelu(self.linear(self.layer_norm(t), DIM, 2 * DIM))
        t = g.op("Add", [t, self.linear(mlp, 2 * DIM, DIM)])
        t = g.op("Gather", [self.layer_norm(t), g.const(0)], axis=1)  # x[:, 0]
        return g.model(g.op("Gemm", [t, g.param([CLASSES, DIM], 0.3)], transB=1), self.opset)


SPELLINGS = {
    "opset17-dynamic": (17, False),
    "opset13-static": (13, True),
    "opset20-static": (20, True),
}


def _train(name: str, batch: int) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    source = ViT(*SPELLINGS[name]).model()
    return source, build_training_model(
        source, TrainOptions(batch=batch, learning_rate=0.2), source=f"vit_{name}.onnx"
    )


@pytest.mark.parametrize("name", sorted(SPELLINGS))
def test_written_as_transformer_ops(name: str) -> None:
    _, model = _train(name, 3)
    ops = Counter(f"{n.domain}:{n.op_type}" if n.domain else n.op_type for n in model.graph.node)
    ms = "com.microsoft"
    assert ops["LayerNormalization"] == 3 and ops[f"{ms}:LayerNormalizationGrad"] == 3
    assert ops[f"{ms}:Gelu"] == 1 and ops[f"{ms}:GeluGrad"] == 1
    assert ops[f"{ms}:GatherGrad"] == 4  # q, k, v and the class token
    assert ops[f"{ms}:SoftmaxGrad_13"] == 1
    assert not ops["ReduceMean"] and not ops["Erf"] and not ops["Sqrt"]
    infos = value_infos(model)
    ranks = [
        len(infos[n.input[0]].type.tensor_type.shape.dim)
        for n in model.graph.node
        if n.op_type == "MatMul"
    ]
    assert ranks.count(4) >= 2 + 4  # Q K^T and A V forward, two per product backward


@pytest.mark.oracle
@oracle
@pytest.mark.parametrize("name", sorted(SPELLINGS))
def test_forward_gradients_and_loss(name: str) -> None:
    assert ort is not None
    source, model = _train(name, 2)
    feeds = feeds_for(model, seed=6)
    logits = source.graph.output[0].name
    readable = onnx.ModelProto()
    readable.CopyFrom(source)
    readable.ir_version = 8
    session = ort.InferenceSession(readable.SerializeToString(), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {"x": feeds["x"]})
    np.testing.assert_allclose(run_ort(model, feeds, [logits])[logits], want, rtol=1e-4, atol=1e-5)

    _, model = _train(name, 3)  # re-batched
    feeds = feeds_for(model, seed=7)
    checked = check_gradients(model, feeds)
    assert len(checked) == sum(1 for n in model.graph.node if n.op_type == "SGDOptimizer")
    losses = sgd_losses(model, feeds, steps=8)
    assert losses[-1] < 0.5 * losses[0], losses
