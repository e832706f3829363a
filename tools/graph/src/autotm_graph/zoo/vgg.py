"""VGG (Simonyan and Zisserman, ICLR 2015) and the original AutoTM's VGG416.

VGG19 is configuration E of the paper: five stages of 3x3 convolutions (2, 2, 4, 4, 4 of
them; 64, 128, 256, 512, 512 channels; bias and ReLU after each), a 2x2 max pool closing each
stage, then fully connected layers 4096, 4096 and the classes, with dropout 0.5 after the
first two.

VGG416 is the very deep VGG the AutoTM paper trains at batch 320 to reach a 650 GB footprint.
Its definition (darchr/AutoTM, AutoTM/src/zoo/vgg.jl, ``vgg416()``) puts 80, 81, 82, 83, 83
extra same-width 3x3 convolutions in the five stages, and moves each stage's
channel-widening convolution to the end of the stage: stage 1 is a 3->64 convolution, 80 more
at 64, then 64->128; stages 2 and 3 are 81 (82) convolutions at the stage's width followed by
the widening one; stages 4 and 5 are 83 convolutions at 512 each. That is 413 convolutions and
3 fully connected layers: 416 weight layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .builder import GraphBuilder


@dataclass(frozen=True)
class VggConfig:
    """Output channels of every convolution, stage by stage; a max pool ends each stage."""

    stages: tuple[tuple[int, ...], ...]
    fc: tuple[int, ...] = (4096, 4096)
    dropout: float = 0.5


def vgg19_config(width: float = 1.0, fc: int = 4096, dropout: float = 0.5) -> VggConfig:
    """Configuration E; ``width`` scales every channel count (at least 1)."""
    convs = (2, 2, 4, 4, 4)
    channels = _scaled((64, 128, 256, 512, 512), width)
    return VggConfig(
        tuple((c,) * n for n, c in zip(convs, channels, strict=True)), (fc, fc), dropout
    )


def vgg416_config(
    extra: Sequence[int] = (80, 81, 82, 83, 83),
    width: float = 1.0,
    fc: int = 4096,
    dropout: float = 0.5,
) -> VggConfig:
    """darchr/AutoTM's deep VGG: ``extra`` same-width convolutions per stage."""
    w1, w2, w3, w4, w5 = _scaled((64, 128, 256, 512, 512), width)
    e1, e2, e3, e4, e5 = extra
    stages = (
        (w1,) * (1 + e1) + (w2,),
        (w2,) * e2 + (w3,),
        (w3,) * e3 + (w4,),
        (w4,) * e4,
        (w5,) * e5,
    )
    return VggConfig(stages, (fc, fc), dropout)


def _scaled(channels: Sequence[int], width: float) -> tuple[int, ...]:
    return tuple(max(1, round(c * width)) for c in channels)


def build_vgg(b: GraphBuilder, config: VggConfig, classes: int) -> None:
    x = "images"
    for s, stage in enumerate(config.stages, start=1):
        for i, channels in enumerate(stage, start=1):
            x = b.conv(x, f"conv{s}_{i}", channels, 3, pad=1, bias=True)
            x = b.relu(x, f"conv{s}_{i}.relu")
        x = b.maxpool(x, f"pool{s}", 2, 2)
    x = b.flatten(x, "flatten")
    for i, features in enumerate(config.fc, start=6):
        x = b.gemm(x, f"fc{i}", features)
        x = b.relu(x, f"fc{i}.relu")
        x = b.dropout(x, f"fc{i}.dropout", config.dropout)
    b.classifier(x, classes, f"fc{6 + len(config.fc)}")
