"""Bottleneck ResNets: ResNet-50 (He et al., CVPR 2016) and ResNet-200.

The stem is a 7x7/2 convolution with 64 channels, batch norm, ReLU and a 3x3/2 max pool. Four
stages of bottleneck blocks follow (1x1 reducing to the stage width, 3x3, 1x1 expanding to four
times the width; batch norm after each convolution, ReLU after the first two and after the
residual sum), with widths 64, 128, 256, 512 and 3, 4, 6, 3 blocks (ResNet-50) or 3, 24, 36, 3
(ResNet-200, from He et al., ECCV 2016, as the original AutoTM builds it). The first block of a
stage downsamples with stride 2 in its 3x3 convolution (the torchvision "v1.5" placement; the
parameter count is the same wherever the stride sits) and has a 1x1 projection shortcut with
batch norm. Global average pooling and one fully connected layer end the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .builder import GraphBuilder


@dataclass(frozen=True)
class ResNetConfig:
    blocks: tuple[int, ...] = (3, 4, 6, 3)
    widths: tuple[int, ...] = (64, 128, 256, 512)
    stem: int = 64
    expansion: int = 4


def resnet_config(blocks: Sequence[int], width: float = 1.0, expansion: int = 4) -> ResNetConfig:
    """``width`` scales the stem and every stage width (at least 1 channel)."""
    return ResNetConfig(
        tuple(blocks),
        tuple(max(1, round(w * width)) for w in (64, 128, 256, 512)),
        max(1, round(64 * width)),
        expansion,
    )


def _bottleneck(b: GraphBuilder, x: str, name: str, width: int, expansion: int, stride: int) -> str:
    out_channels = width * expansion
    y = b.conv_bn_relu(x, f"{name}.a", width, 1)
    y = b.conv_bn_relu(y, f"{name}.b", width, 3, stride=stride, pad=1)
    y = b.conv(y, f"{name}.c.conv", out_channels, 1)
    y = b.batchnorm(y, f"{name}.c.bn")
    shortcut = x
    if stride != 1 or b.shape(x)[1] != out_channels:
        shortcut = b.conv(x, f"{name}.proj.conv", out_channels, 1, stride=stride)
        shortcut = b.batchnorm(shortcut, f"{name}.proj.bn")
    y = b.add(y, shortcut, f"{name}.add")
    return b.relu(y, f"{name}.relu")


def build_resnet(b: GraphBuilder, config: ResNetConfig, classes: int) -> None:
    x = b.conv_bn_relu("images", "stem", config.stem, 7, stride=2, pad=3)
    x = b.maxpool(x, "stem.pool", 3, 2, pad=1)
    for s, (count, width) in enumerate(zip(config.blocks, config.widths, strict=True), start=1):
        for i in range(count):
            stride = 2 if i == 0 and s > 1 else 1
            x = _bottleneck(b, x, f"layer{s}.{i}", width, config.expansion, stride)
    x = b.global_avgpool(x, "pool")
    x = b.flatten(x, "flatten")
    b.classifier(x, classes)
