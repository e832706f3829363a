"""The graph IR every tool past autotm-graph works on: nodes in execution order, tensors with
static shapes, kinds, producers, users and lifetimes.

It is read from an ONNX file and never written back: the ONNX file stays the artefact that
crosses tool boundaries. The IR checks the training-graph conventions
(schemas/src/autotm_schemas/contracts/onnx-training-graph.md) in :func:`verify_training_graph`,
apart from the code that reads the file, so a reader can load an inference graph too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from autotm_schemas import BadInputError
from onnx import helper, numpy_helper

TRAINING_METADATA_KEY = "autotm.training"
TRAINING_FORMAT = "autotm.training/1"
#: Seeded initialiser specs of an inference graph's weight-less parameters ({name: spec}),
#: written by `autotm-graph zoo --weights seeded`; a training graph keeps them in
#: ``autotm.training`` instead.
INIT_METADATA_KEY = "autotm.init"
#: What `autotm-graph zoo` built: {"network", "batch", "image_size", "classes", ...}.
ZOO_METADATA_KEY = "autotm.zoo"
#: BatchNormalization input positions that hold running statistics (not trained by SGD).
_RUNNING_STAT_INPUTS = (3, 4)
TENSOR_KINDS = (
    "parameter",
    "input",
    "activation",
    "gradient",
    "updated_parameter",
    "constant",
    "output",
)


@dataclass(frozen=True)
class Node:
    """One node of the execution order."""

    index: int
    name: str
    op_type: str
    domain: str
    inputs: tuple[str, ...]  # "" marks an omitted optional input
    outputs: tuple[str, ...]  # "" marks an omitted optional output
    attributes: Mapping[str, Any]  # python values; tensors as numpy arrays


@dataclass(frozen=True)
class Tensor:
    """A tensor with its static shape, size and place in the iteration."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    kind: str
    producer: int | None
    users: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


@dataclass(frozen=True)
class Parameter:
    """A tensor that persists across iterations: a weight or a running statistic."""

    name: str
    updated: str | None
    trainable: bool
    init: Mapping[str, Any] | None  # seeded initialiser spec; None when the file holds data


@dataclass(frozen=True)
class TrainingMeta:
    """The ``autotm.training`` metadata of a training graph."""

    network: str
    batch: int
    loss: str
    learning_rate: float
    data_inputs: tuple[str, ...]
    parameters: tuple[Parameter, ...]


@dataclass
class Graph:
    """A loaded ONNX graph in execution order."""

    path: str
    sha256: str
    model: onnx.ModelProto
    nodes: list[Node]
    tensors: dict[str, Tensor]
    meta: TrainingMeta | None
    initializer_names: frozenset[str] = field(default_factory=frozenset)
    init_specs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def network(self) -> str:
        """The training metadata's name, else the zoo's (``autotm.zoo``), else the file stem."""
        if self.meta is not None:
            return self.meta.network
        props = {p.key: p.value for p in self.model.metadata_props}
        try:
            name = json.loads(props.get(ZOO_METADATA_KEY, "{}")).get("network")
        except (json.JSONDecodeError, AttributeError):
            name = None
        return name if isinstance(name, str) and name else Path(self.path).stem

    @cached_property
    def parameters(self) -> tuple[Parameter, ...]:
        """Every tensor that persists across iterations, in a stable order.

        A training graph lists them in its metadata. For an inference graph they are the
        tensors of kind ``parameter`` (float initializers and seeded inputs); those read only
        as BatchNormalization running statistics are not trainable, and none has an
        ``updated`` tensor yet.
        """
        if self.meta is not None:
            return self.meta.parameters
        params = []
        for tensor in self.iter_tensors("parameter"):
            trainable = not tensor.users or any(
                not self._is_running_statistic_use(tensor.name, self.nodes[u]) for u in tensor.users
            )
            init = self.init_specs.get(tensor.name)
            params.append(
                Parameter(tensor.name, None, trainable, dict(init) if init is not None else None)
            )
        return tuple(params)

    def initializer(self, name: str) -> np.ndarray:
        """The data of an initializer (constants and embedded parameters)."""
        return self._initializers[name]

    @cached_property
    def _initializers(self) -> dict[str, np.ndarray]:
        return {t.name: numpy_helper.to_array(t) for t in self.model.graph.initializer}

    def lifetime(self, name: str) -> tuple[int, int]:
        """First and last node index at which the tensor must exist (inclusive).

        Parameters live for the whole iteration; updated parameters and outputs from their
        producer to the end (they are the iteration's result); everything else from its producer
        (or the first node) to its last user.
        """
        tensor = self.tensors[name]
        last_node = len(self.nodes) - 1
        start = tensor.producer if tensor.producer is not None else 0
        if tensor.kind == "parameter" or tensor.kind in ("updated_parameter", "output"):
            return start, last_node
        end = max(tensor.users) if tensor.users else start
        return start, max(start, end)

    def live_bytes_per_node(self) -> np.ndarray:
        """Bytes of all tensors live at each node, everything in one tier (no scratch)."""
        delta = np.zeros(len(self.nodes) + 1, dtype=np.int64)
        for name, tensor in self.tensors.items():
            start, end = self.lifetime(name)
            delta[start] += tensor.nbytes
            delta[end + 1] -= tensor.nbytes
        return np.cumsum(delta[:-1])

    def peak_live_bytes(self) -> int:
        """The all-fast footprint of the execution order, without kernel scratch space."""
        live = self.live_bytes_per_node()
        return int(live.max()) if len(live) else 0

    @staticmethod
    def _is_running_statistic_use(name: str, node: Node) -> bool:
        return node.op_type == "BatchNormalization" and all(
            i in _RUNNING_STAT_INPUTS for i, n in enumerate(node.inputs) if n == name
        )

    def parameter_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values() if t.kind == "parameter")

    def parameter_count(self, trainable_only: bool = True) -> int:
        """Number of parameter elements (trainable ones only, as papers count them)."""
        return sum(
            int(np.prod(self.tensors[p.name].shape, dtype=np.int64))
            for p in self.parameters
            if p.trainable or not trainable_only
        )

    def op_histogram(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            key = f"{node.domain}.{node.op_type}" if node.domain else node.op_type
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def iter_tensors(self, kind: str) -> Iterator[Tensor]:
        return (t for t in self.tensors.values() if t.kind == kind)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_model(path: str | Path) -> onnx.ModelProto:
    """Load an ONNX file, reading external data only from inside the model's own folder."""
    model_path = Path(path)
    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except FileNotFoundError:
        raise BadInputError(f"{path}: expected an existing ONNX file") from None
    except Exception as exc:  # onnx raises DecodeError and friends for non-ONNX bytes
        raise BadInputError(f"{path}: expected an ONNX model ({type(exc).__name__})") from None
    base = model_path.resolve().parent
    for tensor in _tensors_with_external_data(model):
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (base / location).resolve()
        if Path(location).is_absolute() or not target.is_relative_to(base):
            raise BadInputError(
                f"{path}: initializer {tensor.name!r}: expected external data inside the model's "
                f"folder, got location {location!r}"
            )
        if not target.is_file():
            raise BadInputError(
                f"{path}: initializer {tensor.name!r}: external data file {location!r} is missing"
            )
    if any(True for _ in _tensors_with_external_data(model)):
        onnx.load_external_data_for_model(model, str(base))
    return model


def _tensors_with_external_data(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            yield tensor


def _attribute_values(node: onnx.NodeProto) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode("utf-8") for v in value]
        values[attr.name] = value
    return values


def _static_shapes(
    model: onnx.ModelProto, path: str
) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
    """Shape and dtype of every named tensor; training graphs carry them in value_info."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # shape inference is a help, not a requirement: value_info must suffice
        inferred = model
    shapes: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] = {}
    graph = inferred.graph
    for init in graph.initializer:
        shapes[init.name] = (
            tuple(int(d) for d in init.dims),
            helper.tensor_dtype_to_np_dtype(init.data_type),
        )
    for info in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = info.type.tensor_type
        if not tensor_type.HasField("shape") or tensor_type.elem_type == 0:
            continue
        dims = []
        for dim in tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                raise BadInputError(
                    f"{path}: tensor {info.name!r}: expected a static shape, got dimension "
                    f"{dim.dim_param or '?'!r} (build the graph at a fixed --batch)"
                )
            dims.append(int(dim.dim_value))
        shapes.setdefault(
            info.name, (tuple(dims), helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
        )
    for node in graph.node:  # Constant nodes: the value attribute gives shape and dtype
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            value = _attribute_values(node).get("value")
            if isinstance(value, np.ndarray):
                shapes.setdefault(node.output[0], (tuple(value.shape), value.dtype))
    return shapes


def _training_meta(model: onnx.ModelProto, path: str) -> TrainingMeta | None:
    props = {p.key: p.value for p in model.metadata_props}
    if TRAINING_METADATA_KEY not in props:
        return None
    try:
        raw = json.loads(props[TRAINING_METADATA_KEY])
        if raw.get("format") != TRAINING_FORMAT:
            raise BadInputError(
                f"{path}: metadata {TRAINING_METADATA_KEY}.format: expected {TRAINING_FORMAT!r}, got {raw.get('format')!r}"
            )
        parameters = tuple(
            Parameter(
                name=p["name"],
                updated=p.get("updated"),
                trainable=bool(p.get("trainable", True)),
                init=p.get("init"),
            )
            for p in raw["parameters"]
        )
        return TrainingMeta(
            network=str(raw["network"]),
            batch=int(raw["batch"]),
            loss=str(raw["loss"]),
            learning_rate=float(raw["optimizer"]["learning_rate"]),
            data_inputs=tuple(raw["data_inputs"]),
            parameters=parameters,
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise BadInputError(
            f"{path}: metadata {TRAINING_METADATA_KEY}: expected the training-graph fields ({exc})"
        ) from None


@dataclass(frozen=True)
class _KindContext:
    """What deciding a tensor's kind needs, as sets (a large graph has ten thousand tensors)."""

    training: bool
    parameters: frozenset[str]  # training: metadata; inference: seeded inputs (autotm.init)
    updated: frozenset[str]
    data_inputs: frozenset[str]
    graph_inputs: frozenset[str]
    graph_outputs: frozenset[str]
    initializers: frozenset[str]
    constant_outputs: frozenset[str]  # outputs of Constant nodes
    loss_node: int | None


def _tensor_kind(name: str, producer: int | None, dtype: np.dtype[Any], ctx: _KindContext) -> str:
    if name in ctx.parameters:
        return "parameter"
    if ctx.training:
        if name in ctx.updated:
            return "updated_parameter"
        if name in ctx.data_inputs:
            return "input"
    if name in ctx.graph_outputs:
        return "output"
    if name in ctx.constant_outputs:
        return "constant"
    if producer is None:
        if name in ctx.graph_inputs:
            return "input"
        # An inference graph's float initializers are its weights; integer ones (Reshape
        # shapes and the like) are constants.
        if not ctx.training and name in ctx.initializers and np.issubdtype(dtype, np.floating):
            return "parameter"
        return "constant"
    if ctx.loss_node is not None and producer > ctx.loss_node:
        return "gradient"
    return "activation"


def _init_specs(model: onnx.ModelProto, path: str) -> dict[str, dict[str, Any]]:
    """The ``autotm.init`` metadata of an inference graph: {parameter name: seeded spec}."""
    props = {p.key: p.value for p in model.metadata_props}
    if INIT_METADATA_KEY not in props:
        return {}
    try:
        raw = json.loads(props[INIT_METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise BadInputError(
            f"{path}: metadata {INIT_METADATA_KEY}: expected JSON ({exc.msg})"
        ) from None
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise BadInputError(
            f"{path}: metadata {INIT_METADATA_KEY}: expected an object of init specs by name"
        )
    return raw


def load_graph(path: str | Path) -> Graph:
    """Read an ONNX file into the IR. Node order is taken as the execution order."""
    name = str(path)
    model = load_model(path)
    shapes = _static_shapes(model, name)
    meta = _training_meta(model, name)
    graph = model.graph

    nodes: list[Node] = []
    producers: dict[str, int] = {}
    users: dict[str, list[int]] = {}
    for index, proto in enumerate(graph.node):
        node = Node(
            index=index,
            name=proto.name or f"{proto.op_type}_{index}",
            op_type=proto.op_type,
            domain="" if proto.domain == "ai.onnx" else proto.domain,
            inputs=tuple(proto.input),
            outputs=tuple(proto.output),
            attributes=_attribute_values(proto),
        )
        nodes.append(node)
        for tensor in node.inputs:
            if tensor and index not in users.setdefault(tensor, []):
                users[tensor].append(index)
        for tensor in node.outputs:
            if tensor:
                producers[tensor] = index

    initializers = {t.name for t in graph.initializer}
    graph_inputs = {i.name for i in graph.input} - initializers
    graph_outputs = {o.name for o in graph.output}
    init_specs = _init_specs(model, name) if meta is None else {}
    for param_name in init_specs:
        if param_name not in graph_inputs:
            raise BadInputError(
                f"{name}: metadata {INIT_METADATA_KEY}: {param_name!r} is not a graph input"
            )
    ctx = _KindContext(
        training=meta is not None,
        parameters=frozenset(p.name for p in meta.parameters) if meta else frozenset(init_specs),
        updated=frozenset(p.updated for p in meta.parameters if p.updated) if meta else frozenset(),
        data_inputs=frozenset(meta.data_inputs) if meta else frozenset(),
        graph_inputs=frozenset(graph_inputs),
        graph_outputs=frozenset(graph_outputs),
        initializers=frozenset(initializers),
        constant_outputs=frozenset(
            o for n in nodes if n.op_type == "Constant" and not n.domain for o in n.outputs if o
        ),
        loss_node=producers.get(meta.loss) if meta else None,
    )
    names = list(
        dict.fromkeys(
            [
                *initializers,
                *graph_inputs,
                *(t for n in nodes for t in (*n.inputs, *n.outputs) if t),
            ]
        )
    )
    tensors: dict[str, Tensor] = {}
    for tensor_name in names:
        if tensor_name not in shapes:
            raise BadInputError(
                f"{name}: tensor {tensor_name!r}: expected a shape and element type in value_info"
            )
        shape, dtype = shapes[tensor_name]
        producer = producers.get(tensor_name)
        kind = _tensor_kind(tensor_name, producer, np.dtype(dtype), ctx)
        tensors[tensor_name] = Tensor(
            tensor_name, shape, np.dtype(dtype), kind, producer, tuple(users.get(tensor_name, ()))
        )
    return Graph(
        path=name,
        sha256=file_sha256(path),
        model=model,
        nodes=nodes,
        tensors=tensors,
        meta=meta,
        initializer_names=frozenset(initializers),
        init_specs=init_specs,
    )


def verify_training_graph(graph: Graph) -> None:
    """Check the training-graph conventions; raise BadInputError naming the rule broken."""
    where = graph.path
    if graph.meta is None:
        raise BadInputError(
            f"{where}: metadata {TRAINING_METADATA_KEY}: expected a training graph (run `autotm-graph train` first)"
        )
    available = set(graph.initializer_names) | {i.name for i in graph.model.graph.input}
    for node in graph.nodes:
        for tensor in node.inputs:
            if tensor and tensor not in available:
                raise BadInputError(
                    f"{where}: node {node.name!r}: input {tensor!r} is used before it is produced "
                    "(expected node order to be a topological execution order)"
                )
        available.update(t for t in node.outputs if t)
    outputs = {o.name for o in graph.model.graph.output}
    for param in graph.meta.parameters:
        if param.name not in graph.tensors:
            raise BadInputError(
                f"{where}: metadata parameters: {param.name!r} is not a tensor of the graph"
            )
        if param.updated is not None and param.updated not in outputs:
            raise BadInputError(
                f"{where}: metadata parameters: updated tensor {param.updated!r} is not a graph output"
            )
        if param.init is None and param.name not in graph.initializer_names:
            raise BadInputError(
                f"{where}: parameter {param.name!r}: expected an initializer or a seeded init spec"
            )
    if graph.meta.loss not in graph.tensors:
        raise BadInputError(
            f"{where}: metadata loss: {graph.meta.loss!r} is not a tensor of the graph"
        )


def canonical_attributes(node: Node) -> str:
    """A node's attributes as canonical JSON (sorted keys; arrays as nested lists with dtype)."""

    def plain(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return {
                "dtype": str(value.dtype),
                "shape": list(value.shape),
                "data": value.ravel().tolist(),
            }
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    return json.dumps(
        {k: plain(v) for k, v in node.attributes.items()}, sort_keys=True, separators=(",", ":")
    )


def kernel_key(graph: Graph, node: Node) -> str:
    """Identity of the kernel a node runs: op, attributes, input and output shapes and dtypes.

    Equal keys mean the executor runs identical code on identically shaped data, so one timing
    serves every node with the key. The key is a short hash, stable across runs, processes and
    machines; its inputs are spelled out so two tools computing it always agree.
    """

    def spec(name: str) -> str:
        if not name:
            return "-"
        tensor = graph.tensors[name]
        return f"{tensor.dtype.name}[{','.join(map(str, tensor.shape))}]"

    text = "|".join(
        [
            node.domain or "ai.onnx",
            node.op_type,
            canonical_attributes(node),
            ";".join(spec(n) for n in node.inputs),
            ";".join(spec(n) for n in node.outputs),
        ]
    )
    return f"{node.op_type}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
