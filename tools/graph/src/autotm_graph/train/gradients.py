"""Gradient builders, one small function per forward op.

Each builder mirrors onnxruntime-training's gradient builder for the op
(orttraining/core/graph/gradient_builder.cc): same backward op names, domains and input
orders, so the training graph runs in onnxruntime. Where onnxruntime uses ``Shape`` or
``Size`` to compute a shape at run time, the builders write the static shape as a constant
(shapes are fixed at ``--batch``); where it uses its ``Scale`` op, they use ``Mul`` by a
constant. The ops each forward op may emit are listed in :mod:`autotm_graph.opset`; a test
checks the two agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from autotm_schemas import BadInputError
from onnx import numpy_helper

from ..opset import MS
from .autodiff import Builder, GradContext

BUILDERS: dict[str, Builder] = {}


def builder(*ops: str) -> Callable[[Builder], Builder]:
    def register(fn: Builder) -> Builder:
        for op in ops:
            BUILDERS[op] = fn
        return fn

    return register


def reduce_to(ctx: GradContext, grad: str, shape: Sequence[int], out: str) -> None:
    """Sum a broadcast gradient back to ``shape`` into ``out`` (ReduceSum, then Reshape)."""
    have = ctx.shape(grad)
    lead = len(have) - len(shape)
    inner = [lead + i for i, d in enumerate(shape) if d == 1 and have[lead + i] != 1]
    if not inner:
        axes = list(range(lead))
        ctx.emit(
            "ReduceSum", [grad, ctx.const(np.array(axes, np.int64), "axes")], [out], keepdims=0
        )
        return
    axes = [*range(lead), *inner]
    kept = ctx.tmp("reduced", [1 if i in axes else d for i, d in enumerate(have)])
    ctx.emit("ReduceSum", [grad, ctx.const(np.array(axes, np.int64), "axes")], [kept], keepdims=1)
    ctx.emit("Reshape", [kept, ctx.const(np.array(shape, np.int64), "shape")], [out])


def give_reduced(ctx: GradContext, i: int, grad: str) -> None:
    """Give ``grad`` to input ``i``, summed over the axes the forward op broadcast."""
    target = ctx.shape(ctx.x(i))
    if tuple(ctx.shape(grad)) == tuple(target):
        ctx.give(i, grad)
    else:
        reduce_to(ctx, grad, target, ctx.grad_for(i))


def _dy(ctx: GradContext) -> str:
    dy = ctx.dy(0)
    assert dy is not None
    return dy


# --- convolution, pooling, normalisation ---------------------------------------------------
@builder("Conv")
def conv(ctx: GradContext) -> None:
    outs = [ctx.grad_for(i) if ctx.needs(i) else "" for i in range(len(ctx.node.input))]
    while len(outs) < 3:
        outs.append("")
    while outs and not outs[-1]:
        outs.pop()
    attrs = {k: ctx.attrs[k] for k in ("dilations", "group", "kernel_shape", "pads", "strides")}
    ctx.emit("ConvGrad", [_dy(ctx), ctx.x(0), ctx.x(1)], outs, domain=MS, **attrs)


@builder("MaxPool")
def max_pool(ctx: GradContext) -> None:
    keys = ("ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides")
    attrs = {k: ctx.attrs[k] for k in keys}
    ctx.emit("MaxPoolGrad", [_dy(ctx), ctx.y(1)], [ctx.grad_for(0)], **attrs)


@builder("AveragePool")
def average_pool(ctx: GradContext) -> None:
    keys = ("ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides")
    attrs = {k: ctx.attrs[k] for k in keys}
    ctx.emit("AveragePoolGrad", [_dy(ctx)], [ctx.grad_for(0)], **attrs)


@builder("GlobalAveragePool")
def global_average_pool(ctx: GradContext) -> None:
    shape = ctx.shape(ctx.x(0))
    scale = ctx.const(np.array(1.0 / int(np.prod(shape[2:])), np.float32), "scale")
    scaled = ctx.tmp("scaled_dY", ctx.shape(_dy(ctx)))
    ctx.emit("Mul", [_dy(ctx), scale], [scaled])
    ctx.emit("Expand", [scaled, ctx.const(np.array(shape, np.int64), "x_shape")], [ctx.grad_for(0)])


@builder(f"{MS}:BatchNormInternal")
def batch_norm(ctx: GradContext) -> None:
    outs = [
        ctx.grad_for(i) if ctx.needs(i) else ctx.tmp(f"unused_grad{i}", ctx.shape(ctx.x(i)))
        for i in range(3)
    ]
    ctx.emit(
        "BatchNormalizationGrad",
        [_dy(ctx), ctx.x(0), ctx.x(1), ctx.y(3), ctx.y(4)],
        outs,
        domain=MS,
        epsilon=float(ctx.attrs["epsilon"]),
    )


@builder("LayerNormalization")
def layer_norm(ctx: GradContext) -> None:
    outs = [
        ctx.grad_for(i) if ctx.needs(i) else ctx.tmp(f"unused_grad{i}", ctx.shape(ctx.x(min(i, 1))))
        for i in range(3)
    ]
    ctx.emit(
        "LayerNormalizationGrad",
        [_dy(ctx), ctx.x(0), ctx.x(1), ctx.y(1), ctx.y(2)],
        outs,
        domain=MS,
        axis=int(ctx.attrs["axis"]),
    )


# --- activations ---------------------------------------------------------------------------
@builder("Relu")
def relu(ctx: GradContext) -> None:
    ctx.emit("ReluGrad", [_dy(ctx), ctx.y(0)], [ctx.grad_for(0)], domain=MS)


@builder("Sigmoid")
def sigmoid(ctx: GradContext) -> None:
    ctx.emit("SigmoidGrad", [_dy(ctx), ctx.y(0)], [ctx.grad_for(0)], domain=MS)


@builder("Tanh")
def tanh(ctx: GradContext) -> None:
    ctx.emit("TanhGrad", [_dy(ctx), ctx.y(0)], [ctx.grad_for(0)], domain=MS)


@builder(f"{MS}:Gelu")
def gelu(ctx: GradContext) -> None:
    ctx.emit("GeluGrad", [_dy(ctx), ctx.x(0)], [ctx.grad_for(0)], domain=MS)


@builder("Softmax")
def softmax(ctx: GradContext) -> None:
    axis = int(ctx.attrs.get("axis", -1))
    ctx.emit("SoftmaxGrad_13", [_dy(ctx), ctx.y(0)], [ctx.grad_for(0)], domain=MS, axis=axis)


@builder("LogSoftmax")
def log_softmax(ctx: GradContext) -> None:
    axis = int(ctx.attrs.get("axis", -1))
    ctx.emit("LogSoftmaxGrad_13", [_dy(ctx), ctx.y(0)], [ctx.grad_for(0)], domain=MS, axis=axis)


def _mask_mul(ctx: GradContext, masks: list[str], scale: float | None) -> None:
    """dX = dY * Cast(And(masks)) [* scale]: the pass-through gradient of a clamp."""
    shape = ctx.shape(ctx.x(0))
    mask = masks[0]
    if len(masks) == 2:
        mask = ctx.tmp("mask", shape, np.bool_)
        ctx.emit("And", masks, [mask])
    gate = ctx.tmp("mask_float", shape)
    ctx.emit("Cast", [mask], [gate], to=1)
    if scale is not None:
        scaled = ctx.tmp("mask_scaled", shape)
        ctx.emit("Mul", [gate, ctx.const(np.array(scale, np.float32), "alpha")], [scaled])
        gate = scaled
    ctx.emit("Mul", [_dy(ctx), gate], [ctx.grad_for(0)])


@builder("Clip")
def clip(ctx: GradContext) -> None:
    shape = ctx.shape(ctx.x(0))
    masks = []
    for i, op in ((1, "GreaterOrEqual"), (2, "LessOrEqual")):
        if ctx.x(i):
            masks.append(ctx.tmp("masked_min" if i == 1 else "masked_max", shape, np.bool_))
            ctx.emit(op, [ctx.x(0), ctx.x(i)], [masks[-1]])
    if not masks:
        ctx.give(0, _dy(ctx))
        return
    _mask_mul(ctx, masks, None)


@builder("HardSigmoid")
def hard_sigmoid(ctx: GradContext) -> None:
    shape = ctx.shape(ctx.x(0))
    zero = ctx.const(np.array(0.0, np.float32), "zero")
    one = ctx.const(np.array(1.0, np.float32), "one")
    above, below = ctx.tmp("above", shape, np.bool_), ctx.tmp("below", shape, np.bool_)
    ctx.emit("Greater", [ctx.y(0), zero], [above])
    ctx.emit("Less", [ctx.y(0), one], [below])
    _mask_mul(ctx, [above, below], float(ctx.attrs.get("alpha", 0.2)))


@builder("Dropout")
def dropout(ctx: GradContext) -> None:
    ctx.emit("DropoutGrad", [_dy(ctx), ctx.y(1), ctx.x(1), ctx.x(2)], [ctx.grad_for(0)], domain=MS)


# --- dense algebra -------------------------------------------------------------------------
@builder("Gemm")
def gemm(ctx: GradContext) -> None:
    alpha = float(ctx.attrs.get("alpha", 1.0))
    beta = float(ctx.attrs.get("beta", 1.0))
    ta, tb = int(ctx.attrs.get("transA", 0)), int(ctx.attrs.get("transB", 0))
    a, b, dy = ctx.x(0), ctx.x(1), _dy(ctx)
    # Y = alpha * op(A) op(B): each gradient is one Gemm, as onnxruntime writes them
    if ctx.needs(0):
        if ta:  # dA = alpha * op(B) dY^T, transposed as needed
            _gemm(ctx, [b, dy], ctx.grad_for(0), alpha, tb, 1)
        else:  # dA = alpha * dY op(B)^T
            _gemm(ctx, [dy, b], ctx.grad_for(0), alpha, 0, 0 if tb else 1)
    if ctx.needs(1):
        if tb:  # dB = alpha * dY^T op(A)
            _gemm(ctx, [dy, a], ctx.grad_for(1), alpha, 1, ta)
        else:  # dB = alpha * op(A)^T dY
            _gemm(ctx, [a, dy], ctx.grad_for(1), alpha, 0 if ta else 1, 0)
    if ctx.needs(2):
        grad = dy
        if beta != 1.0:
            grad = ctx.tmp("dC_scaled", ctx.shape(dy))
            ctx.emit("Mul", [dy, ctx.const(np.array(beta, np.float32), "beta")], [grad])
        give_reduced(ctx, 2, grad)


def _gemm(ctx: GradContext, args: list[str], out: str, alpha: float, ta: int, tb: int) -> None:
    attrs: dict[str, Any] = {"beta": 0.0}
    if alpha != 1.0:
        attrs["alpha"] = alpha
    if ta:
        attrs["transA"] = 1
    if tb:
        attrs["transB"] = 1
    ctx.emit("Gemm", args, [out], **attrs)


@builder("MatMul")
def matmul(ctx: GradContext) -> None:
    a, b, dy = ctx.x(0), ctx.x(1), _dy(ctx)
    sa, sb = ctx.shape(a), ctx.shape(b)
    if len(sa) < 2 or len(sb) < 2:
        raise BadInputError(
            f"{ctx.g.where(ctx.node)}: expected MatMul operands of rank 2 or more, "
            f"got shapes {list(sa)} and {list(sb)}"
        )
    if len(sb) == 2:
        _matmul_by_matrix(ctx, a, b, dy)
        return
    # batched: dA = dY B^T and dB = A^T dY (transposing the last two axes), each summed over
    # the batch axes its operand was broadcast along
    batch = tuple(np.broadcast_shapes(sa[:-2], sb[:-2]))
    m, k, n = sa[-2], sa[-1], sb[-1]
    if ctx.needs(0):
        bt = _swap_last(ctx, b, "B_transposed")
        _matmul_reduced(ctx, [dy, bt], (*batch, m, k), 0)
    if ctx.needs(1):
        at = _swap_last(ctx, a, "A_transposed")
        _matmul_reduced(ctx, [at, dy], (*batch, k, n), 1)


def _swap_last(ctx: GradContext, name: str, hint: str) -> str:
    shape = ctx.shape(name)
    rank = len(shape)
    out = ctx.tmp(hint, (*shape[:-2], shape[-1], shape[-2]))
    ctx.emit("Transpose", [name], [out], perm=[*range(rank - 2), rank - 1, rank - 2])
    return out


def _matmul_reduced(ctx: GradContext, args: list[str], full: tuple[int, ...], i: int) -> None:
    if full == tuple(ctx.shape(ctx.x(i))):
        ctx.emit("MatMul", args, [ctx.grad_for(i)])
        return
    pre = ctx.tmp(f"pre_reduce_grad{i}", full)
    ctx.emit("MatMul", args, [pre])
    reduce_to(ctx, pre, ctx.shape(ctx.x(i)), ctx.grad_for(i))


def _matmul_by_matrix(ctx: GradContext, a: str, b: str, dy: str) -> None:
    """MatMul of an N-D input by a 2-D matrix (a weight): Gemm over the flattened rows."""
    sa = ctx.shape(a)
    k, n = ctx.shape(b)
    if ctx.needs(0):
        if len(sa) == 2:
            ctx.emit("Gemm", [dy, b], [ctx.grad_for(0)], beta=0.0, transB=1)
        else:
            bt = ctx.tmp("B_transposed", [n, k])
            ctx.emit("Transpose", [b], [bt], perm=[1, 0])
            ctx.emit("MatMul", [dy, bt], [ctx.grad_for(0)])
    if ctx.needs(1):
        if len(sa) == 2:
            ctx.emit("Gemm", [a, dy], [ctx.grad_for(1)], beta=0.0, transA=1)
        else:
            rows = int(np.prod(sa[:-1]))
            a2, dy2 = ctx.tmp("A_2d", [rows, k]), ctx.tmp("dY_2d", [rows, n])
            ctx.emit("Reshape", [a, ctx.const(np.array([rows, k], np.int64), "A_2d_shape")], [a2])
            ctx.emit(
                "Reshape", [dy, ctx.const(np.array([rows, n], np.int64), "dY_2d_shape")], [dy2]
            )
            ctx.emit("Gemm", [a2, dy2], [ctx.grad_for(1)], beta=0.0, transA=1)


# --- elementwise arithmetic ----------------------------------------------------------------
@builder("Add")
def add(ctx: GradContext) -> None:
    for i in (0, 1):
        if ctx.needs(i):
            give_reduced(ctx, i, _dy(ctx))


@builder("Sub")
def sub(ctx: GradContext) -> None:
    if ctx.needs(0):
        give_reduced(ctx, 0, _dy(ctx))
    if ctx.needs(1):
        shape = ctx.shape(ctx.x(1))
        reduced = _dy(ctx)
        if tuple(ctx.shape(reduced)) != tuple(shape):
            reduced = ctx.tmp("dB_reduced", shape)
            reduce_to(ctx, _dy(ctx), shape, reduced)
        ctx.emit("Neg", [reduced], [ctx.grad_for(1)])


@builder("Mul")
def mul(ctx: GradContext) -> None:
    for i in (0, 1):
        if ctx.needs(i):
            other = ctx.x(1 - i)
            full = ctx.shape(_dy(ctx))
            if tuple(full) == tuple(ctx.shape(ctx.x(i))):
                ctx.emit("Mul", [_dy(ctx), other], [ctx.grad_for(i)])
            else:
                pre = ctx.tmp(f"pre_reduce_grad{i}", full)
                ctx.emit("Mul", [_dy(ctx), other], [pre])
                reduce_to(ctx, pre, ctx.shape(ctx.x(i)), ctx.grad_for(i))


@builder("Div")
def div(ctx: GradContext) -> None:
    full = ctx.shape(_dy(ctx))
    if ctx.needs(0):
        _elementwise_grad(ctx, 0, "Div", [_dy(ctx), ctx.x(1)])
    if ctx.needs(1):  # dB = -dY * Y / B, as onnxruntime
        ratio = ctx.tmp("Y_over_B", full)
        ctx.emit("Div", [ctx.y(0), ctx.x(1)], [ratio])
        shape = ctx.shape(ctx.x(1))
        product = ctx.tmp("dY_Y_over_B", full)
        ctx.emit("Mul", [_dy(ctx), ratio], [product])
        if tuple(full) != tuple(shape):
            reduced = ctx.tmp("dB_reduced", shape)
            reduce_to(ctx, product, shape, reduced)
            product = reduced
        ctx.emit("Neg", [product], [ctx.grad_for(1)])


def _elementwise_grad(ctx: GradContext, i: int, op: str, args: list[str]) -> None:
    """Input i's gradient ``op(args)`` at the output's shape, reduced to input i's shape."""
    full = ctx.shape(_dy(ctx))
    if tuple(full) == tuple(ctx.shape(ctx.x(i))):
        ctx.emit(op, args, [ctx.grad_for(i)])
    else:
        pre = ctx.tmp(f"pre_reduce_grad{i}", full)
        ctx.emit(op, args, [pre])
        reduce_to(ctx, pre, ctx.shape(ctx.x(i)), ctx.grad_for(i))


@builder("Pow")
def pow_(ctx: GradContext) -> None:
    exponent = ctx.g.consts.get(ctx.x(1))
    if exponent is None:
        raise BadInputError(
            f"{ctx.g.where(ctx.node)}: expected a constant exponent on a gradient path"
        )
    p = exponent.astype(np.float64)
    full = ctx.shape(_dy(ctx))
    x = ctx.x(0)
    slope = ctx.tmp("slope", full)
    if p.size == 1 and float(p.reshape(-1)[0]) == 2.0:  # dX = dY * 2X
        ctx.emit("Mul", [x, ctx.const(np.array(2.0, np.float32), "two")], [slope])
    else:  # dX = dY * p * X^(p-1)
        power = ctx.tmp("X_pow_p_minus_1", full)
        ctx.emit("Pow", [x, ctx.const((p - 1).astype(np.float32), "p_minus_1")], [power])
        ctx.emit("Mul", [power, ctx.const(p.astype(np.float32), "p")], [slope])
    _elementwise_grad(ctx, 0, "Mul", [_dy(ctx), slope])


@builder("Sqrt")
def sqrt(ctx: GradContext) -> None:  # dX = dY / Y * 0.5
    shape = ctx.shape(ctx.x(0))
    ratio = ctx.tmp("dY_over_Y", shape)
    ctx.emit("Div", [_dy(ctx), ctx.y(0)], [ratio])
    half = ctx.const(np.array(0.5, np.float32), "half")
    ctx.emit("Mul", [ratio, half], [ctx.grad_for(0)])


@builder("Reciprocal")
def reciprocal(ctx: GradContext) -> None:  # dX = -dY * Y * Y
    shape = ctx.shape(ctx.x(0))
    square, product = ctx.tmp("Y_squared", shape), ctx.tmp("dY_Y_squared", shape)
    ctx.emit("Mul", [ctx.y(0), ctx.y(0)], [square])
    ctx.emit("Mul", [_dy(ctx), square], [product])
    ctx.emit("Neg", [product], [ctx.grad_for(0)])


@builder("Exp")
def exp(ctx: GradContext) -> None:
    ctx.emit("Mul", [_dy(ctx), ctx.y(0)], [ctx.grad_for(0)])


@builder("Erf")
def erf(ctx: GradContext) -> None:  # dX = dY * 2/sqrt(pi) * exp(-X*X)
    shape = ctx.shape(ctx.x(0))
    square, negated = ctx.tmp("X_squared", shape), ctx.tmp("minus_X_squared", shape)
    density, slope = ctx.tmp("exp_minus_X_squared", shape), ctx.tmp("slope", shape)
    ctx.emit("Mul", [ctx.x(0), ctx.x(0)], [square])
    ctx.emit("Neg", [square], [negated])
    ctx.emit("Exp", [negated], [density])
    scale = ctx.const(np.array(2.0 / np.sqrt(np.pi), np.float32), "two_over_sqrt_pi")
    ctx.emit("Mul", [density, scale], [slope])
    ctx.emit("Mul", [_dy(ctx), slope], [ctx.grad_for(0)])


@builder("Neg")
def neg(ctx: GradContext) -> None:
    ctx.emit("Neg", [_dy(ctx)], [ctx.grad_for(0)])


@builder("ReduceMean", "ReduceSum")
def reduce(ctx: GradContext) -> None:
    """dX = Expand(dY (with the reduced axes kept) [/ n for the mean], shape(X))."""
    shape = ctx.shape(ctx.x(0))
    summed = ctx.node.op_type == "ReduceSum"
    raw = ctx.g.consts[ctx.x(1)] if summed else np.array(ctx.attrs["axes"])
    axes = [int(a) % len(shape) for a in raw.reshape(-1)]
    grad = _dy(ctx)
    kept = [1 if i in axes else d for i, d in enumerate(shape)]
    if not int(ctx.attrs.get("keepdims", 1)):
        unsqueezed = ctx.tmp("unsqueezed_dY", kept)
        ctx.emit("Reshape", [grad, ctx.const(np.array(kept, np.int64), "kept_shape")], [unsqueezed])
        grad = unsqueezed
    if not summed:
        count = int(np.prod([shape[a] for a in axes]))
        scaled = ctx.tmp("scaled_dY", kept)
        ctx.emit("Mul", [grad, ctx.const(np.array(1.0 / count, np.float32), "scale")], [scaled])
        grad = scaled
    ctx.emit("Expand", [grad, ctx.const(np.array(shape, np.int64), "x_shape")], [ctx.grad_for(0)])


# --- data movement -------------------------------------------------------------------------
@builder("Flatten", "Reshape", "Squeeze", "Unsqueeze")
def reshape(ctx: GradContext) -> None:
    shape = ctx.const(np.array(ctx.shape(ctx.x(0)), np.int64), "x_shape")
    ctx.emit("Reshape", [_dy(ctx), shape], [ctx.grad_for(0)])


@builder("Transpose")
def transpose(ctx: GradContext) -> None:
    rank = len(ctx.shape(ctx.x(0)))
    perm = list(ctx.attrs.get("perm", list(range(rank))[::-1]))
    inverse = [0] * rank
    for i, p in enumerate(perm):
        inverse[p] = i
    ctx.emit("Transpose", [_dy(ctx)], [ctx.grad_for(0)], perm=inverse)


@builder("Concat")
def concat(ctx: GradContext) -> None:
    rank = len(ctx.shape(ctx.x(0)))
    axis = int(ctx.attrs["axis"]) % rank
    sizes = [ctx.shape(x)[axis] for x in ctx.node.input]
    outs = [
        ctx.grad_for(i) if ctx.needs(i) else ctx.tmp(f"unused_grad{i}", ctx.shape(x))
        for i, x in enumerate(ctx.node.input)
    ]
    split = ctx.const(np.array(sizes, np.int64), "split")
    ctx.emit("Split", [_dy(ctx), split], outs, axis=axis)


@builder("Split")
def split(ctx: GradContext) -> None:
    parts = []
    for i, out in enumerate(ctx.node.output):
        dy = ctx.dy(i)
        if dy is None:
            shape = ctx.const(np.array(ctx.shape(out), np.int64), f"zeros{i}_shape")
            dy = ctx.tmp(f"zeros{i}", ctx.shape(out))
            ctx.emit("ConstantOfShape", [shape], [dy], value=_scalar_tensor(0.0))
        parts.append(dy)
    ctx.emit("Concat", parts, [ctx.grad_for(0)], axis=int(ctx.attrs["axis"]))


@builder("Slice")
def slice_(ctx: GradContext) -> None:
    shape = ctx.const(np.array(ctx.shape(ctx.x(0)), np.int64), "x_shape")
    inputs = [_dy(ctx), shape, *ctx.node.input[1:]]
    ctx.emit("SliceGrad", inputs, [ctx.grad_for(0)], domain=MS)


@builder("Gather")
def gather(ctx: GradContext) -> None:
    shape = ctx.const(np.array(ctx.shape(ctx.x(0)), np.int64), "x_shape")
    axis = int(ctx.attrs.get("axis", 0))
    ctx.emit("GatherGrad", [shape, ctx.x(1), _dy(ctx)], [ctx.grad_for(0)], domain=MS, axis=axis)


@builder("Expand")
def expand(ctx: GradContext) -> None:
    give_reduced(ctx, 0, _dy(ctx))


@builder("Pad")
def pad(ctx: GradContext) -> None:
    """dX = the region of dY that X landed in (Slice), zero-padded where the Pad cropped."""
    mode = str(ctx.attrs.get("mode", "constant"))
    if mode != "constant":
        raise BadInputError(
            f"{ctx.g.where(ctx.node)}: Pad mode {mode!r} on a gradient path: expected mode "
            "'constant' (reflect and edge padding are forward-only)"
        )
    shape = ctx.shape(ctx.x(0))
    rank = len(shape)
    pads = [int(v) for v in ctx.g.consts[ctx.x(1)].reshape(-1)]
    begins, ends = pads[:rank], pads[rank:]
    crop_begin = [max(-b, 0) for b in begins]
    crop_end = [max(-e, 0) for e in ends]
    kept = [d - cb - ce for d, cb, ce in zip(shape, crop_begin, crop_end, strict=True)]
    axes = [i for i in range(rank) if begins[i] > 0 or ends[i] > 0]
    grad = _dy(ctx)
    cropped = any(crop_begin) or any(crop_end)
    if axes:
        starts = [max(begins[i], 0) for i in axes]
        stops = [starts[j] + kept[i] for j, i in enumerate(axes)]
        region = ctx.grad_for(0) if not cropped else ctx.tmp("dY_region", kept)
        ctx.emit(
            "Slice",
            [
                grad,
                ctx.const(np.array(starts, np.int64), "starts"),
                ctx.const(np.array(stops, np.int64), "ends"),
                ctx.const(np.array(axes, np.int64), "axes"),
            ],
            [region],
        )
        grad = region
    if cropped:
        back = ctx.const(np.array(crop_begin + crop_end, np.int64), "uncrop_pads")
        ctx.emit("Pad", [grad, back], [ctx.grad_for(0)], mode="constant")


# --- loss ----------------------------------------------------------------------------------
@builder("SoftmaxCrossEntropyLoss")
def softmax_cross_entropy_loss(ctx: GradContext) -> None:
    reduction = str(ctx.attrs.get("reduction", "mean"))
    ctx.emit(
        "SoftmaxCrossEntropyLossGrad",
        [_dy(ctx), ctx.y(1), ctx.x(1)],
        [ctx.grad_for(0)],
        domain=MS,
        reduction=reduction,
    )


def _scalar_tensor(value: float) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array([value], np.float32), "value")
