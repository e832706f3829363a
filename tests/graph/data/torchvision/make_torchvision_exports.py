"""Export one torchvision image classifier of each family to ONNX, weights stripped.

The files feed tests/graph/test_train_torchvision.py, which runs each through
`autotm-graph train`. Not run by the tests (torch is not a project dependency). To
regenerate, in a throwaway venv outside the repository (torch and torchvision come from
the machine's wheel cache; a CUDA build that runs on CPU):

    python3 -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 onnx onnxscript
    /tmp/tvenv/bin/python tests/graph/data/torchvision/make_torchvision_exports.py [FAMILY ...]

then refresh the per-file status (with the project's venv):

    .venv/bin/python tests/graph/data/torchvision/status.py

What it writes, for every family in FAMILIES: ``{family}_{exporter}_{mode}.onnx`` with
exporter ``torchscript`` (``torch.onnx.export(dynamo=False, opset_version=17)``, batch axis
dynamic) or ``dynamo`` (``torch.onnx.export(dynamo=True)`` at its default opset, 20 with
torch 2.14, static shapes), mode ``eval`` or ``train``, all at batch 2 and 10 classes. A
file over 100 kB is written gzip-compressed as ``NAME.onnx.gz`` (TorchScript's Swin, Swin v2
and MaxViT graphs, with thousands of shape-arithmetic nodes, and Inception-v3). Models are
built with torchvision's own classes, narrowed and shortened through their constructor
arguments where the class has such arguments (the FAMILIES table says how), otherwise the
named builder at the smallest image size both exporters accept (AlexNet and VGG need 224:
TorchScript exports their adaptive pooling to 6x6 and 7x7 only from a multiple of that).

What each exporter does with training mode:

* TorchScript, ``training=TrainingMode.TRAINING`` (model in train mode, constant folding
  off): BatchNormalization with ``training_mode=1`` (batch statistics; the running-statistic
  outputs unused), Dropout in training mode (ratio 0 included), stochastic depth
  (EfficientNet, ConvNeXt, Swin) as RandomUniformLike + Less. In eval mode (constant folding
  on, the default) every BatchNormalization that follows a Conv is folded into it, Dropout
  disappears, and computations on parameters alone are folded into constants (the
  relative position bias Swin and MaxViT gather from their tables: it stays as data).
* Dynamo (``model.train()`` before export; the exporter has no training argument): the FX
  graph holds ``_native_batch_norm_legit_functional(training=True)``, but the ONNX
  translation writes an inference-mode BatchNormalization (running statistics, no update).
  Dropout stays random (Dropout in training mode; an in-place dropout and stochastic depth
  become RandomUniformLike + Less, their shape template a constant at batch 2). So a dynamo
  "train" file differs from its "eval" file only in its random ops.

Dynamo's own optimizer (what ``optimize=True`` runs) is applied here after the weights are
stripped: run on the exported weights it folds every BatchNormalization into its Conv,
training mode or not, and folds computations on parameters into new constants (a ViT's
class token becomes an Expand result at batch 2; a Swin v2's position-bias MLP output
becomes 100 kB tensors), which would leave nothing to train there.

Weight stripping keeps the files small: every float initializer that is a parameter becomes
a graph input with a static shape and a seeded initialiser spec in the ``autotm.init``
metadata (the conventions in schemas/src/autotm_schemas/contracts/onnx-training-graph.md):
``he_normal`` (fan_in = input features x kernel area) for Conv/Linear/attention projection
weights, ``zeros`` for biases, norm shifts and BN running means, ``ones`` for norm scales and
BN running variances, ``normal`` (std 0.02) for class tokens, positional embeddings, relative
position bias tables, layer scales and logit scales; each spec's seed is a CRC-32 of the
family and the parameter's name, so a parameter name has the same values in every file of
its family. A parameter is recognised by its state-dict name, or, for a tensor the
exporter computed (a BatchNormalization folded into a Conv gives a new weight and bias), by
the op and input slot that reads it. Everything else (index tables, coordinate tables,
masks, shape constants) keeps its data. Before export every parameter and running statistic
gets a distinct random value: TorchScript's eval export merges initializers with equal
values into one read through Identity nodes, which would tie, say, every LayerNorm scale
into one parameter (the values are stripped anyway). Also dropped: node metadata (dynamo's
stack traces) and doc strings; TorchScript's scoped names are shortened (``_short``).
Metadata ``autotm.export`` records what was built.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import sys
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir
import onnxscript
import torch
import torchvision
from onnx import helper
from torch import nn
from torchvision import models
from torchvision.models import convnext, efficientnet, regnet, resnet, swin_transformer, vgg

HERE = Path(__file__).resolve().parent
BATCH = 2
CLASSES = 10
EMBEDDING_STD = 0.02
GZIP_ABOVE = 100_000  # bytes: bigger graphs are shipped as NAME.onnx.gz


@dataclass(frozen=True)
class Family:
    """One torchvision family: how to build it small, and the image size to export at."""

    name: str
    build: Callable[[], nn.Module]
    image: int
    recipe: str  # the constructor call, for the metadata and the docs


def _swin_v2() -> nn.Module:
    return models.SwinTransformer(
        patch_size=[2, 2],
        embed_dim=16,
        depths=[2, 2],
        num_heads=[2, 4],
        window_size=[4, 4],
        num_classes=CLASSES,
        block=swin_transformer.SwinTransformerBlockV2,
        downsample_layer=swin_transformer.PatchMergingV2,
    )


def _efficientnet() -> nn.Module:
    setting, last = efficientnet._efficientnet_conf(
        "efficientnet_b0", width_mult=0.5, depth_mult=0.5
    )
    return models.EfficientNet(setting, dropout=0.2, last_channel=last, num_classes=CLASSES)


VGG_CFG: list[int | str] = [16, "M", 32, "M", 64, "M", 128, "M", 512, "M"]
MOBILENET_V2_SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2], [6, 64, 1, 2], [6, 96, 1, 1]]

FAMILIES = [
    Family("alexnet", lambda: models.alexnet(num_classes=CLASSES), 224, "alexnet(num_classes=10)"),
    Family(
        "vgg",
        lambda: models.VGG(vgg.make_layers(VGG_CFG, batch_norm=True), num_classes=CLASSES),
        224,
        f"VGG(make_layers({VGG_CFG}, batch_norm=True)) (vgg11_bn shape, narrower convs; "
        "the classifier needs 512x7x7 features, hence 224x224 images)",
    ),
    Family("resnet", lambda: models.resnet18(num_classes=CLASSES), 32, "resnet18(num_classes=10)"),
    Family(
        "resnext",
        lambda: models.ResNet(
            resnet.Bottleneck, [1, 1, 1, 1], groups=8, width_per_group=4, num_classes=CLASSES
        ),
        32,
        "ResNet(Bottleneck, [1, 1, 1, 1], groups=8, width_per_group=4) (grouped 3x3 convs)",
    ),
    Family(
        "squeezenet",
        lambda: models.squeezenet1_1(num_classes=CLASSES),
        32,
        "squeezenet1_1(num_classes=10)",
    ),
    Family(
        "densenet",
        lambda: models.DenseNet(
            growth_rate=8,
            block_config=(2, 2, 2, 2),
            num_init_features=16,
            bn_size=2,
            num_classes=CLASSES,
        ),
        32,
        "DenseNet(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, bn_size=2)",
    ),
    Family(
        "googlenet",
        lambda: models.GoogLeNet(num_classes=CLASSES, aux_logits=False, init_weights=False),
        32,
        "GoogLeNet(aux_logits=False, init_weights=False)",
    ),
    Family(
        "inception_v3",
        lambda: models.Inception3(num_classes=CLASSES, aux_logits=False, init_weights=False),
        75,
        "Inception3(aux_logits=False, init_weights=False)",
    ),
    Family(
        "mobilenet_v2",
        lambda: models.MobileNetV2(
            num_classes=CLASSES, width_mult=0.5, inverted_residual_setting=MOBILENET_V2_SETTING
        ),
        32,
        f"MobileNetV2(width_mult=0.5, inverted_residual_setting={MOBILENET_V2_SETTING})",
    ),
    Family(
        "mobilenet_v3",
        lambda: models.mobilenet_v3_small(num_classes=CLASSES, width_mult=0.5),
        32,
        "mobilenet_v3_small(width_mult=0.5)",
    ),
    Family("mnasnet", lambda: models.mnasnet0_5(num_classes=CLASSES), 32, "mnasnet0_5()"),
    Family(
        "shufflenet",
        lambda: models.ShuffleNetV2([2, 2, 2], [24, 48, 96, 192, 256], num_classes=CLASSES),
        32,
        "ShuffleNetV2([2, 2, 2], [24, 48, 96, 192, 256]) (shufflenet_v2_x0_5, shorter)",
    ),
    Family(
        "efficientnet",
        _efficientnet,
        32,
        "EfficientNet(*_efficientnet_conf('efficientnet_b0', width_mult=0.5, depth_mult=0.5), "
        "dropout=0.2) (stochastic depth 0.2)",
    ),
    Family(
        "regnet",
        lambda: models.RegNet(
            regnet.BlockParams.from_init_params(
                depth=4, w_0=16, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25
            ),
            stem_width=16,
            num_classes=CLASSES,
        ),
        32,
        "RegNet(BlockParams.from_init_params(depth=4, w_0=16, w_a=8.0, w_m=2.0, "
        "group_width=8, se_ratio=0.25), stem_width=16) (regnet_y_400mf's block, smaller)",
    ),
    Family(
        "convnext",
        lambda: models.ConvNeXt(
            [
                convnext.CNBlockConfig(16, 32, 1),
                convnext.CNBlockConfig(32, 64, 1),
                convnext.CNBlockConfig(64, None, 1),
            ],
            stochastic_depth_prob=0.1,
            num_classes=CLASSES,
        ),
        32,
        "ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 1), "
        "CNBlockConfig(64, None, 1)], stochastic_depth_prob=0.1)",
    ),
    Family(
        "vit",
        lambda: models.VisionTransformer(
            image_size=32,
            patch_size=8,
            num_layers=2,
            num_heads=2,
            hidden_dim=32,
            mlp_dim=64,
            dropout=0.1,
            num_classes=CLASSES,
        ),
        32,
        "VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, "
        "hidden_dim=32, mlp_dim=64, dropout=0.1)",
    ),
    Family(
        "swin",
        lambda: models.SwinTransformer(
            patch_size=[2, 2],
            embed_dim=16,
            depths=[2, 2],
            num_heads=[2, 4],
            window_size=[4, 4],
            num_classes=CLASSES,
        ),
        16,
        "SwinTransformer(patch_size=[2, 2], embed_dim=16, depths=[2, 2], num_heads=[2, 4], "
        "window_size=[4, 4]) (stochastic depth 0.1; 16x16 images: stage 1 has shifted "
        "windows, stage 2 one window)",
    ),
    Family(
        "swin_v2",
        _swin_v2,
        16,
        "SwinTransformer(... as swin, block=SwinTransformerBlockV2, "
        "downsample_layer=PatchMergingV2)",
    ),
    Family(
        "maxvit",
        lambda: models.MaxVit(
            input_size=(32, 32),
            stem_channels=16,
            partition_size=4,
            block_channels=[16],
            block_layers=[1],
            head_dim=8,
            stochastic_depth_prob=0.1,
            num_classes=CLASSES,
        ),
        32,
        "MaxVit(input_size=(32, 32), stem_channels=16, partition_size=4, "
        "block_channels=[16], block_layers=[1], head_dim=8, stochastic_depth_prob=0.1)",
    ),
]


# --- weight stripping ----------------------------------------------------------------------
def _spec(distribution: str, seed: int, **extra: float) -> dict[str, Any]:
    return {"distribution": distribution, "seed": seed, **extra}


def _torch_specs(model: nn.Module) -> dict[str, tuple[str, float]]:
    """State-dict name -> (distribution, fan_in or std) for every float parameter/buffer."""
    out: dict[str, tuple[str, float]] = {}
    for prefix, module in model.named_modules():
        dot = f"{prefix}." if prefix else ""
        tensors = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
        for local, tensor in tensors:
            if not tensor.is_floating_point():
                continue
            name = dot + local
            if local == "running_mean":
                out[name] = ("zeros", 0.0)
            elif local == "running_var":
                out[name] = ("ones", 0.0)
            elif local in ("weight", "in_proj_weight") and tensor.dim() >= 2:
                out[name] = ("he_normal", float(tensor[0].numel()))  # [out, in/groups, k...]
            elif local == "weight":  # norm scales (BatchNorm, LayerNorm, GroupNorm)
                out[name] = ("ones", 0.0)
            elif local in ("bias", "in_proj_bias"):
                out[name] = ("zeros", 0.0)
            elif isinstance(tensor, nn.Parameter):  # tokens, embeddings, tables, scales
                out[name] = ("normal", EMBEDDING_STD)
            # other float buffers (coordinate tables, masks) are constants: keep their data
    return out


def _consumer_spec(graph: onnx.GraphProto, name: str, dims: list[int]) -> tuple[str, float] | None:
    """A spec for an exporter-computed tensor, from the op and slot that read it."""
    for node in graph.node:
        for slot, used in enumerate(node.input):
            if used != name:
                continue
            op = node.op_type
            if op in ("Conv", "ConvTranspose") and slot == 1:
                return ("he_normal", float(np.prod(dims[1:])))
            if op == "Gemm" and slot == 1:
                trans = any(a.name == "transB" and a.i for a in node.attribute)
                return ("he_normal", float(dims[1] if trans else dims[0]))
            if op == "MatMul" and slot == 1 and len(dims) == 2:
                return ("he_normal", float(dims[0]))
            if op in ("Conv", "Gemm") and slot == 2:
                return ("zeros", 0.0)
            if op == "BatchNormalization" and slot in (1, 4):
                return ("ones", 0.0)
            if op == "BatchNormalization" and slot in (2, 3):
                return ("zeros", 0.0)
            if op == "LayerNormalization":
                return ("ones", 0.0) if slot == 1 else ("zeros", 0.0)
    return None


def strip_weights(model: onnx.ModelProto, torch_model: nn.Module, family: str) -> list[str]:
    """Turn parameter initializers into graph inputs with seeded specs (in place).

    Returns a line per float initializer left with data (for the log)."""
    graph = model.graph
    known = _torch_specs(torch_model)
    specs: dict[str, dict[str, Any]] = {}
    keep: list[onnx.TensorProto] = []
    kept: list[str] = []
    inputs = {v.name for v in graph.input}
    for init in graph.initializer:
        dims = [int(d) for d in init.dims]
        floating = init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)
        found = known.get(init.name) if floating and dims else None
        if found is None and floating and dims:
            found = _consumer_spec(graph, init.name, dims)
        if found is None:
            keep.append(init)
            if floating and int(np.prod(dims)) > 1:
                kept.append(f"{init.name} {dims}")
            continue
        distribution, number = found
        seed = zlib.crc32(f"{family}/{init.name}".encode()) & 0x7FFFFFFF
        if distribution == "he_normal":
            specs[init.name] = _spec(distribution, seed, fan_in=number)
        elif distribution == "normal":
            specs[init.name] = _spec(distribution, seed, std=number)
        else:
            specs[init.name] = _spec(distribution, seed)
        if init.name not in inputs:
            graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, dims))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    _set_metadata(model, "autotm.init", json.dumps(specs, sort_keys=True))
    return kept


def _short(name: str) -> str:
    """A TorchScript scope path without its redundant prefixes.

    ``/features/features.1/features.1.0/attn/MatMul_output_0`` names each module by its full
    path at every level; ``features.1.0/attn/MatMul_output_0`` says the same in half the bytes.
    """
    if not name.startswith("/"):
        return name
    parts = name[1:].split("/")
    kept = [p for p, q in itertools.pairwise(parts) if not q.startswith(f"{p}.")]
    return "/".join([*kept, parts[-1]])


def shorten_names(model: onnx.ModelProto) -> None:
    """Rename TorchScript's scoped tensor and node names (in place); see :func:`_short`."""
    graph = model.graph
    fixed = {v.name for v in (*graph.input, *graph.output)} | {t.name for t in graph.initializer}
    tensors = {n for node in graph.node for n in (*node.input, *node.output) if n} - fixed
    renamed = {n: _short(n) for n in tensors}
    if len(set(renamed.values()) | fixed) != len(renamed) + len(fixed):
        return  # a collision: keep the exporter's names
    for node in graph.node:
        node.name = _short(node.name)
        for i, n in enumerate(node.input):
            node.input[i] = renamed.get(n, n)
        for i, n in enumerate(node.output):
            node.output[i] = renamed.get(n, n)
    for value in graph.value_info:
        value.name = renamed.get(value.name, value.name)


def _set_metadata(model: onnx.ModelProto, key: str, value: str) -> None:
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    model.metadata_props.add(key=key, value=value)


def _clean(model: onnx.ModelProto) -> None:
    """Drop debugging annotations: node metadata (dynamo stack traces) and doc strings."""
    model.doc_string = ""
    for graph in [model.graph, *(f for f in model.functions)]:
        for node in graph.node:
            del node.metadata_props[:]
            node.doc_string = ""
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        del value.metadata_props[:]
        value.doc_string = ""
    del model.graph.metadata_props[:]


# --- export --------------------------------------------------------------------------------
def _export(model: nn.Module, image: torch.Tensor, exporter: str, mode: str) -> onnx.ModelProto:
    model.train(mode == "train")
    if exporter == "torchscript":
        path = HERE / ".export.tmp.onnx"
        try:
            torch.onnx.export(
                model,
                (image,),
                str(path),
                dynamo=False,
                opset_version=17,
                training=(
                    torch.onnx.TrainingMode.TRAINING
                    if mode == "train"
                    else torch.onnx.TrainingMode.EVAL
                ),
                do_constant_folding=mode == "eval",
                input_names=["image"],
                output_names=["logits"],
                dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            )
            return onnx.load(str(path))
        finally:
            path.unlink(missing_ok=True)
    # optimize=False: the optimizer runs below, once the parameters are graph inputs
    program = torch.onnx.export(
        model,
        (image,),
        dynamo=True,
        optimize=False,
        input_names=["image"],
        output_names=["logits"],
    )
    assert program is not None
    return program.model_proto


def optimize_dynamo(model: onnx.ModelProto) -> onnx.ModelProto:
    """The dynamo exporter's own optimizer pass (what ``optimize=True`` runs), on the stripped
    graph: it folds constants and removes redundant nodes, but with the parameters as graph
    inputs it cannot fold them into new constants (with weight data it folds a ViT's class
    token into an Expand result at the export batch, a Swin's relative position bias and a
    Swin v2's position-bias MLP into plain tensors, and every BatchNormalization into its
    Conv, training mode or not)."""
    ir_model = onnx_ir.from_proto(model)
    onnxscript.optimizer.optimize_ir(ir_model)
    return onnx_ir.to_proto(ir_model)


def distinct_values(model: nn.Module) -> None:
    """Give every tensor that will be stripped a distinct random value (in place).

    TorchScript's eval export merges initializers with equal values into one, read through
    Identity nodes: every LayerNorm scale (all ones) or bias (all zeros) would become one
    tied parameter of the training graph. The values themselves are stripped anyway.
    """
    specs = _torch_specs(model)
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif name in specs:
                tensor.uniform_(-0.1, 0.1)


def export_family(family: Family) -> None:
    torch.manual_seed(0)
    model = family.build()
    distinct_values(model)
    torch.manual_seed(1)
    image = torch.randn(BATCH, 3, family.image, family.image)
    for exporter in ("torchscript", "dynamo"):
        for mode in ("eval", "train"):
            name = f"{family.name}_{exporter}_{mode}.onnx"
            try:
                proto = _export(model, image, exporter, mode)
            except Exception as exc:  # an exporter's limit: record it, go on
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                print(f"{name}: EXPORT FAILED: {type(exc).__name__}: {first[:300]}", flush=True)
                for stale in (HERE / name, HERE / f"{name}.gz"):
                    stale.unlink(missing_ok=True)
                continue
            kept = strip_weights(proto, model, family.name)
            if exporter == "dynamo":
                proto = optimize_dynamo(proto)
                kept = [
                    k for k in kept if k.split()[0] in {t.name for t in proto.graph.initializer}
                ]
            else:
                shorten_names(proto)
            _clean(proto)
            _set_metadata(
                proto,
                "autotm.export",
                json.dumps(
                    {
                        "family": family.name,
                        "torchvision": family.recipe,
                        "num_classes": CLASSES,
                        "image_size": family.image,
                        "batch": BATCH,
                        "exporter": exporter,
                        "mode": mode,
                        "torch": torch.__version__.split("+")[0],
                        "torchvision_version": torchvision.__version__.split("+")[0],
                    },
                    sort_keys=True,
                ),
            )
            onnx.checker.check_model(proto)
            data = proto.SerializeToString()
            for stale in (HERE / name, HERE / f"{name}.gz"):
                stale.unlink(missing_ok=True)
            if len(data) > GZIP_ABOVE:
                name += ".gz"
                (HERE / name).write_bytes(gzip.compress(data, mtime=0))
            else:
                (HERE / name).write_bytes(data)
            params = len(
                json.loads(dict((p.key, p.value) for p in proto.metadata_props)["autotm.init"])
            )
            print(
                f"{name}: {len(data):,} B ({(HERE / name).stat().st_size:,} B on disk), "
                f"{len(proto.graph.node)} nodes, {params} seeded "
                f"parameters; float data kept: {', '.join(kept) or 'none'}",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("families", nargs="*", help="families to export (default: all)")
    args = parser.parse_args(argv)
    chosen = [f for f in FAMILIES if not args.families or f.name in args.families]
    unknown = set(args.families) - {f.name for f in FAMILIES}
    if unknown:
        parser.error(f"unknown families {sorted(unknown)}; known: {[f.name for f in FAMILIES]}")
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    for family in chosen:
        export_family(family)
    return 0


if __name__ == "__main__":
    sys.exit(main())
