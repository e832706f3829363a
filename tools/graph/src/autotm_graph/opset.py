"""The one table of what `autotm-graph train` accepts and what it writes.

Two tables, both plain data:

* :data:`FORWARD` -- every op an inference graph may contain, how the training graph writes
  its forward computation, which inputs carry a gradient, and the backward ops its gradient
  emits (op type, domain, inputs and outputs by position, attributes). An op whose
  ``backward`` is ``None`` is accepted only where no gradient flows through it: shape
  arithmetic and masks that fold to constants, or, marked ``runtime``, ops that run in the
  training graph off the gradient path (stochastic depth's random noise and its comparisons).
  Some accepted ops are never written as such: ``writes`` names what they become (Einsum a
  batched MatMul, a layer-norm decomposition one LayerNormalization, ...).
* :data:`TRAINING_OPS` -- every (domain, op type) that can appear in a written training graph,
  forward, loss, backward and optimizer alike, with its signature. This is the list of kernels
  an executor needs; `autotm-execute` reads it instead of guessing.

Names and signatures follow onnxruntime-training (1.19.2) wherever it has the op, so that a
training graph runs unchanged in ``onnxruntime.InferenceSession`` with the CPU provider.
``ort`` says how each op was checked against that runtime: ``"verified"`` means a test in
tests/graph runs it in onnxruntime-training-cpu 1.19.2 and compares its result with float64
finite differences; ``"standard"`` is a plain ONNX op. Two onnxruntime gradient ops,
``MaxPoolGrad`` and ``AveragePoolGrad``, are registered by onnxruntime in the *default* ONNX
domain (since version 9), not in ``com.microsoft``; we write them there too, which is why
``onnx.checker`` cannot check a training graph (see :func:`checker_view`).

Inputs and outputs are written ``name`` or ``name?`` (optional: an empty name in the node when
absent). Gradient inputs are named ``dY`` (the gradient of forward output 0) and forward
tensors by their role (``X``, ``W``, ``Y`` for forward output 0, ``Indices`` for MaxPool's
output 1, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

ONNX = ""
MS = "com.microsoft"
AUTOTM = "ai.autotm"

#: opset versions a training graph imports; ai.autotm is imported only when used (never, now).
OPSET_IMPORTS = {ONNX: 17, MS: 1}
IR_VERSION = 8


@dataclass(frozen=True)
class OpSig:
    """The signature of one op as it appears in a training graph."""

    op_type: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: tuple[str, ...] = ()
    semantics: str = ""
    ort: str = "standard"  # "verified" (run in onnxruntime-training by a test) or "standard"

    @property
    def key(self) -> tuple[str, str]:
        return (self.domain, self.op_type)


@dataclass(frozen=True)
class ForwardOp:
    """An op accepted in an inference graph, and what the training graph makes of it."""

    op_type: str
    differentiable: tuple[int, ...]  # input positions a gradient flows to
    writes: tuple[str, ...]  # (domain:)op types of the forward computation in the training graph
    backward: tuple[str, ...] | None  # (domain:)op types its gradient emits; None: forward-only
    note: str = ""
    # a forward-only op (backward None) that may still run in the training graph where no
    # gradient flows through it (random noise, masks); otherwise it must fold to a constant
    runtime: bool = False


def _sig(
    op_type: str,
    domain: str,
    inputs: str,
    outputs: str,
    attributes: str = "",
    semantics: str = "",
    ort: str = "standard",
) -> OpSig:
    return OpSig(
        op_type,
        domain,
        tuple(inputs.split()),
        tuple(outputs.split()),
        tuple(attributes.split()),
        semantics,
        ort,
    )


_SIGS = [
    # --- forward ops as written in a training graph (standard ONNX, opset 17) ---
    _sig(
        "Conv",
        ONNX,
        "X W B?",
        "Y",
        "dilations group kernel_shape pads strides",
        "ONNX Conv; auto_pad is resolved to explicit pads, every attribute is written",
    ),
    _sig("Relu", ONNX, "X", "Y"),
    _sig(
        "MaxPool",
        ONNX,
        "X",
        "Y Indices",
        "ceil_mode dilations kernel_shape pads storage_order strides",
        "ONNX MaxPool with its Indices output (int64, flat over N*C*H*W, storage_order 0)",
    ),
    _sig("AveragePool", ONNX, "X", "Y", "ceil_mode count_include_pad kernel_shape pads strides"),
    _sig("GlobalAveragePool", ONNX, "X", "Y"),
    _sig("Gemm", ONNX, "A B C?", "Y", "alpha beta transA transB"),
    _sig("MatMul", ONNX, "A B", "Y"),
    _sig("Add", ONNX, "A B", "C", semantics="numpy broadcasting"),
    _sig("Sub", ONNX, "A B", "C", semantics="numpy broadcasting"),
    _sig("Mul", ONNX, "A B", "C", semantics="numpy broadcasting"),
    _sig("Div", ONNX, "A B", "C", semantics="numpy broadcasting"),
    _sig("Neg", ONNX, "X", "Y"),
    _sig("Concat", ONNX, "X0 X1...", "Y", "axis"),
    _sig("Split", ONNX, "X split", "Y0 Y1...", "axis", "split: int64 constant (opset 13)"),
    _sig("Flatten", ONNX, "X", "Y", "axis"),
    _sig(
        "Reshape",
        ONNX,
        "X shape",
        "Y",
        "",
        "shape: int64 constant with the training batch; never 0 or -1 after `train`",
    ),
    _sig("Squeeze", ONNX, "X axes", "Y", semantics="axes: int64 constant"),
    _sig("Unsqueeze", ONNX, "X axes", "Y", semantics="axes: int64 constant"),
    _sig("Transpose", ONNX, "X", "Y", "perm"),
    _sig(
        "Slice",
        ONNX,
        "X starts ends axes? steps?",
        "Y",
        semantics="starts/ends/axes/steps: int64 constants",
    ),
    _sig(
        "Gather",
        ONNX,
        "X indices",
        "Y",
        "axis",
        "indices int64 (negative values normalised when constant); gradient by GatherGrad",
    ),
    _sig(
        "LayerNormalization",
        ONNX,
        "X Scale B?",
        "Y Mean InvStdDev",
        "axis epsilon stash_type",
        "ONNX opset 17; axis >= 0; Mean and InvStdDev (float32) shaped X.shape[:axis] + "
        "[1] * (rank - axis), always written (LayerNormalizationGrad reads them); also what a "
        "ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div[/Mul/Add] decomposition is fused into",
    ),
    _sig(
        "Gelu",
        MS,
        "X",
        "Y",
        semantics="exact GELU, Y = X * (1 + erf(X / sqrt(2))) / 2 (onnxruntime contrib op); "
        "ONNX Gelu (opset 20, approximate 'none') and the exporters' Erf decomposition are "
        "written as this",
        ort="verified",
    ),
    _sig("Erf", ONNX, "X", "Y"),
    _sig("Exp", ONNX, "X", "Y"),
    _sig("Tanh", ONNX, "X", "Y"),
    _sig("Sqrt", ONNX, "X", "Y"),
    _sig("Reciprocal", ONNX, "X", "Y"),
    _sig(
        "Pow",
        ONNX,
        "X Y",
        "Z",
        semantics="numpy broadcasting; Y (the exponent) a float constant on a gradient path",
    ),
    _sig(
        "Pad",
        ONNX,
        "data pads constant_value?",
        "output",
        "mode",
        "opset-17 form: pads an int64 constant of 2 * rank values (begins, then ends; negative "
        "crops), no axes input; mode constant, reflect or edge (gradient for constant only)",
    ),
    _sig(
        "Bernoulli",
        ONNX,
        "input",
        "output",
        "dtype seed?",
        "random per iteration (stochastic depth); never on a gradient path",
    ),
    _sig(
        "RandomUniformLike",
        ONNX,
        "input",
        "output",
        "dtype high low seed?",
        "random per iteration (stochastic depth); never on a gradient path",
    ),
    _sig("Softmax", ONNX, "X", "Y", "axis", "opset-13 semantics (one axis)"),
    _sig("LogSoftmax", ONNX, "X", "Y", "axis", "opset-13 semantics (one axis)"),
    _sig("Clip", ONNX, "X min? max?", "Y", semantics="min/max: scalar float constants"),
    _sig("Sigmoid", ONNX, "X", "Y"),
    _sig("HardSigmoid", ONNX, "X", "Y", "alpha beta"),
    _sig("ReduceMean", ONNX, "X", "Y", "axes keepdims", "axes is an attribute at opset 17"),
    _sig(
        "Dropout",
        ONNX,
        "X ratio training_mode",
        "Y mask",
        "seed",
        "training mode (training_mode = true constant); mask is bool; Y = X * mask / (1 - ratio)",
    ),
    _sig(
        "BatchNormInternal",
        MS,
        "X scale B input_mean input_var",
        "Y running_mean running_var saved_mean saved_inv_std",
        "epsilon momentum training_mode",
        "training-mode batch norm (training_mode=1): Y uses the batch mean and biased batch "
        "variance over all axes but 1; running_mean = momentum * input_mean + (1 - momentum) "
        "* mean; running_var likewise with the biased variance; saved_inv_std = "
        "1 / sqrt(var + epsilon). This is onnxruntime's BatchNormInternal, which "
        "BatchNormalizationGrad needs (standard BatchNormalization does not output the saved "
        "statistics)",
        "verified",
    ),
    # --- loss ---
    _sig(
        "SoftmaxCrossEntropyLoss",
        ONNX,
        "scores labels",
        "loss log_prob",
        "reduction",
        "ONNX SoftmaxCrossEntropyLoss, reduction 'mean', labels int64 [N]",
    ),
    # --- backward ops (onnxruntime-training) ---
    _sig(
        "SoftmaxCrossEntropyLossGrad",
        MS,
        "dY log_prob labels",
        "d_scores",
        "reduction",
        "d_scores = dY * (exp(log_prob) - onehot(labels)) / N for reduction 'mean'",
        "verified",
    ),
    _sig(
        "ConvGrad",
        MS,
        "dY X W",
        "dX? dW? dB?",
        "dilations group kernel_shape pads strides",
        "the gradients of Conv(X, W, B); attributes copied from the Conv; an output is empty "
        "when not needed (dB is empty when the Conv has no bias)",
        "verified",
    ),
    _sig("ReluGrad", MS, "dY Y", "dX", semantics="dX = dY * (Y > 0)", ort="verified"),
    _sig(
        "MaxPoolGrad",
        ONNX,
        "dY Indices",
        "dX",
        "ceil_mode dilations kernel_shape pads storage_order strides",
        "dX = zeros of X's shape (from value_info), then dX.flat[Indices] += dY; registered "
        "by onnxruntime in the DEFAULT domain (since version 9), not com.microsoft",
        "verified",
    ),
    _sig(
        "AveragePoolGrad",
        ONNX,
        "dY",
        "dX",
        "ceil_mode count_include_pad kernel_shape pads strides",
        "the adjoint of AveragePool; dX's shape comes from value_info; registered by "
        "onnxruntime in the DEFAULT domain (since version 9), not com.microsoft",
        "verified",
    ),
    _sig(
        "BatchNormalizationGrad",
        MS,
        "dY X scale saved_mean saved_inv_std",
        "dX dScale dB",
        "epsilon",
        "the gradients of training-mode batch norm given BatchNormInternal's saved statistics",
        "verified",
    ),
    _sig(
        "SoftmaxGrad_13",
        MS,
        "dY Y",
        "dX",
        "axis",
        "dX = Y * (dY - sum(dY * Y, axis, keepdims))",
        "verified",
    ),
    _sig(
        "LogSoftmaxGrad_13",
        MS,
        "dY Y",
        "dX",
        "axis",
        "dX = dY - exp(Y) * sum(dY, axis, keepdims)",
        "verified",
    ),
    _sig("SigmoidGrad", MS, "dY Y", "dX", semantics="dX = dY * Y * (1 - Y)", ort="verified"),
    _sig(
        "DropoutGrad",
        MS,
        "dY mask ratio training_mode",
        "dX",
        semantics="dX = dY * mask / (1 - ratio)",
        ort="verified",
    ),
    _sig(
        "SliceGrad",
        MS,
        "dY shape starts ends axes? steps?",
        "dX",
        semantics="dX = zeros(shape) with the sliced region set to dY",
        ort="verified",
    ),
    _sig(
        "LayerNormalizationGrad",
        MS,
        "dY X scale mean inv_std_var",
        "dX dScale dBias",
        "axis",
        "the gradients of LayerNormalization given its Mean and InvStdDev outputs; all three "
        "outputs are required by onnxruntime (dBias is computed even without a bias)",
        "verified",
    ),
    _sig(
        "GeluGrad",
        MS,
        "dY X",
        "dX",
        semantics="dX = dY * (Phi(X) + X * phi(X)), Phi/phi the standard normal cdf/pdf",
        ort="verified",
    ),
    _sig("TanhGrad", MS, "dY Y", "dX", semantics="dX = dY * (1 - Y * Y)", ort="verified"),
    _sig(
        "GatherGrad",
        MS,
        "shape indices dY",
        "dX",
        "axis",
        "dX = zeros(shape); dX[.., indices[j], ..] += dY[.., j, ..] along axis (scatter-add; "
        "repeated indices accumulate, negative ones count from the end); shape an int64 constant",
        "verified",
    ),
    # standard ops used by gradients, as onnxruntime's gradient builders use them
    _sig("ReduceSum", ONNX, "X axes", "Y", "keepdims", "axes: int64 constant (opset 13)"),
    _sig("Sum", ONNX, "X0 X1...", "Y", semantics="gradient accumulation"),
    _sig("Expand", ONNX, "X shape", "Y", semantics="shape: int64 constant"),
    _sig("Cast", ONNX, "X", "Y", "to"),
    _sig("GreaterOrEqual", ONNX, "A B", "C"),
    _sig("LessOrEqual", ONNX, "A B", "C"),
    _sig("Greater", ONNX, "A B", "C"),
    _sig("Less", ONNX, "A B", "C"),
    _sig("And", ONNX, "A B", "C"),
    _sig(
        "ConstantOfShape", ONNX, "shape", "Y", "value", "zeros for split outputs with no gradient"
    ),
    # --- optimizer ---
    _sig(
        "SGDOptimizer",
        MS,
        "ETA W G",
        "NW",
        semantics="NW = W - ETA * G; ETA a float scalar",
        ort="verified",
    ),
]

#: Every (domain, op_type) a training graph may contain, with its signature.
TRAINING_OPS: dict[tuple[str, str], OpSig] = {s.key: s for s in _SIGS}

_REDUCE = ("ReduceSum", "Reshape")  # reduce a broadcast gradient back to an input's shape

#: Every op an inference graph may contain. ``writes``/``backward`` name ops of TRAINING_OPS,
#: ``com.microsoft:`` marks that domain.
FORWARD: dict[str, ForwardOp] = {
    f.op_type: f
    for f in [
        ForwardOp(
            "Conv",
            (0, 1, 2),
            ("Conv",),
            ("com.microsoft:ConvGrad",),
            "groups, strides, pads, dilations; auto_pad resolved",
        ),
        ForwardOp("Relu", (0,), ("Relu",), ("com.microsoft:ReluGrad",)),
        ForwardOp(
            "MaxPool",
            (0,),
            ("MaxPool",),
            ("MaxPoolGrad",),
            "written with its Indices output; MaxPoolGrad is in the default domain",
        ),
        ForwardOp(
            "AveragePool",
            (0,),
            ("AveragePool",),
            ("AveragePoolGrad",),
            "AveragePoolGrad is in the default domain",
        ),
        ForwardOp(
            "GlobalAveragePool",
            (0,),
            ("GlobalAveragePool",),
            ("Mul", "Expand"),
            "dX = Expand(dY * (1 / (H*W)), shape(X)), as onnxruntime (with Mul for Scale)",
        ),
        ForwardOp(
            "BatchNormalization",
            (0, 1, 2),
            ("com.microsoft:BatchNormInternal",),
            ("com.microsoft:BatchNormalizationGrad",),
            "trains on batch statistics; running mean/var are non-trainable parameters "
            "whose updated values are BatchNormInternal's outputs 1 and 2",
        ),
        ForwardOp(
            "Gemm",
            (0, 1, 2),
            ("Gemm",),
            ("Gemm", "Mul", *_REDUCE),
            "dA, dB by Gemm with transposes (alpha kept); dC = beta * ReduceSum over "
            "broadcast axes",
        ),
        ForwardOp(
            "MatMul",
            (0, 1),
            ("MatMul",),
            ("Gemm", "MatMul", "Transpose", *_REDUCE),
            "A and B of any rank >= 2, batch dimensions broadcast (numpy); a 2-D B (a weight) "
            "gets its gradient by one Gemm over the flattened rows",
        ),
        ForwardOp("Add", (0, 1), ("Add",), _REDUCE, "broadcasting: ReduceSum + Reshape"),
        ForwardOp("Sub", (0, 1), ("Sub",), ("Neg", *_REDUCE)),
        ForwardOp("Mul", (0, 1), ("Mul",), ("Mul", *_REDUCE)),
        ForwardOp(
            "Div",
            (0, 1),
            ("Div",),
            ("Div", "Mul", "Neg", *_REDUCE),
            "dA = dY / B; dB = -dY * Y / B (as onnxruntime), each reduced to its input's shape",
        ),
        ForwardOp("Neg", (0,), ("Neg",), ("Neg",)),
        ForwardOp("Concat", tuple(range(64)), ("Concat",), ("Split",)),
        ForwardOp("Split", (0,), ("Split",), ("Concat", "ConstantOfShape")),
        ForwardOp("Flatten", (0,), ("Flatten",), ("Reshape",)),
        ForwardOp(
            "Reshape",
            (0,),
            ("Reshape",),
            ("Reshape",),
            "shape constants (and Shape/Gather/Unsqueeze/Concat chains) re-batched",
        ),
        ForwardOp("Squeeze", (0,), ("Squeeze",), ("Reshape",)),
        ForwardOp("Unsqueeze", (0,), ("Unsqueeze",), ("Reshape",)),
        ForwardOp("Transpose", (0,), ("Transpose",), ("Transpose",)),
        ForwardOp("Slice", (0,), ("Slice",), ("com.microsoft:SliceGrad",)),
        ForwardOp(
            "Gather",
            (0,),
            ("Gather", "Reshape"),
            ("com.microsoft:GatherGrad", "Reshape"),
            "gradient to the data (a parameter table or an activation), indices constant or "
            "not; constant indices that permute nothing (dynamo's as_strided) make a Reshape",
        ),
        ForwardOp("Expand", (0,), ("Expand",), _REDUCE, "dX = dY summed over expanded axes"),
        ForwardOp(
            "Pad",
            (0,),
            ("Pad",),
            ("Slice", "Pad"),
            "mode constant: dX = the unpadded region of dY (Slice; Pad with zeros where the Pad "
            "cropped); reflect and edge are forward-only; pads/axes/value must be constants",
        ),
        ForwardOp(
            "LayerNormalization",
            (0, 1, 2),
            ("LayerNormalization", "Reshape"),
            ("com.microsoft:LayerNormalizationGrad", "Reshape"),
            "written with its Mean and InvStdDev outputs; a scale/bias of another shape than "
            "the normalised one is reshaped first",
        ),
        ForwardOp(
            "Gelu",
            (0,),
            ("com.microsoft:Gelu", "Mul", "Add", "Tanh"),
            ("com.microsoft:GeluGrad", "com.microsoft:TanhGrad", "Mul", "Sum", *_REDUCE),
            "approximate 'none' as com.microsoft Gelu; 'tanh' as its formula in Mul/Add/Tanh",
        ),
        ForwardOp(
            "Erf",
            (0,),
            ("Erf", "com.microsoft:Gelu"),
            ("Mul", "Neg", "Exp", "com.microsoft:GeluGrad"),
            "X*0.5*(1+erf(X/sqrt(2))) in any Mul order is fused into com.microsoft Gelu; a "
            "standalone Erf has dX = dY * 2/sqrt(pi) * exp(-X*X)",
        ),
        ForwardOp(
            "Einsum",
            (0, 1),
            ("Transpose", "Reshape", "MatMul", "ReduceSum"),
            ("Transpose", "Reshape", "MatMul", "Gemm", "ReduceSum", "Expand"),
            "two operands, no ellipsis, no repeated index in a term: lowered to Transpose/"
            "Reshape around one batched MatMul",
        ),
        ForwardOp(
            "GatherND",
            (0,),
            ("Gather", "Reshape"),
            ("com.microsoft:GatherGrad", "Reshape"),
            "constant indices, batch_dims 0: lowered to Gather on axis 0 (of the data "
            "flattened over the indexed axes)",
        ),
        ForwardOp(
            "ReduceL2",
            (0,),
            ("Mul", "ReduceSum", "Sqrt"),
            ("Div", "Mul", "Reshape", "Expand", "Sum"),
            "lowered to Sqrt(ReduceSum(X * X))",
        ),
        ForwardOp(
            "ScatterND",
            (0,),
            ("Mul", "Add"),
            ("Mul",),
            "constant indices and updates, reduction none: data * keep + placed (constants); "
            "folded when the data is constant too (Swin's attention masks)",
        ),
        ForwardOp("Exp", (0,), ("Exp",), ("Mul",), "dX = dY * Y"),
        ForwardOp("Tanh", (0,), ("Tanh",), ("com.microsoft:TanhGrad",)),
        ForwardOp("Sqrt", (0,), ("Sqrt",), ("Div", "Mul"), "dX = dY / Y * 0.5"),
        ForwardOp("Reciprocal", (0,), ("Reciprocal",), ("Mul", "Neg"), "dX = -dY * Y * Y"),
        ForwardOp(
            "Pow",
            (0,),
            ("Pow",),
            ("Pow", "Mul", *_REDUCE),
            "exponent a constant: dX = dY * p * X^(p-1) (dY * 2X for p = 2)",
        ),
        ForwardOp("CastLike", (), ("Cast",), None, "written as Cast", runtime=True),
        ForwardOp(
            "Cast",
            (),
            ("Cast",),
            None,
            "a float32-to-float32 Cast is removed like Identity (gradients pass through)",
            runtime=True,
        ),
        *[
            ForwardOp(op, (), (op,), None, "runs where no gradient flows (masks)", runtime=True)
            for op in ("Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And")
        ],
        *[
            ForwardOp(
                op,
                (),
                (op,),
                None,
                "random noise drawn per iteration (stochastic depth); a non-differentiable "
                "input of the Mul that applies it",
                runtime=True,
            )
            for op in ("Bernoulli", "RandomUniformLike")
        ],
        ForwardOp("Identity", (0,), (), (), "removed: its output is an alias of its input"),
        ForwardOp(
            "Dropout",
            (0,),
            ("Dropout",),
            ("com.microsoft:DropoutGrad",),
            "written in training mode with its mask; ratio 0 is removed like Identity",
        ),
        ForwardOp(
            "Softmax",
            (0,),
            ("Softmax",),
            ("com.microsoft:SoftmaxGrad_13",),
            "a Softmax producing the logits output is folded into the loss",
        ),
        ForwardOp(
            "LogSoftmax",
            (0,),
            ("LogSoftmax",),
            ("com.microsoft:LogSoftmaxGrad_13",),
            "a LogSoftmax producing the logits output is folded into the loss",
        ),
        ForwardOp(
            "Clip",
            (0,),
            ("Clip",),
            ("GreaterOrEqual", "LessOrEqual", "And", "Cast", "Mul"),
            "ReLU6; min/max must be constants; as onnxruntime's Clip gradient",
        ),
        ForwardOp("Sigmoid", (0,), ("Sigmoid",), ("com.microsoft:SigmoidGrad",)),
        ForwardOp(
            "HardSigmoid",
            (0,),
            ("HardSigmoid",),
            ("Greater", "Less", "And", "Cast", "Mul"),
            "onnxruntime has no HardSigmoid gradient: dX = dY * alpha * (0 < Y < 1)",
        ),
        ForwardOp(
            "HardSwish",
            (0,),
            ("HardSigmoid", "Mul"),
            ("Greater", "Less", "And", "Cast", "Mul", "Sum"),
            "rewritten as X * HardSigmoid(X, alpha=1/6, beta=1/2)",
        ),
        ForwardOp(
            "ReduceMean",
            (0,),
            ("ReduceMean", "LayerNormalization", "Reshape"),
            ("Reshape", "Mul", "Expand", "com.microsoft:LayerNormalizationGrad"),
            "dX = Expand(reshape(dY) / n, shape(X)); a layer-norm decomposition "
            "(ReduceMean, Sub, Pow or Mul, ReduceMean, Add, Sqrt, Div, then optionally Mul "
            "and Add by constants or parameters) is fused into LayerNormalization",
        ),
        ForwardOp(
            "ReduceSum",
            (0,),
            ("ReduceSum",),
            ("Reshape", "Expand"),
            "axes an int64 constant input (opset 13); dX = Expand(reshape(dY), shape(X))",
        ),
        ForwardOp("Constant", (), (), None, "folded into a constant initializer"),
        # shape arithmetic: accepted when it folds to a constant at the fixed batch
        *[
            ForwardOp(op, (), (), None, "folded to a constant at the fixed batch")
            for op in (
                "Shape",
                "Size",
                "ConstantOfShape",
                "Range",
                "Equal",
                "Not",
                "Or",
                "Where",
                "Floor",
                "Ceil",
                "Abs",
                "Mod",
                "Tile",
                "Trilu",
                "ScatterElements",
                "GatherElements",
                "ReduceProd",
                "ReduceMax",
                "ReduceMin",
            )
        ],
    ]
}


def backward_op_keys(forward: ForwardOp) -> list[tuple[str, str]]:
    """The (domain, op_type) keys of TRAINING_OPS that ``forward``'s gradient may emit."""
    keys = []
    for name in forward.backward or ():
        domain, _, op = name.rpartition(":")
        keys.append((domain, op))
    return keys


def checker_view(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy ``onnx.checker`` accepts: MaxPoolGrad/AveragePoolGrad moved out of the default
    domain (onnxruntime registers them there, the ONNX standard does not know them)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node in copy.graph.node:
        if node.domain in ("", "ai.onnx") and node.op_type in ("MaxPoolGrad", "AveragePoolGrad"):
            node.domain = MS
    return copy
