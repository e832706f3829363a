"""DenseNet-BC (Huang, Liu, van der Maaten and Weinberger, CVPR 2017; Table 1).

The ImageNet layout: a 7x7/2 convolution with 2k channels, batch norm, ReLU and a 3x3/2 max
pool; four dense blocks (6, 12, 64, 48 layers for DenseNet-264) whose layers are
BN-ReLU-Conv1x1 (4k channels, the bottleneck) then BN-ReLU-Conv3x3 (k channels), each layer's
output concatenated to its input; transitions of BN-ReLU-Conv1x1 halving the channels
(compression 0.5) and a 2x2 average pool; a final batch norm and ReLU, global average pooling
and the classifier. Convolutions have no bias.

Each layer concatenates its k new channels to the running feature map (one Concat per layer),
as the original AutoTM's DenseNet does, rather than re-concatenating every earlier output:
the same arithmetic, and the memory behaviour frameworks actually have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .builder import GraphBuilder


@dataclass(frozen=True)
class DenseNetConfig:
    growth: int = 32
    blocks: tuple[int, ...] = (6, 12, 64, 48)
    bottleneck: int = 4  # the 1x1 convolution produces bottleneck * growth channels
    compression: float = 0.5
    stem: int | None = None  # defaults to 2 * growth


def densenet_config(
    blocks: Sequence[int], growth: int = 32, compression: float = 0.5
) -> DenseNetConfig:
    return DenseNetConfig(growth, tuple(blocks), 4, compression)


def build_densenet(b: GraphBuilder, config: DenseNetConfig, classes: int) -> None:
    k = config.growth
    x = b.conv("images", "stem.conv", config.stem or 2 * k, 7, stride=2, pad=3)
    x = b.relu(b.batchnorm(x, "stem.bn"), "stem.relu")
    x = b.maxpool(x, "stem.pool", 3, 2, pad=1)
    for s, layers in enumerate(config.blocks, start=1):
        for i in range(layers):
            name = f"block{s}.{i}"
            y = b.bn_relu_conv(x, f"{name}.a", config.bottleneck * k, 1)
            y = b.bn_relu_conv(y, f"{name}.b", k, 3, pad=1)
            x = b.concat([x, y], f"{name}.concat")
        if s < len(config.blocks):
            channels = int(b.shape(x)[1] * config.compression)
            x = b.bn_relu_conv(x, f"transition{s}", channels, 1)
            x = b.avgpool(x, f"transition{s}.pool", 2, 2)
    x = b.relu(b.batchnorm(x, "final.bn"), "final.relu")
    x = b.global_avgpool(x, "pool")
    x = b.flatten(x, "flatten")
    b.classifier(x, classes)
