"""The model zoo: the AutoTM paper's networks, and reduced variants with the same topology.

Every network is a function of a :class:`~autotm_graph.zoo.builder.GraphBuilder` and the
number of classes, registered here under a name with its defaults. Three sizes of each family:

* ``NAME`` -- the published network (ImageNet classes, 224x224 or 299x299 images);
* ``NAME-mini`` -- the same block pattern with fewer channels and blocks on 32x32 images: the
  embedded default suite of ``make reproduce`` (width and depth knobs live in the config
  functions below, so the suite can be retuned in one place);
* ``NAME-tiny`` -- a handful of layers with a few channels, for tests (builds, trains and runs
  in milliseconds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import onnx
from autotm_schemas import BadInputError

from .builder import GraphBuilder
from .densenet import build_densenet, densenet_config
from .inception import InceptionConfig, build_inception_v4
from .resnet import build_resnet, resnet_config
from .vgg import VggConfig, build_vgg, vgg19_config, vgg416_config

Build = Callable[[GraphBuilder, int], None]


@dataclass(frozen=True)
class Network:
    """A zoo entry: how to build it and the defaults the CLI uses."""

    name: str
    family: str
    description: str
    build: Build  # (builder, classes) -> None
    image_size: int
    batch: int  # default --batch: the paper's conventional batch for full networks
    classes: int = 1000
    reference: str = ""  # the published parameter count it matches, where it has one

    @property
    def size(self) -> str:
        """'full', 'mini' or 'tiny'."""
        return self.name.rsplit("-", 1)[1] if "-" in self.name else "full"


def _with(build_fn: Callable[[GraphBuilder, Any, int], None], config: object) -> Build:
    """Bind a family's config: ``build_fn(builder, config, classes)`` as ``(builder, classes)``."""
    return lambda b, classes: build_fn(b, config, classes)


def _vgg(config: VggConfig) -> Build:
    return _with(build_vgg, config)


_TINY_VGG = VggConfig(((4,), (8,), (16, 16), (16, 16), (16, 16)), fc=(32, 32), dropout=0.0)

NETWORKS: dict[str, Network] = {
    n.name: n
    for n in [
        # ---- the paper's networks ------------------------------------------------------------
        Network(
            "vgg19",
            "vgg",
            "VGG19 (configuration E): 16 3x3 convolutions, 3 fully connected layers",
            _vgg(vgg19_config()),
            224,
            2048,
            reference="143,667,240 (Simonyan & Zisserman 2015, Table 2: 144M)",
        ),
        Network(
            "vgg416",
            "vgg",
            "AutoTM's deep VGG: 413 3x3 convolutions (80/81/82/83/83 extra per stage), 3 FC",
            _vgg(vgg416_config()),
            224,
            320,
        ),
        Network(
            "resnet50",
            "resnet",
            "ResNet-50: bottleneck blocks 3/4/6/3",
            _with(build_resnet, resnet_config((3, 4, 6, 3))),
            224,
            256,
            reference="25,557,032 (He et al. 2016; torchvision resnet50)",
        ),
        Network(
            "resnet200",
            "resnet",
            "ResNet-200: bottleneck blocks 3/24/36/3",
            _with(build_resnet, resnet_config((3, 24, 36, 3))),
            224,
            512,
            reference="64,673,832 (He et al. 2016b, ~64.7M)",
        ),
        Network(
            "inception_v4",
            "inception",
            "Inception-v4: stem, 4xA, reduction A, 7xB, reduction B, 3xC",
            _with(build_inception_v4, InceptionConfig()),
            299,
            1024,
            reference="42,679,816 (Szegedy et al. 2017; reference implementation)",
        ),
        Network(
            "densenet264",
            "densenet",
            "DenseNet-BC-264, growth 32: dense blocks 6/12/64/48, compression 0.5",
            _with(build_densenet, densenet_config((6, 12, 64, 48), growth=32)),
            224,
            512,
            reference="33,337,704 (Huang et al. 2017, k=32: ~33M)",
        ),
        # ---- the embedded default suite (make reproduce) ------------------------------------
        Network(
            "vgg19-mini",
            "vgg",
            "VGG19 layout at 3/16 width, 192-wide classifier, 32x32 images",
            _vgg(vgg19_config(width=3 / 16, fc=192)),
            32,
            16,
            10,
        ),
        Network(
            "vgg416-mini",
            "vgg",
            "VGG416 layout with 4 extra convolutions per stage at an eighth width",
            _vgg(vgg416_config(extra=(4, 4, 4, 4, 4), width=0.125, fc=128)),
            32,
            16,
            10,
        ),
        Network(
            "resnet50-mini",
            "resnet",
            "ResNet-50 block pattern 3/4/6/3 at a quarter width, 32x32 images",
            _with(build_resnet, resnet_config((3, 4, 6, 3), width=0.25)),
            32,
            16,
            10,
        ),
        Network(
            "resnet200-mini",
            "resnet",
            "ResNet-200 pattern shortened to 2/8/12/2 blocks at a quarter width",
            _with(build_resnet, resnet_config((2, 8, 12, 2), width=0.25)),
            32,
            16,
            10,
        ),
        Network(
            "inception_v4-mini",
            "inception",
            "Inception-v4 pattern 2xA/4xB/2xC at a quarter width, padded stem, 32x32 images",
            _with(build_inception_v4, InceptionConfig(width=0.25, blocks=(2, 4, 2), valid=False)),
            32,
            16,
            10,
        ),
        Network(
            "densenet264-mini",
            "densenet",
            "DenseNet-264 pattern shortened to 3/6/16/12 layers, growth 12",
            _with(build_densenet, densenet_config((3, 6, 16, 12), growth=12)),
            32,
            16,
            10,
        ),
        # ---- test networks -------------------------------------------------------------------
        Network(
            "vgg19-tiny",
            "vgg",
            "VGG pattern with 8 narrow convolutions, for tests",
            _vgg(_TINY_VGG),
            32,
            4,
            10,
        ),
        Network(
            "vgg416-tiny",
            "vgg",
            "VGG416 pattern with 2 extra convolutions per stage, for tests",
            _vgg(vgg416_config(extra=(1, 1, 1, 1, 1), width=1 / 16, fc=32, dropout=0.0)),
            32,
            4,
            10,
        ),
        Network(
            "resnet50-tiny",
            "resnet",
            "One bottleneck block per stage at 1/16 width, for tests",
            _with(build_resnet, resnet_config((1, 1, 1, 1), width=1 / 16)),
            32,
            4,
            10,
        ),
        Network(
            "resnet200-tiny",
            "resnet",
            "Bottleneck blocks 1/2/2/1 at 1/16 width, for tests",
            _with(build_resnet, resnet_config((1, 2, 2, 1), width=1 / 16)),
            32,
            4,
            10,
        ),
        Network(
            "inception_v4-tiny",
            "inception",
            "One block of each Inception-v4 kind at 1/16 width, padded stem, for tests",
            _with(
                build_inception_v4,
                InceptionConfig(width=1 / 16, blocks=(1, 1, 1), valid=False, dropout=0.0),
            ),
            32,
            4,
            10,
        ),
        Network(
            "densenet264-tiny",
            "densenet",
            "Dense blocks of 2 layers, growth 4, for tests",
            _with(build_densenet, densenet_config((2, 2, 2, 2), growth=4)),
            32,
            4,
            10,
        ),
    ]
}


def network(name: str) -> Network:
    """The registered network called ``name``; a BadInputError listing the names otherwise."""
    try:
        return NETWORKS[name]
    except KeyError:
        raise BadInputError(f"network {name!r}: expected one of {', '.join(NETWORKS)}") from None


def builder(
    name: str,
    batch: int | None = None,
    image_size: int | None = None,
    classes: int | None = None,
    seed: int = 0,
) -> GraphBuilder:
    """The network laid out in a builder: shapes and parameter specs, no weights, no ONNX."""
    entry = network(name)
    batch = entry.batch if batch is None else batch
    image_size = entry.image_size if image_size is None else image_size
    classes = entry.classes if classes is None else classes
    if batch < 1:
        raise BadInputError(f"--batch: expected a positive integer, got {batch}")
    if image_size < 1:
        raise BadInputError(f"--image-size: expected a positive integer, got {image_size}")
    if classes < 1:
        raise BadInputError(f"--classes: expected a positive integer, got {classes}")
    b = GraphBuilder(name, batch, image_size, seed=seed)
    try:
        entry.build(b, classes)
    except ValueError as exc:
        raise BadInputError(f"{name} at --image-size {image_size}: {exc}") from None
    return b


def build(
    name: str,
    batch: int | None = None,
    image_size: int | None = None,
    classes: int | None = None,
    weights: str = "seeded",
    seed: int = 0,
) -> onnx.ModelProto:
    """The ONNX inference graph of a zoo network (output ``logits``, input ``images``)."""
    b = builder(name, batch, image_size, classes, seed)
    return b.model(weights)


__all__ = ["NETWORKS", "GraphBuilder", "Network", "build", "builder", "network"]
