"""Gradients of every supported op: the training graph run in onnxruntime-training against
float64 central finite differences of the same forward function.

Tolerance: |analytic - numeric| <= 2e-5 + 2e-3 * |numeric| for the directional derivative
of the loss along one random unit direction per parameter (see train_oracle.check_gradients).
Each case builds a tiny inference graph at batch 2 and trains it at batch 3, so re-batching is
exercised everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


def _tokens(g: GraphMaker, channels: int = 4) -> str:
    """[N, tokens, channels] activations from the conv layer (a patch embedding)."""
    t = g.op("Reshape", [_conv_input(g, channels), g.const([0, channels, -1])])
    return g.op("Transpose", [t], perm=[0, 2, 1])


@case
def layer_norm_opset17() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 3, 3])
    t = g.op("LayerNormalization", [_tokens(g), g.param([4], 0.3, 1 + 0.2 * np.arange(4))])
    t = g.op("Mul", [t, t])  # a bias-less layer norm whose output is not already centred
    t = g.op(
        "LayerNormalization",
        [t, g.param([1, 9, 4], 0.5), g.param([36])],  # scale/bias reshaped to [9, 4]
        axis=-2,
        epsilon=1e-3,
    )
    return g.model(g.head(t, 36))


def _layer_norm_decomposed(g: GraphMaker, x: str, axes: list[int], weight: str) -> str:
    """F.layer_norm as the TorchScript exporter writes it below opset 17."""
    mean = g.op("ReduceMean", [x], axes=axes)
    d = g.op("Sub", [x, mean])
    var = g.op("ReduceMean", [g.op("Pow", [d, g.const(2.0, np.float32)])], axes=axes)
    std = g.op("Sqrt", [g.op("Add", [var, g.const(1e-5, np.float32)])])
    return g.op("Mul", [g.op("Div", [d, std]), weight])


@case
def layer_norm_decomposed_fused() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 3, 3])
    t = _layer_norm_decomposed(g, _tokens(g), [-1], g.param([4], 0.3, 1 + 0.2 * np.arange(4)))
    t = g.op("Add", [g.param([4]), t])
    return g.model(g.head(t, 36), opset=13)


@case
def layer_norm_decomposed_channels() -> onnx.ModelProto:
    """Over axis 1 of NCHW: not fused; ReduceMean, Sub, Pow, Sqrt and a Div by an activation
    each differentiated."""
    g = GraphMaker([2, 3, 3, 3])
    t = _layer_norm_decomposed(g, _conv_input(g), [1], g.param([4, 1, 1], 0.5))
    return g.model(g.head(t, 36), opset=13)


@case
def gelu_opset20() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 3, 3])
    t = g.op("Gelu", [_conv_input(g)])
    t = g.op("Conv", [t, g.param([4, 4, 1, 1])], kernel_shape=[1, 1])
    t = g.op("Gelu", [t], approximate="tanh")
    return g.model(g.head(t, 36), opset=20)


@case
def gelu_erf_forms() -> onnx.ModelProto:
    """The exporters' erf GELU in its three Mul orders (fused), and a standalone Erf."""
    g = GraphMaker([2, 3, 3, 3])
    t = _conv_input(g)
    half, one = g.const(0.5, np.float32), g.const(1.0, np.float32)
    for i in range(3):
        if i == 1:
            scaled = g.op("Mul", [g.const(float(np.sqrt(0.5)), np.float32), t])
        else:
            scaled = g.op("Div", [t, g.const(float(np.sqrt(2.0)), np.float32)])
        a = g.op("Add", [g.op("Erf", [scaled]), one])
        if i == 0:  # TorchScript: (x * a) * 0.5
            t = g.op("Mul", [g.op("Mul", [t, a]), half])
        elif i == 1:  # x * (0.5 * a)
            t = g.op("Mul", [t, g.op("Mul", [half, a])])
        else:  # (0.5 * x) * a
            t = g.op("Mul", [g.op("Mul", [half, t]), a])
        t = g.op("Conv", [t, g.param([4, 4, 1, 1])], kernel_shape=[1, 1])
    t = g.op("Erf", [g.op("Mul", [t, g.const(0.7, np.float32)])])
    return g.model(g.head(t, 36))


@case
def tanh_exp_reciprocal_sqrt() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 3, 3])
    t = g.op("Tanh", [_conv_input(g)])
    positive = g.op("Add", [g.op("Exp", [t]), g.const(0.5, np.float32)])
    t = g.op("Mul", [g.op("Reciprocal", [positive]), g.op("Sqrt", [positive])])
    return g.model(g.head(t, 36))


@case
def pow_constant_exponents() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 3, 3])
    c = _conv_input(g)
    cube = g.op("Pow", [c, g.const(3.0, np.float32)])
    positive = g.op("Add", [g.op("Pow", [c, g.const(2, np.int64)]), g.const(0.5, np.float32)])
    exponents = g.const(np.array([0.5, 1.5, -1.0, 2.0]).reshape(4, 1, 1), np.float32)
    t = g.op("Add", [cube, g.op("Pow", [positive, exponents])])
    return g.model(g.head(t, 36))


@case
def div_by_activations() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 3, 3])
    c = _conv_input(g)
    positive = g.op("Add", [g.op("Exp", [c]), g.const(1.0, np.float32)])
    pooled = g.op("ReduceMean", [positive], axes=[2, 3], keepdims=1)  # [N, 4, 1, 1]
    t = g.op("Div", [c, pooled])  # divisor broadcast: its gradient is summed
    t = g.op("Div", [g.param([4, 3, 3]), g.op("Add", [positive, t])])
    return g.model(g.head(t, 36))


@case
def reduce_sum_axes_input() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 3, 3])
    c = _conv_input(g)
    t = g.op("ReduceSum", [c, g.const([-1])], keepdims=0)
    s = g.op("ReduceSum", [c, g.const([1, 3])], keepdims=1)
    t = g.op("Concat", [g.op("Reshape", [t, g.const([0, -1])]), g.op("Flatten", [s])], axis=1)
    return g.model(g.op("Gemm", [t, g.param([15, 3])]))


@case
def expand_concat_gather() -> onnx.ModelProto:
    """ViT's class token (Expand over the batch, Concat, x[:, 0]) and Swin's relative
    position bias (a parameter table gathered by constant indices)."""
    g = GraphMaker(["N", 3, 3, 3])
    tokens = _tokens(g)  # [N, 9, 4]
    n = g.op("Gather", [g.op("Shape", ["x"]), g.const(0)], axis=0)
    shape = g.op("Concat", [g.op("Unsqueeze", [n, g.const([0])]), g.const([1, 4])], axis=0)
    cls = g.op("Expand", [g.param([1, 1, 4]), shape])
    t = g.op("Concat", [cls, tokens], axis=1)  # [N, 10, 4]
    index = np.array([[3, 0, 1], [4, 3, 3], [-1, 2, 0]])  # repeated and negative indices
    bias = g.op("Gather", [g.param([5, 4]), g.const(index)], axis=0)  # [3, 3, 4]
    bias = g.op("Reshape", [bias, g.const([1, 9, 4])])
    t = g.op("Add", [g.op("Slice", [t, g.const([1]), g.const([10]), g.const([1])]), bias])
    first = g.op("Gather", [t, g.const(0)], axis=1)  # [N, 4]
    last = g.op("Gather", [t, g.const([-1, 2])], axis=-2)  # [N, 2, 4]
    t = g.op("Concat", [first, g.op("Flatten", [last])], axis=1)
    return g.model(g.op("Gemm", [t, g.param([12, 3])]))


def _attention(g: GraphMaker, x: str, heads: int, dim: int, tokens: int) -> str:
    """Multi-head self-attention as the exporters write it: batched MatMuls of activations."""
    qkv = g.op("MatMul", [x, g.param([dim, 3 * dim], 0.5)])
    qkv = g.op("Reshape", [qkv, g.const([0, tokens, 3, heads, dim // heads])])
    qkv = g.op("Transpose", [qkv], perm=[2, 0, 3, 1, 4])  # [3, N, heads, T, d]
    q, k, v = (g.op("Gather", [qkv, g.const(i)], axis=0) for i in range(3))
    scale = g.const(float((dim // heads) ** -0.5), np.float32)
    scores = g.op("MatMul", [g.op("Mul", [q, scale]), g.op("Transpose", [k], perm=[0, 1, 3, 2])])
    t = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])  # [N, heads, T, d]
    t = g.op("Reshape", [g.op("Transpose", [t], perm=[0, 2, 1, 3]), g.const([0, tokens, dim])])
    return g.op("MatMul", [t, g.param([dim, dim], 0.5)])


@case
def attention_batched_matmul() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 3, 3])
    t = _attention(g, _tokens(g), heads=2, dim=4, tokens=9)
    return g.model(g.head(t, 36))


@case
def einsum_attention() -> onnx.ModelProto:
    """MaxViT's einsum (spaces and all), one with grouped and summed-alone indices."""
    g = GraphMaker([2, 3, 2, 2])
    t = g.op("Reshape", [_conv_input(g, 8), g.const([0, 2, 4, 4])])  # [N, G, I, D]
    q = g.op("Mul", [t, g.const(0.5, np.float32)])
    scores = g.op("Einsum", [q, t], equation="B G I D, B G J D -> B G I J")
    attn = g.op("Softmax", [scores], axis=-1)
    t = g.op("Einsum", [attn, t], equation="bgij,bgjd->bgid")
    t = g.op("Einsum", [t, g.param([3, 4, 5, 2])], equation="bgid,kdeg->beik")  # sums k alone
    return g.model(g.head(t, 5 * 4 * 3))


@case
def gather_nd_tables() -> onnx.ModelProto:
    """dynamo's table[index]: GatherND of a parameter by constant indices (1 and 2 parts)."""
    g = GraphMaker([2, 3, 3, 3])
    t = _conv_input(g)  # [N, 4, 3, 3]
    one = g.op("GatherND", [g.param([5, 3]), g.const([[4], [0], [4], [-2]])])  # [4, 3]
    two = g.op("GatherND", [g.param([2, 3, 3]), g.const([[1, 2], [0, 0], [1, -1]])])  # [3, 3]
    t = g.op("Add", [t, g.op("Reshape", [one, g.const([4, 1, 3])])])
    t = g.op("Add", [t, two])
    return g.model(g.head(t, 36))


@case
def cosine_attention_reduce_l2() -> onnx.ModelProto:
    """Swin v2: F.normalize (ReduceL2, Clip, Expand, Div), a clamped exp logit scale, and a
    qkv bias with its middle third zeroed by ScatterND."""
    g = GraphMaker([2, 3, 2, 2])
    bias = g.op(
        "ScatterND",
        [g.param([12]), g.const([[4], [5], [6], [7]]), g.const(np.zeros(4), np.float32)],
    )
    t = g.op(
        "Add",
        [
            g.op("Reshape", [_conv_input(g, 12), g.const([0, 12, 4])]),
            g.op("Reshape", [bias, g.const([12, 1])]),
        ],
    )
    norm = g.op("ReduceL2", [t], axes=[-1], keepdims=1)
    norm = g.op("Expand", [g.op("Clip", [norm, g.const(1e-6, np.float32)]), g.const([2, 12, 4])])
    t = g.op("Div", [t, norm])
    scale = g.op("Exp", [g.op("Clip", [g.param([12, 1]), "", g.const(np.log(100.0), np.float32)])])
    return g.model(g.head(g.op("Mul", [t, scale]), 48), opset=17)


@case
def static_batch_constants() -> onnx.ModelProto:
    """A static export at batch 2 trained at batch 3: batch-carrying constants written as
    literals (attention's [T, N*heads, d] Reshape, a [N*heads, 1, 1] Expand, dynamo's
    as_strided Gather on the flattened batch, stochastic-depth noise of shape [N, 1, 1])."""
    g = GraphMaker([2, 3, 2, 2])
    t = g.op("Reshape", [_conv_input(g, 8), g.const([2, 16, 2])])  # [N, T, C]
    t = g.op("Transpose", [t], perm=[1, 0, 2])  # [T, N, C]
    t = g.op("Reshape", [t, g.const([16, 4, 1])])  # [T, N*heads, d] with 2 heads
    t = g.op("Transpose", [t], perm=[1, 0, 2])  # [N*heads, T, d]
    t = g.op("Mul", [t, g.op("Expand", [g.param([1, 1, 1]), g.const([4, 1, 1])])])
    flat = g.op("Reshape", [t, g.const([-1])])
    t = g.op("Gather", [flat, g.const(np.arange(64).reshape(2, 2, 16))], axis=0)  # as_strided
    uniform = g.op("RandomUniformLike", [g.const(np.zeros((2, 1, 1)), np.float32)])
    noise = g.op("Less", [uniform, g.const(0.9, np.float32)])
    t = g.op("Mul", [t, g.op("Cast", [noise], to=1)])
    return g.model(g.op("Gemm", [g.op("Reshape", [t, g.const([2, 32])]), g.param([32, 3])]))


MATMUL_SHAPES = [
    ([2, 3, 4], [2, 4, 5]),  # equal batch dims
    ([2, 1, 3, 4], [3, 4, 5]),  # B broadcast over N, A over its axis 1
    ([3, 4], [2, 3, 4, 5]),  # a 2-D A broadcast over B's batch
    ([2, 3, 4], [1, 4, 2]),  # a size-1 batch axis of B
]


def _matmul_case(a: list[int], b: list[int]) -> onnx.ModelProto:
    """MatMul of two activations of shapes ``a`` and ``b`` (leading dim the batch where the
    shape is longer than 2), both computed from parameters."""
    g = GraphMaker([2, 3, 2, 2])
    flat = g.op("Flatten", [_conv_input(g)])  # [N, 16]
    ends = []
    for shape in (a, b):
        size = int(np.prod(shape[1:])) if len(shape) > 2 else int(np.prod(shape))
        if len(shape) > 2:
            t = g.op("Gemm", [flat, g.param([16, size], 0.3)])
            ends.append(g.op("Reshape", [t, g.const([0, *shape[1:]])]))
        else:
            ends.append(g.op("Tanh", [g.param(shape, 0.8)]))
    t = g.op("MatMul", ends)
    out = np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))[1:]
    return g.model(g.head(t, int(np.prod([*out, a[-2], b[-1]]))))


@case
def pad_constant_and_reflect() -> onnx.ModelProto:
    g = GraphMaker([2, 3, 4, 4])
    x = g.op("Pad", ["x", g.const([0, 0, 1, 1, 0, 0, 1, 0])], mode="reflect")  # data: no grad
    t = g.op("Conv", [x, g.param([4, 3, 3, 3])], kernel_shape=[3, 3])  # [N, 4, 3, 3]
    t = g.op("Pad", [t, g.const([0, 0, 2, 0, 0, 1, 0, 1]), g.const(0.5, np.float32)])
    t = g.op("Pad", [t, g.const([-1, 1, 0, -2]), g.const(0.0, np.float32), g.const([2, -1])])
    return g.model(g.head(t, 5 * 5 * 3), opset=18)


@case
def stochastic_depth() -> onnx.ModelProto:
    """torchvision's StochasticDepth in a training-mode export: noise [N, 1, 1, 1] from
    RandomUniformLike (TorchScript) or Bernoulli, compared, cast, scaled, multiplied."""
    g = GraphMaker(["N", 3, 3, 3])
    c = _conv_input(g)
    shape = g.op(
        "Concat",
        [g.op("Slice", [g.op("Shape", [c]), g.const([0]), g.const([1])]), g.const([1, 1, 1])],
        axis=0,
    )
    empty = g.op("ConstantOfShape", [shape])
    keep = g.op("Less", [g.op("RandomUniformLike", [empty], dtype=1), g.const(0.8, np.float32)])
    noise = g.op("Div", [g.op("Cast", [keep], to=1), g.const(0.8, np.float32)])
    t = g.op("Add", [c, g.op("Mul", [c, noise])])
    probabilities = g.op("Add", [empty, g.const(0.7, np.float32)])
    noise = g.op("CastLike", [g.op("Bernoulli", [probabilities]), c])
    t = g.op("Add", [t, g.op("Mul", [noise, g.op("Cast", [t], to=1)])])
    return g.model(g.head(t, 36))


@pytest.mark.oracle
@oracle
@pytest.mark.parametrize(("a", "b"), MATMUL_SHAPES)
def test_batched_matmul_broadcasting(a: list[int], b: list[int]) -> None:
    model = build_training_model(_matmul_case(a, b), TrainOptions(batch=3), source="mm.onnx")
    assert check_gradients(model, feeds_for(model, seed=4))


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


def _activation(g: GraphMaker, shape: list[int]) -> str:
    """An activation of ``shape`` ([N, ...] when it has a leading -1) computed from
    parameters, so that a gradient flows into whatever reads it."""
    flat = g.op("Flatten", [_conv_input(g)])  # [N, 16] for a 2x2 image
    if shape[0] == -1:
        t = g.op("Gemm", [flat, g.param([16, int(np.prod(shape[1:]))], 0.3)])
        return g.op("Reshape", [t, g.const([0, *shape[1:]])])
    return g.op("Tanh", [g.param(shape, 0.8)])


def _check(model: onnx.ModelProto) -> None:
    train = build_training_model(model, TrainOptions(batch=3), source="case.onnx")
    assert check_gradients(train, feeds_for(train, seed=5))


@pytest.mark.oracle
@oracle
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([-1, 4, 3], [-1, 4, 3]),
        ([-1, 4, 3], [1, 3]),  # divisor broadcast over N and an axis
        ([-1, 1, 3], [-1, 4, 1]),  # both broadcast
        ([3], [-1, 4, 3]),  # dividend broadcast
    ],
)
def test_div_gradients_broadcasting(a: list[int], b: list[int]) -> None:
    g = GraphMaker([2, 3, 2, 2])
    divisor = g.op("Add", [g.op("Exp", [_activation(g, b)]), g.const(0.5, np.float32)])
    t = g.op("Div", [_activation(g, a), divisor])
    batched = [[7 if d == -1 else d for d in s] for s in (a, b)]  # 7 stands for N
    out = np.broadcast_shapes(*(tuple(s) for s in batched))[1:]
    _check(g.model(g.head(t, int(np.prod(out)))))


@pytest.mark.oracle
@oracle
@pytest.mark.parametrize(
    ("axis", "indices"),
    [(1, [[0, 3], [3, 3]]), (2, 2), (-1, [1, 0, 1]), (3, [[[-1]]])],
)
def test_gather_gradients(axis: int, indices: int | list[Any]) -> None:
    g = GraphMaker([2, 3, 2, 2])
    x = _activation(g, [-1, 4, 3, 2])
    t = g.op("Gather", [x, g.const(indices)], axis=axis)
    shape = [3, 4, 3, 2]
    rank = len(shape)
    out = [*shape[: axis % rank], *np.shape(indices), *shape[axis % rank + 1 :]]
    _check(g.model(g.head(t, int(np.prod(out[1:])))))


@pytest.mark.oracle
@oracle
@pytest.mark.parametrize(
    "pads",
    [
        [0, 0, 1, 2, 0, 0, 0, 1],
        [0, 0, -1, 0, 0, 0, 2, -1],  # crops and pads on one axis
        [0, 1, 0, 0, 0, 0, 0, 0],  # a channel of padding
    ],
)
def test_pad_gradients(pads: list[int]) -> None:
    g = GraphMaker([2, 3, 2, 2])
    t = g.op("Pad", [_activation(g, [-1, 4, 3, 3]), g.const(pads), g.const(0.3, np.float32)])
    out = [4 + pads[1] + pads[5], 3 + pads[2] + pads[6], 3 + pads[3] + pads[7]]
    _check(g.model(g.head(t, int(np.prod(out)))))


@pytest.mark.oracle
@oracle
@pytest.mark.parametrize("axis", [1, 2, -1])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm_gradients(axis: int, bias: bool) -> None:
    g = GraphMaker([2, 3, 2, 2])
    shape = [4, 3, 3][axis % 4 - 1 :]
    inputs = [_activation(g, [-1, 4, 3, 3]), g.param(shape, 0.3, 1 + 0.3 * np.ones(shape))]
    if bias:
        inputs.append(g.param(shape))
    t = g.op("LayerNormalization", inputs, axis=axis, epsilon=1e-4)
    _check(g.model(g.head(g.op("Mul", [t, t]), 36)))
