"""A small graph builder that knows every tensor's static shape as it goes.

The zoo networks are written against this builder rather than against ``onnx.helper``
directly, for three reasons:

* shapes are computed here, layer by layer, with the ONNX shape formulas, so every tensor
  lands in ``value_info`` without running shape inference on a graph of a thousand nodes;
* parameters are recorded as (name, shape, seeded initialiser spec) and only materialised
  when ``--weights embed`` asks for it, so a 650 GB-footprint network costs a few hundred KB
  of metadata, and parameter counts come from shapes alone;
* node and tensor names follow one scheme (``scope.op``), which keeps kernels and tensors
  readable in profiles and plans.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..ir import INIT_METADATA_KEY, ZOO_METADATA_KEY
from ..weights import materialize

OPSET = 17
IR_VERSION = 8
IMAGES = "images"
LOGITS = "logits"

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ParamRecord:
    """A parameter: its static shape, how to materialise it, and whether SGD updates it."""

    name: str
    shape: Shape
    init: dict[str, Any]
    trainable: bool

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class NodeRecord:
    op_type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict[str, Any] = field(default_factory=dict)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


def _pads(pad: int | Sequence[int]) -> tuple[int, int, int, int]:
    """ONNX pads (top, left, bottom, right) from an int, an (h, w) pair or all four."""
    if isinstance(pad, int):
        return pad, pad, pad, pad
    values = tuple(int(p) for p in pad)
    if len(values) == 2:
        return values[0], values[1], values[0], values[1]
    if len(values) == 4:
        return values[0], values[1], values[2], values[3]
    raise ValueError(f"pads: expected 1, 2 or 4 values, got {pad!r}")


def _window_out(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int) -> int:
    out = (size + pad_begin + pad_end - kernel) // stride + 1
    if out < 1:
        raise ValueError(
            f"a {kernel}-wide window with stride {stride} does not fit a {size}-wide input "
            "(use a larger --image-size)"
        )
    return out


class GraphBuilder:
    """Append layers in execution order; :meth:`model` writes the ONNX file's model."""

    def __init__(
        self, network: str, batch: int, image_size: int, channels: int = 3, seed: int = 0
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch: expected a positive integer, got {batch}")
        self.network = network
        self.batch = batch
        self.image_size = image_size
        self.seed = seed
        self.shapes: dict[str, Shape] = {IMAGES: (batch, channels, image_size, image_size)}
        self.dtypes: dict[str, int] = {}
        self.nodes: list[NodeRecord] = []
        self.params: list[ParamRecord] = []
        self.output: str | None = None
        self._names: set[str] = {IMAGES}

    # -- bookkeeping -------------------------------------------------------------------------

    def _fresh(self, name: str) -> str:
        if name in self._names:
            raise ValueError(f"duplicate tensor or node name {name!r}")
        self._names.add(name)
        return name

    def _node(
        self,
        op_type: str,
        name: str,
        inputs: Sequence[str],
        outputs: Sequence[tuple[str, Shape]],
        **attributes: Any,
    ) -> None:
        out_names = []
        for out, shape in outputs:
            self.shapes[self._fresh(out)] = shape
            out_names.append(out)
        self.nodes.append(NodeRecord(op_type, name, tuple(inputs), tuple(out_names), attributes))

    def param(
        self, name: str, shape: Shape, distribution: str, trainable: bool = True, **extra: Any
    ) -> str:
        """Record a parameter with a seeded initialiser spec (seed derived from its name)."""
        seed = zlib.crc32(f"{self.seed}:{name}".encode())
        spec: dict[str, Any] = {"distribution": distribution, "seed": seed, **extra}
        self.shapes[self._fresh(name)] = shape
        self.params.append(ParamRecord(name, shape, spec, trainable))
        return name

    def shape(self, tensor: str) -> Shape:
        return self.shapes[tensor]

    # -- layers ------------------------------------------------------------------------------

    def conv(
        self,
        x: str,
        name: str,
        out_channels: int,
        kernel: int | Sequence[int],
        stride: int = 1,
        pad: int | Sequence[int] = 0,
        bias: bool = False,
    ) -> str:
        n, c, h, w = self.shape(x)
        kh, kw = _pair(kernel)
        top, left, bottom, right = _pads(pad)
        fan_in = c * kh * kw
        weight = self.param(f"{name}.weight", (out_channels, c, kh, kw), "he_normal", fan_in=fan_in)
        inputs = [x, weight]
        if bias:
            inputs.append(self.param(f"{name}.bias", (out_channels,), "zeros"))
        out_shape = (
            n,
            out_channels,
            _window_out(h, kh, stride, top, bottom),
            _window_out(w, kw, stride, left, right),
        )
        self._node(
            "Conv",
            name,
            inputs,
            [(f"{name}.out", out_shape)],
            kernel_shape=[kh, kw],
            strides=[stride, stride],
            pads=[top, left, bottom, right],
            dilations=[1, 1],
            group=1,
        )
        return f"{name}.out"

    def batchnorm(self, x: str, name: str, epsilon: float = 1e-5, momentum: float = 0.9) -> str:
        channels = self.shape(x)[1]
        inputs = [
            x,
            self.param(f"{name}.weight", (channels,), "ones"),
            self.param(f"{name}.bias", (channels,), "zeros"),
            self.param(f"{name}.running_mean", (channels,), "zeros", trainable=False),
            self.param(f"{name}.running_var", (channels,), "ones", trainable=False),
        ]
        self._node(
            "BatchNormalization",
            name,
            inputs,
            [(f"{name}.out", self.shape(x))],
            epsilon=epsilon,
            momentum=momentum,
        )
        return f"{name}.out"

    def relu(self, x: str, name: str) -> str:
        self._node("Relu", name, [x], [(f"{name}.out", self.shape(x))])
        return f"{name}.out"

    def conv_bn_relu(
        self,
        x: str,
        name: str,
        out_channels: int,
        kernel: int | Sequence[int],
        stride: int = 1,
        pad: int | Sequence[int] = 0,
        epsilon: float = 1e-5,
    ) -> str:
        y = self.conv(x, f"{name}.conv", out_channels, kernel, stride, pad)
        y = self.batchnorm(y, f"{name}.bn", epsilon)
        return self.relu(y, f"{name}.relu")

    def bn_relu_conv(
        self,
        x: str,
        name: str,
        out_channels: int,
        kernel: int | Sequence[int],
        stride: int = 1,
        pad: int | Sequence[int] = 0,
    ) -> str:
        """The pre-activation ordering DenseNet uses."""
        y = self.batchnorm(x, f"{name}.bn")
        y = self.relu(y, f"{name}.relu")
        return self.conv(y, f"{name}.conv", out_channels, kernel, stride, pad)

    def _pool(
        self,
        op_type: str,
        x: str,
        name: str,
        kernel: int,
        stride: int,
        pad: int,
        **attributes: Any,
    ) -> str:
        n, c, h, w = self.shape(x)
        out_shape = (
            n,
            c,
            _window_out(h, kernel, stride, pad, pad),
            _window_out(w, kernel, stride, pad, pad),
        )
        self._node(
            op_type,
            name,
            [x],
            [(f"{name}.out", out_shape)],
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad, pad, pad, pad],
            **attributes,
        )
        return f"{name}.out"

    def maxpool(self, x: str, name: str, kernel: int, stride: int, pad: int = 0) -> str:
        return self._pool("MaxPool", x, name, kernel, stride, pad)

    def avgpool(self, x: str, name: str, kernel: int, stride: int, pad: int = 0) -> str:
        """Average pooling that excludes padding from the divisor (count_include_pad=0)."""
        return self._pool("AveragePool", x, name, kernel, stride, pad, count_include_pad=0)

    def global_avgpool(self, x: str, name: str) -> str:
        n, c, _, _ = self.shape(x)
        self._node("GlobalAveragePool", name, [x], [(f"{name}.out", (n, c, 1, 1))])
        return f"{name}.out"

    def concat(self, xs: Sequence[str], name: str) -> str:
        shapes = [self.shape(x) for x in xs]
        n, _, h, w = shapes[0]
        if any(s[0] != n or s[2:] != (h, w) for s in shapes):
            raise ValueError(f"{name}: concat inputs disagree outside the channel axis: {shapes}")
        out_shape = (n, sum(s[1] for s in shapes), h, w)
        self._node("Concat", name, xs, [(f"{name}.out", out_shape)], axis=1)
        return f"{name}.out"

    def add(self, a: str, b: str, name: str) -> str:
        if self.shape(a) != self.shape(b):
            raise ValueError(f"{name}: Add of {self.shape(a)} and {self.shape(b)}")
        self._node("Add", name, [a, b], [(f"{name}.out", self.shape(a))])
        return f"{name}.out"

    def flatten(self, x: str, name: str) -> str:
        shape = self.shape(x)
        self._node(
            "Flatten", name, [x], [(f"{name}.out", (shape[0], math.prod(shape[1:])))], axis=1
        )
        return f"{name}.out"

    def gemm(self, x: str, name: str, out_features: int) -> str:
        n, in_features = self.shape(x)
        weight = self.param(
            f"{name}.weight", (out_features, in_features), "he_normal", fan_in=in_features
        )
        bias = self.param(f"{name}.bias", (out_features,), "zeros")
        self._node("Gemm", name, [x, weight, bias], [(f"{name}.out", (n, out_features))], transB=1)
        return f"{name}.out"

    def dropout(self, x: str, name: str, ratio: float) -> str:
        """Dropout with the given ratio; a ratio of 0 writes nothing (Dropout would be Identity)."""
        if ratio <= 0:
            return x
        ratio_name = self.param_constant(f"{name}.ratio", np.array(ratio, dtype=np.float32))
        self._node("Dropout", name, [x, ratio_name], [(f"{name}.out", self.shape(x))])
        return f"{name}.out"

    def param_constant(self, name: str, value: np.ndarray) -> str:
        """A small constant input of an op (not a parameter): written as a Constant node."""
        self._node(
            "Constant",
            f"{name}.const",
            [],
            [(name, tuple(value.shape))],
            value=numpy_helper.from_array(value, name),
        )
        self.dtypes[name] = helper.np_dtype_to_tensor_dtype(value.dtype)
        return name

    def classifier(self, x: str, classes: int, name: str = "fc") -> str:
        """The final Gemm, named so that the graph's output is ``logits``."""
        y = self.gemm(x, name, classes)
        self.output = y
        return y

    # -- results -----------------------------------------------------------------------------

    def parameter_count(self, trainable_only: bool = True) -> int:
        return sum(p.size for p in self.params if p.trainable or not trainable_only)

    def parameter_bytes(self) -> int:
        return 4 * self.parameter_count(trainable_only=False)

    def model(self, weights: str = "seeded", classes: int | None = None) -> onnx.ModelProto:
        """The ONNX model: parameters as shaped graph inputs (seeded) or initializers (embed)."""
        if self.output is None:
            raise ValueError(f"{self.network}: the builder has no classifier output")
        if weights not in ("seeded", "embed"):
            raise ValueError(f"weights: expected 'seeded' or 'embed', got {weights!r}")
        f32 = TensorProto.FLOAT
        renamed = {self.output: LOGITS}
        nodes = [
            helper.make_node(
                rec.op_type,
                [renamed.get(i, i) for i in rec.inputs],
                [renamed.get(o, o) for o in rec.outputs],
                name=rec.name,
                **rec.attributes,
            )
            for rec in self.nodes
        ]
        params = {p.name for p in self.params}
        inputs = [helper.make_tensor_value_info(IMAGES, f32, list(self.shapes[IMAGES]))]
        initializers = []
        if weights == "seeded":
            inputs += [
                helper.make_tensor_value_info(p.name, f32, list(p.shape)) for p in self.params
            ]
        else:
            initializers = [
                numpy_helper.from_array(materialize(p.init, p.shape, np.float32), p.name)
                for p in self.params
            ]
        skip = params | {IMAGES, self.output}
        value_info = [
            helper.make_tensor_value_info(name, self.dtypes.get(name, f32), list(shape))
            for name, shape in self.shapes.items()
            if name not in skip
        ]
        graph = helper.make_graph(
            nodes,
            self.network,
            inputs=inputs,
            outputs=[helper.make_tensor_value_info(LOGITS, f32, list(self.shapes[self.output]))],
            initializer=initializers,
            value_info=value_info,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="autotm-graph",
            doc_string=f"autotm-graph zoo {self.network} (batch {self.batch})",
        )
        model.ir_version = IR_VERSION
        props = {
            ZOO_METADATA_KEY: json.dumps(
                {
                    "network": self.network,
                    "batch": self.batch,
                    "image_size": self.image_size,
                    "classes": classes if classes is not None else self.shapes[self.output][1],
                    "weights": weights,
                    "seed": self.seed,
                },
                sort_keys=True,
            )
        }
        if weights == "seeded":
            props[INIT_METADATA_KEY] = json.dumps(
                {p.name: p.init for p in self.params}, separators=(",", ":")
            )
        helper.set_model_props(model, props)
        return model
