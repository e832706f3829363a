"""A hand-written training graph, for tests of the tools downstream of autotm-graph.

A two-layer perceptron written out node by node in the training-graph conventions (forward,
loss, onnxruntime-training gradient ops, SGD updates), so that executor, profile and optimizer
tests do not depend on the autodiff they are not testing. It also serves as a readable example
of the conventions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MS = "com.microsoft"


def tiny_mlp(
    batch: int = 4, features: int = 8, hidden: int = 16, classes: int = 3, seed: int = 0
) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((hidden, features)) * 0.3).astype(np.float32)
    b1 = np.zeros(hidden, np.float32)
    w2 = (rng.standard_normal((classes, hidden)) * 0.3).astype(np.float32)
    b2 = np.zeros(classes, np.float32)
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h_pre"], name="fc1", transB=1),
        helper.make_node("Relu", ["h_pre"], ["h"], name="relu1"),
        helper.make_node("Gemm", ["h", "w2", "b2"], ["logits"], name="fc2", transB=1),
        helper.make_node(
            "SoftmaxCrossEntropyLoss",
            ["logits", "labels"],
            ["loss", "log_prob"],
            name="loss",
            reduction="mean",
        ),
        helper.make_node(
            "SoftmaxCrossEntropyLossGrad",
            ["loss_grad", "log_prob", "labels"],
            ["logits_grad"],
            name="loss_grad_node",
            domain=MS,
            reduction="mean",
        ),
        helper.make_node("Gemm", ["logits_grad", "h"], ["w2_grad"], name="fc2_dw", transA=1),
        helper.make_node(
            "SGDOptimizer", ["lr", "w2", "w2_grad"], ["w2.updated"], name="sgd_w2", domain=MS
        ),
        helper.make_node(
            "ReduceSum", ["logits_grad", "axes0"], ["b2_grad"], name="fc2_db", keepdims=0
        ),
        helper.make_node(
            "SGDOptimizer", ["lr", "b2", "b2_grad"], ["b2.updated"], name="sgd_b2", domain=MS
        ),
        helper.make_node("Gemm", ["logits_grad", "w2"], ["h_grad"], name="fc2_dx"),
        helper.make_node("ReluGrad", ["h_grad", "h"], ["h_pre_grad"], name="relu1_grad", domain=MS),
        helper.make_node("Gemm", ["h_pre_grad", "x"], ["w1_grad"], name="fc1_dw", transA=1),
        helper.make_node(
            "SGDOptimizer", ["lr", "w1", "w1_grad"], ["w1.updated"], name="sgd_w1", domain=MS
        ),
        helper.make_node(
            "ReduceSum", ["h_pre_grad", "axes0"], ["b1_grad"], name="fc1_db", keepdims=0
        ),
        helper.make_node(
            "SGDOptimizer", ["lr", "b1", "b1_grad"], ["b1.updated"], name="sgd_b1", domain=MS
        ),
    ]
    shapes = {
        "h_pre": [batch, hidden],
        "h": [batch, hidden],
        "logits": [batch, classes],
        "log_prob": [batch, classes],
        "logits_grad": [batch, classes],
        "w2_grad": [classes, hidden],
        "b2_grad": [classes],
        "h_grad": [batch, hidden],
        "h_pre_grad": [batch, hidden],
        "w1_grad": [hidden, features],
        "b1_grad": [hidden],
    }
    initializers = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(b1, "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(b2, "b2"),
        numpy_helper.from_array(np.array(0.1, np.float32), "lr"),
        numpy_helper.from_array(np.array(1.0, np.float32), "loss_grad"),
        numpy_helper.from_array(np.array([0], np.int64), "axes0"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_mlp_training",
        inputs=[
            helper.make_tensor_value_info("x", f32, [batch, features]),
            helper.make_tensor_value_info("labels", i64, [batch]),
        ],
        outputs=[helper.make_tensor_value_info("loss", f32, [])]
        + [
            helper.make_tensor_value_info(f"{p}.updated", f32, list(a.shape))
            for p, a in (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2))
        ],
        initializer=initializers,
        value_info=[helper.make_tensor_value_info(n, f32, s) for n, s in shapes.items()],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)],
        producer_name="tests.handmade",
    )
    model.ir_version = 8
    meta = {
        "format": "autotm.training/1",
        "network": "tiny_mlp",
        "batch": batch,
        "loss": "loss",
        "optimizer": {"type": "sgd", "learning_rate": 0.1},
        "data_inputs": ["x", "labels"],
        "parameters": [
            {"name": p, "updated": f"{p}.updated", "trainable": True, "init": None}
            for p in ("w1", "b1", "w2", "b2")
        ],
    }
    helper.set_model_props(model, {"autotm.training": json.dumps(meta)})
    onnx.checker.check_model(model)
    return model


def write_tiny_mlp(path: Path, **kwargs: int) -> Path:
    onnx.save(tiny_mlp(**kwargs), str(path))
    return path
