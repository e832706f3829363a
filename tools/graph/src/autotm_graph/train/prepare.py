"""Turn an inference graph into a clean forward graph at the training batch.

What comes out has: static shapes for every tensor at ``--batch``; no Constant, Identity or
shape-arithmetic nodes (they are folded into constants, so a Shape/Gather/Unsqueeze/Concat
chain feeding a Reshape becomes a plain constant computed at the new batch); Reshape shape
constants exported at another batch re-batched and made fully concrete; every op in the
canonical training form listed in :mod:`autotm_graph.opset` (BatchNormalization as
BatchNormInternal, MaxPool with its Indices, Dropout in training mode with its mask,
HardSwish as HardSigmoid times X, explicit Conv/pool attributes, LayerNormalization with its
Mean/InvStdDev outputs, ONNX Gelu as com.microsoft Gelu, Pad with full constant pads);
layer-norm and GELU decompositions fused (:mod:`.fuse`); random ops (stochastic depth) kept
as computations, never folded; nodes that do not lead to the logits removed.

A static export (batch fixed in the file) has its batch in shape constants: Reshape targets
are re-batched by aligning them with the export's own shapes and following where the batch
lies in each tensor (:mod:`.rebatch`), Expand targets and random-noise inputs by their leading
dimension; a reshape that splits a sample over two axes, or constant indices along the batch
axis, are refused (no rewrite of them is known to compute per sample what the export does).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from autotm_schemas import BadInputError
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from ..opset import FORWARD, MS
from . import lower, rebatch
from .fuse import fuse
from .graph import TensorInfo, WorkGraph, attributes, infer_outputs, info_from_type, set_attribute

INIT_METADATA_KEY = "autotm.init"

# Ops never evaluated at build time even when all their inputs are constants: training-mode
# statistics, and random ops (noise must be drawn anew every iteration).
_RANDOM = {"Bernoulli", "RandomUniformLike", "RandomNormalLike", "RandomUniform", "RandomNormal"}
_NEVER_FOLD = {"Dropout", "BatchNormalization", *_RANDOM}
# Folded constants larger than this stay computations (a folded weight would stop training).
_FOLD_LIMIT = 1 << 20


@dataclass
class Forward:
    """The forward graph ready for differentiation."""

    graph: WorkGraph
    data_inputs: list[str]
    logits: str
    file_params: set[str]  # initializers of the file: the candidate parameters
    input_params: dict[str, dict[str, Any]]  # graph inputs with a seeded init spec
    running_stats: dict[str, str] = field(default_factory=dict)  # BN mean/var -> updated name


def check_supported(model: onnx.ModelProto, source: str) -> None:
    """Exit-2 error naming every unsupported op type and one node of each."""
    bad: dict[str, str] = {}
    for node in model.graph.node:
        domain = "" if node.domain in ("", "ai.onnx") else node.domain
        key = node.op_type if not domain else f"{domain}:{node.op_type}"
        if (domain or node.op_type not in FORWARD) and key not in bad:
            bad[key] = node.name or f"#{list(model.graph.node).index(node)}"
    if bad:
        listed = ", ".join(f"{op} (node {name!r})" for op, name in sorted(bad.items()))
        raise BadInputError(f"{source}: unsupported ops: {listed}")


def _default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 1


def _upgrade(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    """Bring a graph older than opset 13 up to 17 (Split/Squeeze/Softmax semantics changed)."""
    version = _default_opset(model)
    if version >= 13:
        return model
    try:
        return onnx.version_converter.convert_version(model, 17)
    except Exception as exc:
        raise BadInputError(
            f"{source}: opset {version}: expected opset 13 or newer ({exc})".splitlines()[0]
        ) from None


def _topological(nodes: list[onnx.NodeProto], known: set[str], source: str) -> list[onnx.NodeProto]:
    ready = set(known)
    remaining = list(nodes)
    ordered: list[onnx.NodeProto] = []
    while remaining:
        progress = []
        rest = []
        for node in remaining:
            if all(not n or n in ready for n in node.input):
                progress.append(node)
                ready.update(o for o in node.output if o)
            else:
                rest.append(node)
        if not progress:
            missing = sorted({n for node in rest for n in node.input if n and n not in ready})
            raise BadInputError(f"{source}: tensors {missing[:5]} are used but never produced")
        ordered.extend(progress)
        remaining = rest
    return ordered


def prepare(model: onnx.ModelProto, batch: int, source: str) -> Forward:
    """The forward graph of ``model`` at ``batch``, in canonical training form."""
    check_supported(model, source)
    model = _upgrade(model, source)
    opset = _default_opset(model)
    g = WorkGraph(source)
    onnx_graph = model.graph
    every = [n for node in onnx_graph.node for n in (*node.input, *node.output)]
    every += [v.name for v in (*onnx_graph.input, *onnx_graph.output)]
    every += [t.name for t in onnx_graph.initializer]
    for name in every:
        g.names.take(name)
    for node in onnx_graph.node:
        if node.name:
            g.node_names.take(node.name)

    file_params: set[str] = set()
    for init in onnx_graph.initializer:
        array = numpy_helper.to_array(init)
        g.consts[init.name] = array
        g.info[init.name] = TensorInfo(tuple(int(d) for d in array.shape), array.dtype)
        file_params.add(init.name)
    from_file = set(file_params)  # constants whose values came from the file (re-batchable)

    props = {p.key: p.value for p in model.metadata_props}
    try:
        specs = json.loads(props.get(INIT_METADATA_KEY, "{}"))
        if not isinstance(specs, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        raise BadInputError(
            f"{source}: metadata {INIT_METADATA_KEY}: expected a JSON object ({exc})"
        ) from None

    input_params: dict[str, dict[str, Any]] = {}
    data_inputs: list[str] = []
    old_batch: int | None = None
    for value in onnx_graph.input:
        if value.name in g.consts:
            continue
        what = f"{source}: input {value.name!r}"
        if value.name in specs:
            g.info[value.name] = info_from_type(value.type, what)
            input_params[value.name] = dict(specs[value.name])
            continue
        tt = value.type.tensor_type
        dims = list(tt.shape.dim)
        if not dims:
            raise BadInputError(f"{what}: expected a tensor with a batch dimension")
        if dims[0].HasField("dim_value") and old_batch is None:
            old_batch = int(dims[0].dim_value)
        for i, d in enumerate(dims[1:], start=1):
            if not d.HasField("dim_value"):
                raise BadInputError(
                    f"{what}: dimension {i}: expected a static size, got {d.dim_param or '?'!r}"
                )
        shape = (batch, *(int(d.dim_value) for d in dims[1:]))
        g.info[value.name] = TensorInfo(shape, helper.tensor_dtype_to_np_dtype(tt.elem_type))
        data_inputs.append(value.name)
    if not data_inputs:
        raise BadInputError(f"{source}: expected at least one data input (graph input)")
    if not onnx_graph.output:
        raise BadInputError(f"{source}: expected a graph output (the logits)")

    state = _State(g, batch, old_batch, opset, from_file, file_params | set(input_params))
    state.input_params = input_params
    if state._batch_changed():
        state.export_shapes = rebatch.export_shapes(model)
        state.batch_at = {name: rebatch.BatchAxis(0) for name in data_inputs}
    state.uses.update(n for node in onnx_graph.node for n in node.input if n)
    for node in _topological(list(onnx_graph.node), set(g.info), source):
        state.visit(node)

    logits = state.alias.get(onnx_graph.output[0].name, onnx_graph.output[0].name)
    producer = {o: n for n in g.nodes for o in n.output}
    while logits in producer and producer[logits].op_type in ("Softmax", "LogSoftmax"):
        logits = producer[logits].input[0]  # probabilities or log-probabilities: loss on logits
    if logits not in g.info or logits in g.consts:
        raise BadInputError(f"{source}: output {logits!r}: expected computed logits")
    shape = g.shape(logits)
    if len(shape) != 2 or shape[0] != batch:
        raise BadInputError(
            f"{source}: output {logits!r}: expected logits of shape [batch, classes], got {list(shape)}"
        )
    fuse(g, [logits])
    g.nodes = _live(g.nodes, logits)
    used = {n for node in g.nodes for n in node.input if n}
    g.consts = {k: v for k, v in g.consts.items() if k in used}
    return Forward(
        graph=g,
        data_inputs=[d for d in data_inputs if d in used],
        logits=logits,
        file_params={p for p in file_params | state.copies if p in g.consts},
        input_params={k: v for k, v in input_params.items() if k in used},
        running_stats=state.running_stats,
    )


def _live(nodes: list[onnx.NodeProto], target: str) -> list[onnx.NodeProto]:
    needed = {target}
    keep = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(n for n in node.input if n)
    return keep[::-1]


class _State:
    """Visits the source nodes in order, folding, normalising and inferring shapes."""

    def __init__(
        self,
        g: WorkGraph,
        batch: int,
        old_batch: int | None,
        opset: int,
        from_file: set[str],
        params: set[str],
    ) -> None:
        self.g = g
        self.batch = batch
        self.old_batch = old_batch
        self.opset = opset
        self.from_file = from_file
        self.params = params
        self.alias: dict[str, str] = {}
        self.running_stats: dict[str, str] = {}
        self.export_shapes: dict[str, tuple[int, ...]] = {}  # static shapes at the export batch
        self.batch_at: dict[str, rebatch.BatchAxis] = {}  # where the batch is (static exports)
        self.uses: Counter[str] = Counter()  # how many source node inputs read each tensor
        self.copies: set[str] = set()  # private copies of shared running statistics
        self.input_params: dict[str, dict[str, Any]] = {}  # graph inputs with init specs

    # -- helpers ---------------------------------------------------------------------------
    def _const(self, name: str, node: onnx.NodeProto, what: str) -> np.ndarray:
        if name not in self.g.consts:
            raise BadInputError(f"{self.g.where(node)}: {what}: expected a constant")
        return self.g.consts[name]

    def _is_param(self, name: str) -> bool:
        info = self.g.info.get(name)
        return (
            name in self.params
            and info is not None
            and np.issubdtype(info.dtype, np.floating)
            and len(info.shape) >= 1
        )

    def _emit(self, node: onnx.NodeProto) -> None:
        if not node.name:
            node.name = self.g.node_names.fresh(node.output[0] or node.op_type)
        if node.domain == MS and node.op_type == "BatchNormInternal":
            x, c = self.g.info[node.input[0]], self.g.info[node.input[1]]
            infos = [x, c, c, c, c]
        elif node.domain == MS and node.op_type == "Gelu":
            infos = [self.g.info[node.input[0]]]
        else:
            infos = infer_outputs(self.g, node)
        for name, info in zip([o for o in node.output if o], infos, strict=True):
            self.g.info[name] = info
        self.g.nodes.append(node)
        if self.batch_at:
            self._track(node)

    def _track(self, node: onnx.NodeProto) -> None:
        """Where the batch lies in the outputs of ``node``, from where it lies in its inputs
        (see :class:`.rebatch.BatchAxis`): exactly through reshapes, transposes, gathers and
        reductions; for other ops an output keeps an input's batch axis when it has the
        input's rank and the same size on that axis (at both batches where both are known).
        An output it cannot follow gets no entry: re-batching falls back to sizes there."""
        known = [(n, self.batch_at[n]) for n in node.input if n in self.batch_at]
        if not known:
            return
        name, where = known[0]
        shape = self.g.shape(name)
        outputs = [o for o in node.output if o]
        op, attrs = node.op_type, attributes(node)
        found: rebatch.BatchAxis | None = None
        if op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze") and name == node.input[0]:
            old, export = self.old_batch or 1, self.export_shapes
            if old > 1 and name in export and outputs[0] in export:  # a batch of 1 is no digit
                found = rebatch.reshape_axis(export[name], where, export[outputs[0]], old)
            elif self.batch > 1:
                found = rebatch.reshape_axis(shape, where, self.g.shape(outputs[0]), self.batch)
        elif op == "Transpose":
            perm = [int(p) for p in attrs.get("perm", range(len(shape) - 1, -1, -1))]
            found = rebatch.BatchAxis(perm.index(where.axis), where.inner)
        elif op == "Gather" and name == node.input[0]:
            axis = int(attrs.get("axis", 0))
            if axis != where.axis:
                rank = len(self.g.shape(node.input[1]))
                moved = where.axis if where.axis < axis else where.axis + rank - 1
                found = rebatch.BatchAxis(moved, where.inner)
        elif op.startswith("Reduce") and name == node.input[0]:
            if len(node.input) > 1 and node.input[1] in self.g.consts:
                axes = [int(a) for a in self.g.consts[node.input[1]].reshape(-1)]
            else:
                axes = [int(a) for a in attrs.get("axes", [])]
            axes = [a % len(shape) for a in axes] or list(range(len(shape)))
            if where.axis not in axes:  # else the samples are summed: no batch left
                kept = int(attrs.get("keepdims", 1))
                moved = where.axis - (0 if kept else sum(a < where.axis for a in axes))
                found = rebatch.BatchAxis(moved, where.inner)
        else:
            for out in outputs:
                for name, where in known:
                    if self._keeps_batch_axis(name, out, where.axis):
                        self.batch_at[out] = where
                        break
            return
        if found is not None:
            self.batch_at[outputs[0]] = found

    def _keeps_batch_axis(self, source: str, out: str, axis: int) -> bool:
        sizes = [(self.g.shape(source), self.g.shape(out))]
        if source in self.export_shapes and out in self.export_shapes:
            sizes.append((self.export_shapes[source], self.export_shapes[out]))
        return all(len(a) == len(b) and a[axis] == b[axis] for a, b in sizes)

    # -- the visit -------------------------------------------------------------------------
    def visit(self, source_node: onnx.NodeProto) -> None:
        node = onnx.NodeProto()
        node.CopyFrom(source_node)
        node.domain = ""
        for i, name in enumerate(node.input):
            if name in self.alias:
                node.input[i] = self.alias[name]
        op = node.op_type
        if op == "Identity":
            self.alias[node.output[0]] = node.input[0]
            return
        if op == "Constant":
            self.g.consts[node.output[0]] = _evaluate(node, [], max(self.opset, 17))[0]
            self.g.info[node.output[0]] = _info(self.g.consts[node.output[0]])
            self.from_file.add(node.output[0])
            return
        if self._foldable(node):
            self._fold(node)
            return
        if FORWARD[op].backward is None and not FORWARD[op].runtime:
            raise BadInputError(
                f"{self.g.where(node)}: expected constant inputs at the fixed batch "
                f"({op} is supported only as shape arithmetic)"
            )
        handler = getattr(self, f"_op_{op}", None)
        if handler is not None:
            handler(node)
        else:
            self._emit(node)

    def _foldable(self, node: onnx.NodeProto) -> bool:
        if node.op_type in _NEVER_FOLD:
            return False
        if node.op_type in ("Shape", "Size"):
            return node.input[0] in self.g.info
        if node.op_type in ("Cast", "CastLike") and self._same_type(node):
            return False  # removed like Identity instead (a Cast of a parameter keeps training)
        if not all(n in self.g.consts for n in node.input if n):
            return False
        # a parameter read where the op has a gradient is a weight: folding would freeze it;
        # read where no gradient flows (a mask's values, a ScatterND's updates) it is data
        trained = FORWARD[node.op_type].differentiable if node.op_type in FORWARD else ()
        return not any(i < len(node.input) and self._is_param(node.input[i]) for i in trained)

    def _same_type(self, node: onnx.NodeProto) -> bool:
        info = self.g.info.get(node.input[0])
        if node.op_type == "CastLike":
            other = self.g.info.get(node.input[1])
            return info is not None and other is not None and info.dtype == other.dtype
        target = helper.tensor_dtype_to_np_dtype(int(attributes(node)["to"]))
        return info is not None and info.dtype == target

    def _fold(self, node: onnx.NodeProto) -> None:
        if node.op_type == "Shape":
            attrs = attributes(node)
            shape = np.array(self.g.shape(node.input[0]), dtype=np.int64)
            outputs = [shape[attrs.get("start", 0) : attrs.get("end", len(shape))]]
        elif node.op_type == "Size":
            outputs = [np.array(self.g.info[node.input[0]].size, dtype=np.int64)]
        else:
            values = [self.g.consts[n] if n else None for n in node.input]
            outputs = _evaluate(node, values, max(self.opset, 17))
        for name, value in zip(node.output, outputs, strict=False):
            if name:
                if value.size > _FOLD_LIMIT:
                    raise BadInputError(f"{self.g.where(node)}: folded constant too large")
                self.g.consts[name] = value
                self.g.info[name] = _info(value)

    # -- canonical forms -------------------------------------------------------------------
    def _op_Conv(self, node: onnx.NodeProto) -> None:
        attrs = attributes(node)
        kernel = list(self.g.shape(node.input[1])[2:])
        _pool_attrs(node, attrs, kernel, self.g.shape(node.input[0]), self.g.where(node))
        set_attribute(node, "dilations", attrs.get("dilations", [1] * len(kernel)))
        set_attribute(node, "group", int(attrs.get("group", 1)))
        self._emit(node)

    def _op_MaxPool(self, node: onnx.NodeProto) -> None:
        attrs = attributes(node)
        kernel = list(attrs["kernel_shape"])
        _pool_attrs(node, attrs, kernel, self.g.shape(node.input[0]), self.g.where(node))
        set_attribute(node, "dilations", attrs.get("dilations", [1] * len(kernel)))
        set_attribute(node, "ceil_mode", int(attrs.get("ceil_mode", 0)))
        set_attribute(node, "storage_order", 0)
        if len(node.output) < 2 or not node.output[1]:
            indices = self.g.names.fresh(f"{node.output[0]}_indices")
            del node.output[1:]
            node.output.append(indices)
        self._emit(node)

    def _op_AveragePool(self, node: onnx.NodeProto) -> None:
        attrs = attributes(node)
        kernel = list(attrs["kernel_shape"])
        if any(d != 1 for d in attrs.get("dilations", [])):
            raise BadInputError(f"{self.g.where(node)}: expected AveragePool without dilations")
        _pool_attrs(node, attrs, kernel, self.g.shape(node.input[0]), self.g.where(node))
        for drop in ("dilations",):
            _drop_attribute(node, drop)
        set_attribute(node, "ceil_mode", int(attrs.get("ceil_mode", 0)))
        set_attribute(node, "count_include_pad", int(attrs.get("count_include_pad", 0)))
        self._emit(node)

    def _op_BatchNormalization(self, node: onnx.NodeProto) -> None:
        attrs = attributes(node)
        x, scale, bias, mean, var = node.input[:5]
        for stat in (mean, var):
            if stat not in self.params:
                raise BadInputError(
                    f"{self.g.where(node)}: running statistic {stat!r}: expected an "
                    "initializer or a graph input with an init spec"
                )
        y = node.output[0]
        outs = [y]
        stats = []
        for stat in (mean, var):
            if stat in self.running_stats or self.uses[stat] > 1:
                stat = self._private_copy(stat, node)
            self.running_stats[stat] = self.g.names.fresh(f"{stat}_updated")
            outs.append(self.running_stats[stat])
            stats.append(stat)
        mean, var = stats
        outs += [self.g.names.fresh(f"{y}_saved_mean"), self.g.names.fresh(f"{y}_saved_inv_std")]
        new = helper.make_node(
            "BatchNormInternal",
            [x, scale, bias, mean, var],
            outs,
            name=node.name,
            domain=MS,
            epsilon=float(attrs.get("epsilon", 1e-5)),
            momentum=float(attrs.get("momentum", 0.9)),
            training_mode=1,
        )
        self._emit(new)

    def _private_copy(self, stat: str, node: onnx.NodeProto) -> str:
        """A running statistic of this batch norm alone. Exporters deduplicate initializers
        of equal value (an eval-mode TorchScript export makes one tensor of every all-zeros
        running mean and bias), but each batch norm updates its own statistics."""
        hint = f"{stat}_{node.name or node.output[0]}"
        if stat in self.g.consts:
            copy = self.g.const(self.g.consts[stat].copy(), hint)
            self.copies.add(copy)
        else:  # a graph input with a seeded init spec: a second input, same spec
            copy = self.g.names.fresh(hint)
            self.g.info[copy] = self.g.info[stat]
            self.input_params[copy] = dict(self.input_params[stat])
        self.params.add(copy)
        return copy

    def _op_Dropout(self, node: onnx.NodeProto) -> None:
        ratio_name = node.input[1] if len(node.input) > 1 else ""
        ratio = float(self._const(ratio_name, node, "ratio")) if ratio_name else 0.5
        if ratio == 0.0:
            self.alias[node.output[0]] = node.input[0]
            return
        ratio_const = self.g.const(np.array(ratio, np.float32), f"{node.output[0]}_ratio")
        mode = self.g.const(np.array(True), f"{node.output[0]}_training_mode")
        mask = node.output[1] if len(node.output) > 1 and node.output[1] else ""
        mask = mask or self.g.names.fresh(f"{node.output[0]}_mask")
        new = helper.make_node(
            "Dropout", [node.input[0], ratio_const, mode], [node.output[0], mask], name=node.name
        )
        seed = attributes(node).get("seed")
        if seed is not None:
            set_attribute(new, "seed", int(seed))
        self._emit(new)

    def _op_HardSwish(self, node: onnx.NodeProto) -> None:
        x, y = node.input[0], node.output[0]
        gate = self.g.names.fresh(f"{y}_gate")
        name = self.g.node_names.fresh(gate)
        self._emit(helper.make_node("HardSigmoid", [x], [gate], name=name, alpha=1 / 6, beta=0.5))
        self._emit(helper.make_node("Mul", [x, gate], [y], name=node.name))

    def _op_ReduceMean(self, node: onnx.NodeProto) -> None:
        attrs = attributes(node)
        rank = len(self.g.shape(node.input[0]))
        if len(node.input) > 1 and node.input[1]:  # opset 18: axes as an input
            axes = [int(a) for a in self._const(node.input[1], node, "axes").reshape(-1)]
            del node.input[1:]
        else:
            axes = list(attrs.get("axes", []))
        if not axes:
            if attrs.get("noop_with_empty_axes", 0):
                self.alias[node.output[0]] = node.input[0]
                return
            axes = list(range(rank))
        _drop_attribute(node, "noop_with_empty_axes")
        set_attribute(node, "axes", sorted(a % rank for a in axes))
        set_attribute(node, "keepdims", int(attrs.get("keepdims", 1)))
        self._emit(node)

    def _op_Split(self, node: onnx.NodeProto) -> None:
        attrs = attributes(node)
        shape = self.g.shape(node.input[0])
        axis = int(attrs.get("axis", 0)) % len(shape)
        if len(node.input) > 1 and node.input[1]:
            sizes = [int(s) for s in self._const(node.input[1], node, "split")]
        else:
            parts = len(node.output)
            step = -(-shape[axis] // parts)
            sizes = [min(step, shape[axis] - i * step) for i in range(parts)]
            while len(node.input) < 2:
                node.input.append("")
        node.input[1] = self.g.const(np.array(sizes, np.int64), f"{node.output[0]}_split")
        _drop_attribute(node, "num_outputs")
        set_attribute(node, "axis", axis)
        self._emit(node)

    def _op_Reshape(self, node: onnx.NodeProto) -> None:
        self._rebatch_shape(node, 1)
        self._emit(node)
        concrete = np.array(self.g.shape(node.output[0]), np.int64)
        node.input[1] = self.g.const(concrete, f"{node.output[0]}_shape")
        _drop_attribute(node, "allowzero")

    def _op_Gather(self, node: onnx.NodeProto) -> None:
        shape = self.g.shape(node.input[0])
        axis = int(attributes(node).get("axis", 0)) % len(shape)
        set_attribute(node, "axis", axis)
        if node.input[1] in self.g.consts:
            indices = self.g.consts[node.input[1]].astype(np.int64)
            fixed = indices
            if len(shape) == 1 and node.input[1] in self.from_file:
                fixed = self._rebatch_flat_indices(node.input[0], fixed)
            if fixed is indices:
                self._refuse_batch_indices(node, node.input[0], [axis])
            size = shape[axis]
            if ((fixed < -size) | (fixed >= size)).any():  # a batch index past a new batch
                raise BadInputError(
                    f"{self.g.where(node)}: indices: expected values in [-{size}, {size}) "
                    f"along axis {axis}"
                )
            fixed = np.where(fixed < 0, fixed + size, fixed)  # counted from the end
            if len(shape) == 1 and np.array_equal(fixed.reshape(-1), np.arange(shape[0])):
                # a permutation that permutes nothing (dynamo's as_strided): a Reshape
                target = self.g.const(np.array(fixed.shape, np.int64), f"{node.output[0]}_shape")
                reshape = helper.make_node("Reshape", [node.input[0], target], list(node.output))
                reshape.name = node.name
                self._emit(reshape)
                return
            if not np.array_equal(fixed, indices):
                node.input[1] = self.g.const(fixed, f"{node.output[0]}_indices")
        self._emit(node)

    def _refuse_batch_indices(self, node: onnx.NodeProto, data: str, axes: list[int]) -> None:
        """Constant indices along the batch axis of a static export pick or write the
        export's samples: at another batch no rewrite of them is known to be right."""
        where = self.batch_at.get(data)
        if where is not None and where.axis in axes:
            raise BadInputError(
                f"{self.g.where(node)}: constant indices along the batch (axis {where.axis}, "
                f"exported at batch {self.old_batch}): expected indices along other axes"
            )

    def _rebatch_flat_indices(self, data: str, indices: np.ndarray) -> np.ndarray:
        """Constant indices into a flattened batch (dynamo's as_strided: Reshape to [-1],
        then Gather), exported at another batch: re-written when each sample's indices are
        the first sample's shifted by a whole sample."""
        before = self.export_shapes.get(data)
        old = self.old_batch
        if (
            not self._batch_changed()
            or old is None
            or before is None
            or len(before) != 1
            or before[0] % old
            or self.g.shape(data) != (before[0] // old * self.batch,)  # not the batch's data
            or not indices.ndim
            or indices.shape[0] != old
        ):
            return indices
        per = before[0] // old
        rows = indices.reshape(old, -1)
        if not (rows - rows[:1] == (np.arange(old) * per)[:, None]).all():
            return indices
        rebatched = rows[:1] + (np.arange(self.batch) * per)[:, None]
        return rebatched.reshape(self.batch, *indices.shape[1:])

    def _op_Cast(self, node: onnx.NodeProto) -> None:
        _drop_attribute(node, "saturate")
        if self._same_type(node):
            self.alias[node.output[0]] = node.input[0]
            return
        self._emit(node)

    def _op_CastLike(self, node: onnx.NodeProto) -> None:
        to = helper.np_dtype_to_tensor_dtype(self.g.info[node.input[1]].dtype)
        self._op_Cast(
            helper.make_node("Cast", [node.input[0]], [node.output[0]], name=node.name, to=to)
        )

    def _op_ScatterND(self, node: onnx.NodeProto) -> None:
        """ScatterND into a computed tensor (Swin v2 zeroes a slice of a copy of its qkv
        bias) with constant indices and updates: ``data * keep + placed``, two constants."""
        where = self.g.where(node)
        if str(attributes(node).get("reduction", "none")) != "none":
            raise BadInputError(f"{where}: expected reduction 'none'")
        indices = self._const(node.input[1], node, "indices").astype(np.int64)
        updates = self._const(node.input[2], node, "updates")
        info = self.g.info[node.input[0]]
        k = indices.shape[-1] if indices.ndim else 0
        if not 1 <= k <= len(info.shape):
            raise BadInputError(
                f"{where}: indices of shape {list(indices.shape)}: expected a last axis of 1 "
                f"to {len(info.shape)} components"
            )
        lead = np.array(info.shape[:k], np.int64)
        if ((indices < -lead) | (indices >= lead)).any():
            axes = list(info.shape[:k])
            raise BadInputError(f"{where}: indices: expected values within data's axes {axes}")
        self._refuse_batch_indices(node, node.input[0], list(range(k)))
        expected = [*indices.shape[:-1], *info.shape[k:]]
        if list(updates.shape) != expected:
            raise BadInputError(
                f"{where}: updates of shape {list(updates.shape)}: expected {expected}"
            )
        keep = np.ones(info.shape, info.dtype)
        placed = np.zeros(info.shape, info.dtype)
        where_to = tuple(np.moveaxis(indices, -1, 0))
        keep[where_to] = 0
        placed[where_to] = updates
        y = node.output[0]
        kept = y if not placed.any() else self.g.names.fresh(f"{y}_kept")
        mask = self.g.const(keep, f"{y}_keep")
        self._emit(helper.make_node("Mul", [node.input[0], mask], [kept], name=node.name))
        if placed.any():
            values = self.g.const(placed, f"{y}_placed")
            self._emit(helper.make_node("Add", [kept, values], [y]))

    def _op_Expand(self, node: onnx.NodeProto) -> None:
        self._rebatch_expand(node)
        infos = infer_outputs(self.g, node)
        if infos[0].shape == self.g.shape(node.input[0]):
            self.alias[node.output[0]] = node.input[0]  # expands nothing
            return
        self._emit(node)
        node.input[1] = self.g.const(np.array(infos[0].shape, np.int64), f"{node.output[0]}_shape")

    def _op_Pad(self, node: onnx.NodeProto) -> None:
        rank = len(self.g.shape(node.input[0]))
        attrs = attributes(node)
        pads = [int(v) for v in self._const(node.input[1], node, "pads").reshape(-1)]
        if len(node.input) > 3 and node.input[3]:  # opset 18: pads for the listed axes only
            axes = [int(a) % rank for a in self._const(node.input[3], node, "axes").reshape(-1)]
            full = [0] * (2 * rank)
            for i, a in enumerate(axes):
                full[a], full[a + rank] = pads[i], pads[i + len(axes)]
            pads = full
            del node.input[3:]
        if len(pads) != 2 * rank:
            raise BadInputError(
                f"{self.g.where(node)}: pads: expected {2 * rank} values, got {len(pads)}"
            )
        if len(node.input) > 2 and node.input[2]:
            self._const(node.input[2], node, "constant_value")
        mode = str(attrs.get("mode", "constant"))
        if mode not in ("constant", "reflect", "edge"):
            raise BadInputError(
                f"{self.g.where(node)}: mode {mode!r}: expected constant, reflect or edge"
            )
        if not any(pads):
            self.alias[node.output[0]] = node.input[0]
            return
        set_attribute(node, "mode", mode)
        node.input[1] = self.g.const(np.array(pads, np.int64), f"{node.output[0]}_pads")
        while node.input and not node.input[-1]:
            del node.input[-1]
        self._emit(node)

    def _op_LayerNormalization(self, node: onnx.NodeProto) -> None:
        attrs = attributes(node)
        shape = self.g.shape(node.input[0])
        axis = int(attrs.get("axis", -1)) % len(shape)
        normalized = tuple(shape[axis:])
        if int(attrs.get("stash_type", 1)) != 1:
            raise BadInputError(f"{self.g.where(node)}: expected stash_type 1 (float32)")
        inputs = [node.input[0]]
        for i, what in ((1, "scale"), (2, "bias")):
            name = node.input[i] if len(node.input) > i else ""
            if name:
                name = self._fit(name, normalized, node, what)
            inputs.append(name)
        if not inputs[-1]:
            inputs.pop()
        outputs = [node.output[0]]
        for i, hint in ((1, "mean"), (2, "inv_std_dev")):
            given = node.output[i] if len(node.output) > i else ""
            outputs.append(given or self.g.names.fresh(f"{node.output[0]}_{hint}"))
        new = helper.make_node(
            "LayerNormalization",
            inputs,
            outputs,
            name=node.name,
            axis=axis,
            epsilon=float(attrs.get("epsilon", 1e-5)),
            stash_type=1,
        )
        self._emit(new)

    def _fit(self, name: str, shape: tuple[int, ...], node: onnx.NodeProto, what: str) -> str:
        """``name`` reshaped to ``shape`` (a LayerNormalization scale or bias)."""
        have = self.g.shape(name)
        if have == shape:
            return name
        if int(np.prod(have, dtype=np.int64)) != int(np.prod(shape, dtype=np.int64)):
            raise BadInputError(
                f"{self.g.where(node)}: {what} of shape {list(have)}: expected the normalised "
                f"shape {list(shape)}"
            )
        if name in self.g.consts and not self._is_param(name):
            return self.g.const(self.g.consts[name].reshape(shape), f"{name}_reshaped")
        out = self.g.names.fresh(f"{name}_reshaped")
        target = self.g.const(np.array(shape, np.int64), f"{out}_shape")
        self._emit(helper.make_node("Reshape", [name, target], [out]))
        return out

    def _op_Gelu(self, node: onnx.NodeProto) -> None:
        approximate = str(attributes(node).get("approximate", "none"))
        x, y = node.input[0], node.output[0]
        if approximate == "none":
            self._emit(helper.make_node("Gelu", [x], [y], name=node.name, domain=MS))
            return
        if approximate != "tanh":
            raise BadInputError(f"{self.g.where(node)}: approximate {approximate!r}")
        self._lowered(lower.gelu_tanh(self.g, node))

    def _lowered(self, nodes: list[onnx.NodeProto]) -> None:
        for new in nodes:
            self.visit(new)

    def _op_Einsum(self, node: onnx.NodeProto) -> None:
        self._lowered(lower.einsum(self.g, node))

    def _op_GatherND(self, node: onnx.NodeProto) -> None:
        self._lowered(lower.gather_nd(self.g, node))

    def _op_ReduceL2(self, node: onnx.NodeProto) -> None:
        rank = len(self.g.shape(node.input[0]))
        if len(node.input) > 1 and node.input[1]:  # opset 18: axes as an input
            axes = [int(a) for a in self._const(node.input[1], node, "axes").reshape(-1)]
        else:
            axes = [int(a) for a in attributes(node).get("axes", [])]
        if not axes and attributes(node).get("noop_with_empty_axes", 0):
            raise BadInputError(f"{self.g.where(node)}: expected axes (noop_with_empty_axes)")
        axes = sorted(a % rank for a in axes) if axes else list(range(rank))
        self._lowered(lower.reduce_l2(self.g, node, axes))

    def _op_ReduceSum(self, node: onnx.NodeProto) -> None:
        attrs = attributes(node)
        rank = len(self.g.shape(node.input[0]))
        axes: list[int] = []
        if len(node.input) > 1 and node.input[1]:
            axes = [int(a) for a in self._const(node.input[1], node, "axes").reshape(-1)]
        if not axes:
            if attrs.get("noop_with_empty_axes", 0):
                self.alias[node.output[0]] = node.input[0]
                return
            axes = list(range(rank))
        _drop_attribute(node, "noop_with_empty_axes")
        del node.input[1:]
        node.input.append(
            self.g.const(
                np.array(sorted(a % rank for a in axes), np.int64), f"{node.output[0]}_axes"
            )
        )
        set_attribute(node, "keepdims", int(attrs.get("keepdims", 1)))
        self._emit(node)

    def _op_Pow(self, node: onnx.NodeProto) -> None:
        """A constant exponent of another type than the base (an int 2) in the base's type."""
        exponent = self.g.consts.get(node.input[1])
        dtype = self.g.info[node.input[0]].dtype
        if exponent is not None and exponent.dtype != dtype:
            node.input[1] = self.g.const(exponent.astype(dtype), f"{node.output[0]}_exponent")
        self._emit(node)

    def _op_RandomUniformLike(self, node: onnx.NodeProto) -> None:
        self._random(node)

    def _op_Bernoulli(self, node: onnx.NodeProto) -> None:
        self._random(node)

    def _random(self, node: onnx.NodeProto) -> None:
        """Random noise: explicit dtype (and high/low); a constant "like" input exported at
        another batch (a static export's [N, 1, 1, 1] stochastic-depth noise) re-batched."""
        name = node.input[0]
        if name in self.g.consts and self._batch_changed():
            value = self.g.consts[name]
            if value.ndim and value.shape[0] == self.old_batch and (value == value[:1]).all():
                node.input[0] = self.g.const(
                    np.repeat(value[:1], self.batch, axis=0), f"{name}_rebatched"
                )
        attrs = attributes(node)
        if "dtype" not in attrs:
            dtype = self.g.info[node.input[0]].dtype
            set_attribute(node, "dtype", helper.np_dtype_to_tensor_dtype(dtype))
        if node.op_type == "RandomUniformLike":
            set_attribute(node, "high", float(attrs.get("high", 1.0)))
            set_attribute(node, "low", float(attrs.get("low", 0.0)))
        self._emit(node)

    def _op_Clip(self, node: onnx.NodeProto) -> None:
        for i in (1, 2):
            if len(node.input) > i and node.input[i]:
                self._const(node.input[i], node, "min" if i == 1 else "max")
        self._emit(node)

    def _op_Squeeze(self, node: onnx.NodeProto) -> None:
        if len(node.input) > 1 and node.input[1]:
            self._const(node.input[1], node, "axes")
        self._emit(node)

    def _op_Unsqueeze(self, node: onnx.NodeProto) -> None:
        self._const(node.input[1], node, "axes")
        self._emit(node)

    def _op_Slice(self, node: onnx.NodeProto) -> None:
        for i, what in enumerate(("starts", "ends", "axes", "steps"), start=1):
            if len(node.input) > i and node.input[i]:
                self._const(node.input[i], node, what)
        self._emit(node)

    def _batch_changed(self) -> bool:
        return self.old_batch is not None and self.old_batch != self.batch

    def _rebatch_shape(self, node: onnx.NodeProto, index: int) -> None:
        """A Reshape's shape constant written at the export batch, re-written for the training
        batch. With the export's own shapes (value_info or shape inference of the source), the
        output axis holding the batch is found from where the batch lies in the input
        (:meth:`_place_batch`) or, where that was not followed, by splitting the reshape into
        groups of input and output axes with equal products (see :func:`.rebatch.regroup`);
        without them, a leading dim equal to the export batch becomes the training batch."""
        name = node.input[index]
        target = self._const(name, node, "shape").astype(np.int64).reshape(-1)
        if name not in self.from_file or not self._batch_changed() or not target.size:
            return
        data = self.g.shape(node.input[0])
        before = self.export_shapes.get(node.input[0])
        rebatched: list[int] | None = None
        if before is not None and len(before) == len(data):
            old_target = rebatch.resolve_reshape(
                before, target, attributes(node).get("allowzero", 0)
            )
            if old_target is not None:
                rebatched = self._place_batch(node, before, data, old_target)
                if rebatched is None:
                    rebatched = rebatch.regroup(before, old_target, data, self.old_batch)
                if rebatched is None:
                    raise BadInputError(
                        f"{self.g.where(node)}: shape {list(old_target)} of {list(before)} at "
                        f"export batch {self.old_batch}: expected a reshape that keeps the batch "
                        "in one axis"
                    )
        elif int(target[0]) == self.old_batch and data and data[0] == self.batch:
            rebatched = [self.batch, *(int(t) for t in target[1:])]
        if rebatched is not None and rebatched != [int(t) for t in target]:
            node.input[index] = self.g.const(np.array(rebatched, np.int64), f"{name}_rebatched")

    def _place_batch(
        self,
        node: onnx.NodeProto,
        before: tuple[int, ...],
        data: tuple[int, ...],
        old_target: tuple[int, ...],
    ) -> list[int] | None:
        """A Reshape target re-batched where the batch is known to lie in its input (see
        :meth:`_track`); None where it is not known or disagrees with the export's shapes.
        BadInputError when the reshape splits the batch index over two axes (mixes samples:
        no target at another batch computes the same per sample)."""
        where, old = self.batch_at.get(node.input[0]), self.old_batch
        if where is None or old is None or old == 1 or where.axis >= len(data):
            return None
        axis = where.axis
        others_equal = all(
            b == d for i, (b, d) in enumerate(zip(before, data, strict=True)) if i != axis
        )
        if not others_equal or before[axis] * self.batch != data[axis] * old:
            return None
        found = rebatch.reshape_axis(before, where, old_target, old)
        if found is None:
            raise BadInputError(
                f"{self.g.where(node)}: shape {list(old_target)} of {list(before)} at export "
                f"batch {old}: expected a reshape that keeps the batch (axis {axis}) in one axis"
            )
        rebatched = list(old_target)
        rebatched[found.axis] = rebatched[found.axis] // old * self.batch
        return rebatched

    def _rebatch_expand(self, node: onnx.NodeProto) -> None:
        """An Expand's target shape from the file, exported at another batch: a dim the input
        has (not 1) follows the input (it was the input's own size: [N*windows, ...]); a
        leading target dim over an input dim of 1 that is a multiple of the export batch is
        scaled to the training batch (a class token expanded over the batch; the leading
        axis of a static export's activations is the batch, or the batch times heads or
        windows)."""
        name = node.input[1]
        target = self._const(name, node, "shape").astype(np.int64).reshape(-1)
        if name not in self.from_file or not self._batch_changed() or not target.size:
            return
        data = self.g.shape(node.input[0])
        new = target.copy()
        lead = len(target) - len(data)
        for k, d in enumerate(data):
            if d != 1 and lead + k >= 0 and new[lead + k] not in (1, d):
                new[lead + k] = d
        old = self.old_batch or 1
        if new[0] % old == 0 and (lead > 0 or (lead == 0 and data[0] == 1)):
            new[0] = new[0] // old * self.batch  # the batch, or N*heads, N*windows
        if not np.array_equal(new, target):
            node.input[1] = self.g.const(new, f"{name}_rebatched")


def _info(value: np.ndarray) -> TensorInfo:
    return TensorInfo(tuple(int(d) for d in value.shape), value.dtype)


def _drop_attribute(node: onnx.NodeProto, name: str) -> None:
    for i, attr in enumerate(node.attribute):
        if attr.name == name:
            del node.attribute[i]
            return


def _pool_attrs(
    node: onnx.NodeProto, attrs: dict[str, Any], kernel: list[int], x: tuple[int, ...], where: str
) -> None:
    """Explicit kernel_shape, strides and pads; auto_pad resolved (SAME_* as ONNX defines)."""
    spatial = len(kernel)
    strides = list(attrs.get("strides", [1] * spatial))
    dilations = list(attrs.get("dilations", [1] * spatial))
    pads = list(attrs.get("pads", [0] * (2 * spatial)))
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * spatial)
        for i in range(spatial):
            size = x[2 + i]
            out = -(-size // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size)
            small, big = total // 2, total - total // 2
            pads[i], pads[i + spatial] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        pads = [0] * (2 * spatial)
    elif auto_pad != "NOTSET":
        raise BadInputError(f"{where}: auto_pad {auto_pad!r}: expected NOTSET, SAME_* or VALID")
    _drop_attribute(node, "auto_pad")
    set_attribute(node, "kernel_shape", kernel)
    set_attribute(node, "strides", strides)
    set_attribute(node, "pads", pads)


def _evaluate(
    node: onnx.NodeProto, values: list[np.ndarray | None], opset: int
) -> list[np.ndarray]:
    """Run one standard node on constant inputs with the ONNX reference evaluator."""
    names = [f"in{i}" if v is not None else "" for i, v in enumerate(values)]
    probe = helper.make_node(
        node.op_type, names, [f"out{i}" for i in range(len(node.output))], domain=""
    )
    probe.attribute.extend(node.attribute)
    inputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
        for n, v in zip(names, values, strict=True)
        if v is not None
    ]
    outputs = [helper.make_tensor_value_info(o, 0, None) for o in probe.output]
    model = helper.make_model(
        helper.make_graph([probe], "fold", inputs, outputs),
        opset_imports=[helper.make_opsetid("", opset)],
        ir_version=8,
    )
    feeds = {n: v for n, v in zip(names, values, strict=True) if v is not None}
    results = ReferenceEvaluator(model).run(None, feeds)
    return [np.asarray(r) for r in results]
