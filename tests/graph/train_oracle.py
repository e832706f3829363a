"""Test helpers for training graphs: run them in onnxruntime, check gradients by float64
finite differences, and build small inference graphs with onnx.helper.

The finite-difference reference evaluates the *forward* part of a training graph (every node
up to the SoftmaxCrossEntropyLoss) with ``onnx.reference.ReferenceEvaluator`` in float64:
BatchNormInternal becomes a training-mode BatchNormalization, each Dropout a
multiplication by the mask onnxruntime drew, each random op (stochastic depth) the noise
onnxruntime drew, and com.microsoft Gelu its erf formula, so the function differentiated is
exactly the one the training graph computed.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

try:  # onnxruntime-training-cpu; absent on platforms without wheels
    import onnxruntime as ort
except ImportError:  # pragma: no cover
    ort = None

F32 = onnx.TensorProto.FLOAT
DOUBLE = onnx.TensorProto.DOUBLE


@functools.cache
def ort_has_training_ops() -> bool:
    """Whether the installed onnxruntime runs com.microsoft gradient ops (the oracle)."""
    if ort is None:
        return False
    node = helper.make_node("ReluGrad", ["dy", "x"], ["dx"], domain="com.microsoft")
    vi = [helper.make_tensor_value_info(n, F32, [2]) for n in ("dy", "x", "dx")]
    model = helper.make_model(
        helper.make_graph([node], "probe", vi[:2], vi[2:]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
        ir_version=8,
    )
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:
        return False
    return True


def metadata(model: onnx.ModelProto) -> dict[str, Any]:
    props = {p.key: p.value for p in model.metadata_props}
    return dict(json.loads(props["autotm.training"]))


def value_infos(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    g = model.graph
    return {v.name: v for v in (*g.input, *g.value_info, *g.output)}


def run_ort(
    model: onnx.ModelProto, feeds: dict[str, np.ndarray], extra: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """Run a training graph in onnxruntime, also returning the ``extra`` intermediate tensors."""
    assert ort is not None
    m = onnx.ModelProto()
    m.CopyFrom(model)
    infos = value_infos(m)
    have = {o.name for o in m.graph.output}
    for name in extra:
        if name not in have:
            m.graph.output.append(infos[name])
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in m.graph.output]
    return dict(zip(names, session.run(names, feeds), strict=True))


def grad_names(model: onnx.ModelProto) -> dict[str, str]:
    """Trainable parameter -> the gradient its SGDOptimizer reads."""
    return {n.input[1]: n.input[2] for n in model.graph.node if n.op_type == "SGDOptimizer"}


RANDOM_OPS = ("RandomUniformLike", "Bernoulli")


def dropout_masks(model: onnx.ModelProto) -> list[str]:
    """Every tensor onnxruntime draws at random: Dropout masks and random-op outputs."""
    masks = [n.output[1] for n in model.graph.node if n.op_type == "Dropout"]
    return masks + [n.output[0] for n in model.graph.node if n.op_type in RANDOM_OPS]


def _gelu_nodes(x: str, y: str) -> list[onnx.NodeProto]:
    """com.microsoft Gelu in standard ops (the reference evaluator has no contrib ops)."""
    names = [f"{y}_gelu{i}" for i in range(4)]
    return [
        helper.make_node("Div", [x, "__sqrt2"], [names[0]]),
        helper.make_node("Erf", [names[0]], [names[1]]),
        helper.make_node("Add", [names[1], "__one"], [names[2]]),
        helper.make_node("Mul", [x, names[2]], [names[3]]),
        helper.make_node("Mul", [names[3], "__half"], [y]),
    ]


def forward_float64(
    model: onnx.ModelProto, masks: dict[str, np.ndarray]
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The forward + loss part of a training graph in float64, and its float initializers."""
    g = model.graph
    nodes: list[onnx.NodeProto] = []
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    extra: list[onnx.TensorProto] = []
    for node in g.node:
        if node.op_type == "BatchNormInternal":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            nodes.append(
                helper.make_node(
                    "BatchNormalization",
                    list(node.input),
                    [node.output[0]],
                    epsilon=attrs["epsilon"],
                    momentum=attrs["momentum"],
                    training_mode=1,
                )
            )
        elif node.op_type == "Dropout":
            ratio = float(consts[node.input[1]])
            scale = masks[node.output[1]].astype(np.float64) / (1.0 - ratio)
            extra.append(numpy_helper.from_array(scale, f"{node.output[1]}_scale"))
            nodes.append(helper.make_node("Mul", [node.input[0], extra[-1].name], [node.output[0]]))
        elif node.op_type in RANDOM_OPS:  # the noise onnxruntime drew, as a constant
            noise = masks[node.output[0]]
            if noise.dtype == np.float32:
                noise = noise.astype(np.float64)
            extra.append(numpy_helper.from_array(noise, node.output[0]))
        elif node.op_type == "Gelu" and node.domain == "com.microsoft":
            nodes.extend(_gelu_nodes(node.input[0], node.output[0]))
        elif node.op_type == "Cast" and _to(node) == F32:
            nodes.append(helper.make_node("Cast", list(node.input), list(node.output), to=DOUBLE))
        elif node.op_type == "Pad" and (consts[node.input[1]] < 0).any():
            nodes.extend(_cropping_pad(node, consts[node.input[1]], extra))
        elif node.op_type == "MaxPool":
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            del copy.output[1:]
            nodes.append(copy)
        else:
            nodes.append(node)
        if node.op_type == "SoftmaxCrossEntropyLoss":
            break
    for name, value in (("__sqrt2", np.sqrt(2.0)), ("__one", 1.0), ("__half", 0.5)):
        extra.append(numpy_helper.from_array(np.array(value, np.float64), name))
    inits = []
    for name, value in consts.items():
        if value.dtype == np.float32:
            value = value.astype(np.float64)
        inits.append(numpy_helper.from_array(value, name))
    inputs = []
    for v in g.input:
        elem = v.type.tensor_type.elem_type
        dims = [d.dim_value for d in v.type.tensor_type.shape.dim]
        inputs.append(helper.make_tensor_value_info(v.name, DOUBLE if elem == F32 else elem, dims))
    loss = metadata(model)["loss"]
    graph = helper.make_graph(
        nodes,
        "forward64",
        inputs,
        [helper.make_tensor_value_info(loss, 0, None)],
        initializer=inits + extra,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    floats = {k: v.astype(np.float64) for k, v in consts.items() if v.dtype == np.float32}
    return m, floats


def _cropping_pad(
    node: onnx.NodeProto, pads: np.ndarray, extra: list[onnx.TensorProto]
) -> list[onnx.NodeProto]:
    """A Pad with negative pads as Pad then Slice (the reference evaluator pads only)."""
    rank = len(pads) // 2
    begins, ends = pads[:rank], pads[rank:]
    names = [f"{node.output[0]}_{k}" for k in ("pads", "starts", "ends", "padded")]
    big = np.iinfo(np.int64).max
    values = [
        np.maximum(pads, 0),
        np.maximum(-begins, 0),
        np.where(ends < 0, ends, big),
    ]
    extra.extend(
        numpy_helper.from_array(v.astype(np.int64), n) for v, n in zip(values, names, strict=False)
    )
    return [
        helper.make_node("Pad", [node.input[0], names[0], *node.input[2:3]], [names[3]]),
        helper.make_node("Slice", [names[3], names[1], names[2]], [node.output[0]]),
    ]


def _to(node: onnx.NodeProto) -> int:
    return int(next(helper.get_attribute_value(a) for a in node.attribute if a.name == "to"))


def check_gradients(
    model: onnx.ModelProto,
    feeds: dict[str, np.ndarray],
    rtol: float = 2e-3,
    atol: float = 2e-5,
    seed: int = 0,
    limit: int | None = None,
) -> dict[str, tuple[float, float]]:
    """Directional derivatives of the loss along a random direction per parameter: the
    training graph's gradient (run in onnxruntime) against float64 central differences.

    Returns {parameter: (analytic, numeric)}; raises AssertionError beyond the tolerance
    |analytic - numeric| <= atol + rtol * |numeric|. ``limit`` checks that many parameters,
    evenly spread from the first layer to the last (big graphs evaluate slowly in float64).
    """
    grads = grad_names(model)
    checked = list(grads)
    if limit is not None and len(checked) > limit:
        picks = np.linspace(0, len(checked) - 1, limit).round().astype(int)
        checked = [checked[i] for i in sorted(set(picks))]
    masks = dropout_masks(model)
    out = run_ort(model, feeds, [*grads.values(), *masks])
    fwd, params = forward_float64(model, {m: out[m] for m in masks})
    feeds64 = {k: (v.astype(np.float64) if v.dtype == np.float32 else v) for k, v in feeds.items()}
    for name, value in list(feeds64.items()):
        if name in grads:  # parameters fed as graph inputs (seeded init specs)
            params[name] = value
    evaluator = ReferenceEvaluator(fwd)
    loss_name = metadata(model)["loss"]
    input_names = {v.name for v in fwd.graph.input}

    def loss_at(overrides: dict[str, np.ndarray]) -> float:
        run_feeds = {k: v for k, v in feeds64.items() if k in input_names}
        init_over = {}
        for k, v in overrides.items():
            if k in input_names:
                run_feeds[k] = v
            else:
                init_over[k] = v
        if init_over:
            ev = ReferenceEvaluator(_with_initializers(fwd, init_over))
            result: Any = ev.run([loss_name], run_feeds)
        else:
            result = evaluator.run([loss_name], run_feeds)
        return float(result[0])

    rng = np.random.default_rng(seed)
    results: dict[str, tuple[float, float]] = {}
    base = loss_at({})
    assert abs(base - float(out[loss_name])) <= 1e-4 * max(1.0, abs(base)), (base, out[loss_name])
    for param in checked:
        grad = grads[param]
        value = params[param]
        direction = rng.standard_normal(value.shape)
        direction /= np.linalg.norm(direction)
        eps = 1e-4
        plus = loss_at({param: value + eps * direction})
        minus = loss_at({param: value - eps * direction})
        numeric = (plus - minus) / (2 * eps)
        analytic = float(np.sum(out[grad].astype(np.float64) * direction))
        results[param] = (analytic, numeric)
        assert abs(analytic - numeric) <= atol + rtol * abs(numeric), (param, analytic, numeric)
    return results


def _with_initializers(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for i, t in enumerate(m.graph.initializer):
        if t.name in values:
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(values[t.name], t.name))
    return m


def feeds_for(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Random data inputs and labels for a training graph (parameters from init specs too)."""
    rng = np.random.default_rng(seed)
    meta = metadata(model)
    infos = value_infos(model)
    feeds: dict[str, np.ndarray] = {}
    for name in meta["data_inputs"]:
        dims = [d.dim_value for d in infos[name].type.tensor_type.shape.dim]
        if infos[name].type.tensor_type.elem_type == onnx.TensorProto.INT64:
            classes = [
                d.dim_value for d in value_infos(model)["log_prob"].type.tensor_type.shape.dim
            ][1]
            feeds[name] = rng.integers(0, classes, size=dims).astype(np.int64)
        else:
            feeds[name] = rng.standard_normal(dims).astype(np.float32)
    for p in meta["parameters"]:
        if p["init"] is not None:
            from autotm_graph.weights import materialize  # the reference implementation

            dims = [d.dim_value for d in infos[p["name"]].type.tensor_type.shape.dim]
            feeds[p["name"]] = np.asarray(materialize(p["init"], tuple(dims)), np.float32)
    return feeds


def sgd_losses(model: onnx.ModelProto, feeds: dict[str, np.ndarray], steps: int) -> list[float]:
    """Losses of ``steps`` iterations on one fixed batch, feeding updated parameters back."""
    assert ort is not None
    meta = metadata(model)
    m = onnx.ModelProto()
    m.CopyFrom(model)
    state: dict[str, np.ndarray] = {}
    persistent = {p["name"]: p["updated"] for p in meta["parameters"]}
    keep = []
    for t in m.graph.initializer:
        if t.name in persistent:
            state[t.name] = numpy_helper.to_array(t)
            m.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            keep.append(t)
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    for name in persistent:
        if name in feeds:
            state[name] = feeds[name]
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    data = {k: v for k, v in feeds.items() if k not in persistent}
    losses = []
    outputs = [meta["loss"], *persistent.values()]
    for _ in range(steps):
        result = session.run(outputs, {**data, **state})
        losses.append(float(result[0]))
        state = dict(zip(persistent.keys(), result[1:], strict=True))
    return losses


# --- small inference graphs ----------------------------------------------------------------
class GraphMaker:
    """Builds a small inference graph with onnx.helper: data input, nodes, initializers."""

    def __init__(self, input_shape: Sequence[int | str], seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.input = helper.make_tensor_value_info("x", F32, list(input_shape))
        self.count = 0

    def param(
        self, shape: Sequence[int], scale: float = 0.4, value: np.ndarray | None = None
    ) -> str:
        self.count += 1
        name = f"p{self.count}"
        array = value if value is not None else self.rng.standard_normal(shape) * scale
        self.inits.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def const(self, value: Any, dtype: Any = np.int64) -> str:
        self.count += 1
        name = f"k{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], n_out: int = 1, **attrs: Any) -> str:
        self.count += 1
        outs = [f"t{self.count}_{i}" for i in range(n_out)]
        self.nodes.append(
            helper.make_node(op_type, list(inputs), outs, name=f"n{self.count}", **attrs)
        )
        return outs[0]

    def outs(self, n: int = -1) -> list[str]:
        return list(self.nodes[n].output)

    def head(self, t: str, features: int, classes: int = 3) -> str:
        flat = self.op("Flatten", [t])
        return self.op(
            "Gemm", [flat, self.param([classes, features]), self.param([classes])], transB=1
        )

    def model(self, logits: str, opset: int = 17) -> onnx.ModelProto:
        out = helper.make_tensor_value_info(logits, F32, None)
        graph = helper.make_graph(self.nodes, "test", [self.input], [out], self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
