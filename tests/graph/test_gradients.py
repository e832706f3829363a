"""Gradients of every supported op: the training graph run in onnxruntime-training against
float64 central finite differences of the same forward function.

Tolerance: |analytic - numeric| <= 2e-5 + 2e-3 * |numeric| for the directional derivative
of the loss along one random unit direction per parameter (see train_oracle.check_gradients).
Each case builds a tiny inference graph at batch 2 and trains it at batch 3, so re-batching is
exercised everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import pytest
from autotm_graph.opset import FORWARD, MS, TRAINING_OPS, backward_op_keys
from autotm_graph.train import TrainOptions, build_training_model

from .train_oracle import GraphMaker, check_gradients, feeds_for, ort_has_training_ops

oracle = pytest.mark.skipif(not ort_has_training_ops(), reason="needs onnxruntime-training")

Case = Callable[[], onnx.ModelProto]
CASES: dict[str, Case] = {}


def case(fn: Case) -> Case:
    CASES[fn.__name__] = fn
    return fn


def _conv_input(g: GraphMaker, channels: int = 4) -> str:
    """A parameterised first layer, so that the op under test sits on a gradient path."""
    return g.op(
        "Conv",
        ["x", g.param([channels, 3, 3, 3]), g.param([channels])],
        kernel_shape=[3, 3],
        pads=[1, 1, 1, 1],
    )


@case
def conv_bias_pads() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 6, 6])
    return g.model(g.head(_conv_input(g), 4 * 36))


@case
def conv_groups_strides_dilations() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 7, 7])
    t = _conv_input(g)
    t = g.op(
        "Conv",
        [t, g.param([6, 2, 3, 3])],
        group=2,
        strides=[2, 2],
        dilations=[2, 1],
        pads=[1, 0, 2, 1],
    )
    shape = (2, 6, 3, 3)
    return g.model(g.head(t, int(np.prod(shape[1:]))))


@case
def conv_depthwise_same_upper() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 5, 5])
    t = _conv_input(g)
    t = g.op(
        "Conv",
        [t, g.param([4, 1, 3, 3]), g.param([4])],
        group=4,
        strides=[2, 2],
        auto_pad="SAME_UPPER",
    )
    return g.model(g.head(t, 4 * 9))


@case
def relu_maxpool() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 7, 7])
    t = g.op("Relu", [_conv_input(g)])
    t = g.op("MaxPool", [t], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    return g.model(g.head(t, 4 * 16))


@case
def maxpool_ceil_mode() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 6, 6])
    t = g.op("MaxPool", [_conv_input(g)], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    return g.model(g.head(t, 4 * 9))


@case
def average_pool_exclude_pad() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 6, 6])
    t = g.op(
        "AveragePool", [_conv_input(g)], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]
    )
    return g.model(g.head(t, 4 * 9))


@case
def average_pool_include_pad() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 6, 6])
    t = g.op(
        "AveragePool",
        [_conv_input(g)],
        kernel_shape=[2, 2],
        strides=[2, 2],
        pads=[1, 1, 1, 1],
        count_include_pad=1,
    )
    return g.model(g.head(t, 4 * 16))


@case
def global_average_pool_batchnorm() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 5, 5])
    bn = [
        g.param([4], 0.2, np.ones(4) + 0.1 * np.arange(4)),
        g.param([4]),
        g.param([4], value=np.zeros(4)),
        g.param([4], value=np.ones(4)),
    ]
    t = g.op("BatchNormalization", [_conv_input(g), *bn], epsilon=1e-3, momentum=0.8)
    t = g.op("GlobalAveragePool", [g.op("Relu", [t])])
    return g.model(g.head(t, 4))


@case
def gemm_transposes_alpha_beta() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 2, 2])
    t = g.op("Flatten", [_conv_input(g)])
    t = g.op("Gemm", [t, g.param([16, 5]), g.param([1, 5])], alpha=0.7, beta=1.3)
    t = g.op("Transpose", [t], perm=[1, 0])
    t = g.op("Gemm", [t, g.param([5, 6])], transA=1, transB=0)
    t = g.op("Gemm", [g.param([3, 6]), t, g.param([3])], transA=0, transB=1)
    return g.model(g.op("Gemm", [t, g.param([4, 3])], transA=1, transB=1))


@case
def matmul_2d_and_3d() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 2, 2])
    t = g.op("Reshape", [_conv_input(g), g.const([2, 4, 4])])
    t = g.op("MatMul", [t, g.param([4, 5])])
    t = g.op("Add", [t, g.param([5])])
    t = g.op("Reshape", [t, g.const([2, -1])])
    return g.model(g.op("MatMul", [t, g.param([20, 3])]))


@case
def elementwise_broadcast() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 3, 3])
    c = _conv_input(g)
    t = g.op("Add", [c, g.param([4, 1, 1])])
    t = g.op("Mul", [t, g.param([1, 4, 3, 1])])
    t = g.op("Sub", [g.param([3]), t])
    t = g.op("Div", [t, g.const(np.full([1, 4, 1, 1], 1.5), np.float32)])
    t = g.op("Mul", [t, t])
    t = g.op("Neg", [g.op("Add", [t, c])])
    return g.model(g.head(t, 36))


@case
def concat_split_slice() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 4, 4])
    c = _conv_input(g)
    a, b = g.op("Split", [c, g.const([1, 3])], n_out=2, axis=1), g.outs()[1]
    t = g.op("Concat", [b, c, a], axis=1)
    t = g.op("Slice", [t, g.const([1, 0]), g.const([7, 3]), g.const([1, 2])])
    return g.model(g.head(t, 6 * 3 * 4))


@case
def split_with_unused_output() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 4, 4])
    t = g.op("Split", [_conv_input(g)], n_out=2, axis=1)
    return g.model(g.head(t, 2 * 16))


@case
def views_and_reduce_mean() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 4, 4])
    t = g.op("Unsqueeze", [_conv_input(g), g.const([1])])
    t = g.op("Squeeze", [t, g.const([1])])
    s = g.op("ReduceMean", [t], axes=[2, 3], keepdims=1)
    t = g.op("Mul", [t, g.op("Sigmoid", [s])])
    t = g.op("ReduceMean", [t], axes=[-1], keepdims=0)
    t = g.op("Identity", [t])
    return g.model(g.head(t, 16))


@case
def activations() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 4, 4])
    t = _conv_input(g)
    t = g.op("Clip", [t, g.const(-0.5, np.float32), g.const(0.6, np.float32)])
    t = g.op("Conv", [t, g.param([4, 4, 1, 1])], kernel_shape=[1, 1])
    t = g.op("HardSwish", [g.op("Mul", [t, g.const(4.0, np.float32)])])
    t = g.op("HardSigmoid", [t], alpha=0.3, beta=0.4)
    t = g.op("Clip", [t, "", g.const(0.9, np.float32)])
    return g.model(g.head(t, 64))


@case
def softmaxes_and_dropout() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 3, 3])
    t = g.op("Softmax", [_conv_input(g)], axis=1)
    t = g.op("LogSoftmax", [t], axis=-1)
    t = g.op("Dropout", [t, g.const(0.3, np.float32)], seed=7)
    return g.model(g.op("Softmax", [g.head(t, 36)], axis=1))  # folded into the loss


@case
def shape_chain_reshape() -> onnx.ModelProto:
    g = GraphMaker(["N", 3, 4, 4])
    t = _conv_input(g)
    n = g.op("Gather", [g.op("Shape", [t]), g.const(0)], axis=0)
    shape = g.op("Concat", [g.op("Unsqueeze", [n, g.const([0])]), g.const([-1])], axis=0)
    t = g.op("Reshape", [t, shape])
    return g.model(g.op("Gemm", [t, g.param([64, 3])]))


@pytest.mark.oracle
@oracle
@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_match_finite_differences(name: str) -> None:
    model = build_training_model(CASES[name](), TrainOptions(batch=3), source=f"{name}.onnx")
    results = check_gradients(model, feeds_for(model, seed=1))
    assert results, "no parameter was checked"


@pytest.mark.parametrize("name", sorted(CASES))
def test_backward_ops_are_the_ones_opset_lists(name: str) -> None:
    source = CASES[name]()
    model = build_training_model(source, TrainOptions(batch=3), source=f"{name}.onnx")
    allowed = {
        ("", "SoftmaxCrossEntropyLoss"),
        (MS, "SoftmaxCrossEntropyLossGrad"),
        (MS, "SGDOptimizer"),
        ("", "Sum"),
    }
    for node in source.graph.node:
        forward = FORWARD[node.op_type]
        allowed.update(backward_op_keys(forward))
        allowed.update((d, op) for d, _, op in (w.rpartition(":") for w in forward.writes))
    emitted = {(n.domain, n.op_type) for n in model.graph.node}
    assert emitted <= allowed, emitted - allowed
    assert emitted <= set(TRAINING_OPS)


def test_every_differentiable_op_has_a_gradient_case() -> None:
    covered = {node.op_type for make in CASES.values() for node in make().graph.node}
    differentiable = {op for op, f in FORWARD.items() if f.backward is not None}
    assert differentiable <= covered, differentiable - covered


def test_opset_table_is_consistent() -> None:
    for forward in FORWARD.values():
        for key in backward_op_keys(forward):
            assert key in TRAINING_OPS, (forward.op_type, key)
        for written in forward.writes:
            domain, _, op = written.rpartition(":")
            assert (domain, op) in TRAINING_OPS, (forward.op_type, written)
    verified = {key for key, sig in TRAINING_OPS.items() if sig.ort == "verified"}
    assert all(
        domain == MS for domain, _ in verified - {("", "MaxPoolGrad"), ("", "AveragePoolGrad")}
    )
