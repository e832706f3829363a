"""Inference graph in, training-iteration graph out: forward, loss, gradients, SGD updates.

The pipeline: :func:`.prepare.prepare` (fold, re-batch, canonical forms, shapes), parameter
discovery, the SoftmaxCrossEntropyLoss over the logits, the reverse pass
(:mod:`.autodiff` with the builders of :mod:`.gradients`) that calls back for an SGD update
as each parameter's gradient completes, the execution order (:mod:`.order`), and the model
with static shapes in value_info and the ``autotm.training`` metadata
(schemas/src/autotm_schemas/contracts/onnx-training-graph.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from autotm_schemas import BadInputError
from onnx import helper, numpy_helper

from ..opset import IR_VERSION, MS, OPSET_IMPORTS
from .autodiff import Engine, differentiable_inputs
from .gradients import BUILDERS
from .graph import TensorInfo, WorkGraph, type_proto
from .order import execution_order, hoist_updates
from .prepare import Forward, prepare

TRAINING_METADATA_KEY = "autotm.training"
TRAINING_FORMAT = "autotm.training/1"
LOSSES = ("softmax-cross-entropy",)
OPTIMIZERS = ("sgd",)


@dataclass(frozen=True)
class TrainOptions:
    """What the training iteration looks like."""

    batch: int
    learning_rate: float = 0.01
    loss: str = "softmax-cross-entropy"
    optimizer: str = "sgd"
    network: str | None = None  # defaults to the source file's stem


@dataclass(frozen=True)
class ParameterSpec:
    """One entry of the metadata's ``parameters`` list."""

    name: str
    updated: str
    trainable: bool
    init: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "updated": self.updated,
            "trainable": self.trainable,
            "init": self.init,
        }


def build_training_model(
    model: onnx.ModelProto, options: TrainOptions, source: str = "<model>"
) -> onnx.ModelProto:
    """The training-iteration graph of an inference ``model`` (see the module docstring)."""
    if options.batch < 1:
        raise BadInputError(f"--batch: expected a positive integer, got {options.batch}")
    if options.loss not in LOSSES:
        raise BadInputError(f"--loss: expected one of {list(LOSSES)}, got {options.loss!r}")
    if options.optimizer not in OPTIMIZERS:
        raise BadInputError(f"--optimizer: expected one of {list(OPTIMIZERS)}")
    if not np.isfinite(options.learning_rate) or options.learning_rate <= 0:
        raise BadInputError(f"--lr: expected a positive number, got {options.learning_rate}")
    fwd = prepare(model, options.batch, source)
    g = fwd.graph
    trainable = _trainable(fwd)

    labels = g.tensor("labels", [options.batch], np.int64)
    loss = g.tensor("loss", [], np.float32)
    log_prob = g.tensor("log_prob", g.shape(fwd.logits), np.float32)
    loss_node = g.node(
        "SoftmaxCrossEntropyLoss", [fwd.logits, labels], [loss, log_prob], reduction="mean"
    )
    seed = g.const(np.array(1.0, np.float32), "loss_grad")
    lr = g.const(np.array(options.learning_rate, np.float32), "learning_rate")

    nodes = [*g.nodes, loss_node]
    updated: dict[str, str] = {}

    def sgd(parameter: str, gradient: str) -> None:
        info = g.info[parameter]
        updated[parameter] = g.tensor(f"{parameter}_updated", info.shape, info.dtype)
        nodes.append(
            g.node("SGDOptimizer", [lr, parameter, gradient], [updated[parameter]], domain=MS)
        )

    Engine(g, [*g.nodes, loss_node], loss, seed, trainable, BUILDERS, sgd, nodes).run()
    missing = [p for p in trainable if p not in updated]
    if missing:
        raise BadInputError(f"{source}: parameter {missing[0]!r}: no gradient reaches it")

    parameters = [
        ParameterSpec(p, updated[p], True, fwd.input_params.get(p)) for p in trainable
    ] + [
        ParameterSpec(stat, new, False, fwd.input_params.get(stat))
        for stat, new in fwd.running_stats.items()
        if stat in g.consts or stat in fwd.input_params
    ]
    inputs = [*fwd.data_inputs, labels, *[p for p in fwd.input_params]]
    ordered = hoist_updates(execution_order(nodes, {*inputs, *g.consts}))
    network = options.network or _zoo_name(model) or Path(source).stem
    meta = {
        "format": TRAINING_FORMAT,
        "network": network,
        "batch": options.batch,
        "loss": loss,
        "optimizer": {"type": options.optimizer, "learning_rate": options.learning_rate},
        "data_inputs": [*fwd.data_inputs, labels],
        "parameters": [p.as_json() for p in parameters],
    }
    outputs = [loss, *(p.updated for p in parameters)]
    return _model(g, ordered, inputs, outputs, network, meta)


def _zoo_name(model: onnx.ModelProto) -> str | None:
    """The network name a zoo graph records in its ``autotm.zoo`` metadata, if any."""
    for prop in model.metadata_props:
        if prop.key == "autotm.zoo":
            try:
                name = json.loads(prop.value).get("network")
            except (ValueError, AttributeError):
                return None
            return str(name) if name else None
    return None


def _trainable(fwd: Forward) -> list[str]:
    """Float parameters of rank >= 1 that feed a differentiable input, in order of first use."""
    g = fwd.graph
    candidates = fwd.file_params | set(fwd.input_params)
    found: list[str] = []
    for node in g.nodes:
        for i in differentiable_inputs(node):
            if i >= len(node.input):
                continue
            name = node.input[i]
            info = g.info.get(name)
            if (
                name in candidates
                and name not in found
                and name not in fwd.running_stats
                and info is not None
                and np.issubdtype(info.dtype, np.floating)
                and len(info.shape) >= 1
            ):
                found.append(name)
    return found


def _model(
    g: WorkGraph,
    nodes: list[onnx.NodeProto],
    inputs: list[str],
    outputs: list[str],
    network: str,
    meta: dict[str, Any],
) -> onnx.ModelProto:
    used = {n for node in nodes for n in (*node.input, *node.output) if n}
    initializers = [
        numpy_helper.from_array(np.asarray(value), name)
        for name, value in g.consts.items()
        if name in used and name not in inputs
    ]
    declared = {*inputs, *outputs, *(i.name for i in initializers)}
    value_info = [_value_info(n, g.info[n]) for n in sorted(used - declared)]
    graph = helper.make_graph(
        nodes,
        f"{network}_training",
        [_value_info(n, g.info[n]) for n in inputs],
        [_value_info(n, g.info[n]) for n in outputs],
        initializer=initializers,
        value_info=value_info,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in OPSET_IMPORTS.items()],
        ir_version=IR_VERSION,
        producer_name="autotm-graph train",
    )
    helper.set_model_props(model, {TRAINING_METADATA_KEY: json.dumps(meta)})
    return model


def _value_info(name: str, info: TensorInfo) -> onnx.ValueInfoProto:
    return helper.make_value_info(name, type_proto(info))
