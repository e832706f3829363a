"""Inception-v4 (Szegedy, Ioffe, Vanhoucke and Alemi, "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning", AAAI 2017; arXiv:1602.07261, figures 3 to 9).

Stem (figure 3), 4 x Inception-A (figure 4), Reduction-A (figure 7, k=192 l=224 m=256
n=384), 7 x Inception-B (figure 5), Reduction-B (figure 8), 3 x Inception-C (figure 6),
average pooling, dropout (keep 0.8) and the classifier. Every convolution is
convolution + batch norm (epsilon 0.001) + ReLU without a bias, as in the reference
implementations; "V" windows of the figures are unpadded, the rest keep the spatial size.
Average pools inside the blocks exclude padding from the divisor.

Reduced variants keep the block pattern and scale channels and block counts; ``valid=False``
pads the stem's and reductions' "V" windows so that 32x32 images fit (the full network
needs at least 75x75).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .builder import GraphBuilder

EPS = 1e-3


@dataclass(frozen=True)
class InceptionConfig:
    width: float = 1.0  # scales every channel count
    blocks: tuple[int, int, int] = (4, 7, 3)  # Inception-A, -B, -C repeats
    valid: bool = True  # "V" windows unpadded, as published
    dropout: float = 0.2


def build_inception_v4(b: GraphBuilder, config: InceptionConfig, classes: int) -> None:
    def ch(n: int) -> int:
        return max(1, round(n * config.width))

    v = 0 if config.valid else 1  # padding of a "V" 3x3 window

    def conv(
        x: str,
        name: str,
        n: int,
        k: int | tuple[int, int],
        s: int = 1,
        p: int | tuple[int, int] = 0,
    ) -> str:
        return b.conv_bn_relu(x, name, ch(n), k, stride=s, pad=p, epsilon=EPS)

    def conv17(x: str, name: str, n: int) -> str:
        return conv(x, name, n, (1, 7), p=(0, 3))

    def conv71(x: str, name: str, n: int) -> str:
        return conv(x, name, n, (7, 1), p=(3, 0))

    def conv13(x: str, name: str, n: int) -> str:
        return conv(x, name, n, (1, 3), p=(0, 1))

    def conv31(x: str, name: str, n: int) -> str:
        return conv(x, name, n, (3, 1), p=(1, 0))

    def avg_branch(x: str, name: str, n: int) -> str:
        y = b.avgpool(x, f"{name}.pool", 3, 1, pad=1)
        return conv(y, f"{name}.conv", n, 1)

    # Stem (figure 3)
    x = conv("images", "stem.conv1", 32, 3, s=2, p=v)
    x = conv(x, "stem.conv2", 32, 3, p=v)
    x = conv(x, "stem.conv3", 64, 3, p=1)
    x = b.concat(
        [b.maxpool(x, "stem.mixed3a.pool", 3, 2, pad=v), conv(x, "stem.mixed3a.conv", 96, 3, 2, v)],
        "stem.mixed3a",
    )
    left = conv(conv(x, "stem.mixed4a.b0.1x1", 64, 1), "stem.mixed4a.b0.3x3", 96, 3, p=v)
    right = conv(x, "stem.mixed4a.b1.1x1", 64, 1)
    right = conv71(conv17(right, "stem.mixed4a.b1.1x7", 64), "stem.mixed4a.b1.7x1", 64)
    right = conv(right, "stem.mixed4a.b1.3x3", 96, 3, p=v)
    x = b.concat([left, right], "stem.mixed4a")
    x = b.concat(
        [
            conv(x, "stem.mixed5a.conv", 192, 3, 2, v),
            b.maxpool(x, "stem.mixed5a.pool", 3, 2, pad=v),
        ],
        "stem.mixed5a",
    )

    def inception_a(x: str, name: str) -> str:
        b0 = conv(x, f"{name}.b0", 96, 1)
        b1 = conv(conv(x, f"{name}.b1.1x1", 64, 1), f"{name}.b1.3x3", 96, 3, p=1)
        b2 = conv(conv(x, f"{name}.b2.1x1", 64, 1), f"{name}.b2.3x3a", 96, 3, p=1)
        b2 = conv(b2, f"{name}.b2.3x3b", 96, 3, p=1)
        return b.concat([b0, b1, b2, avg_branch(x, f"{name}.b3", 96)], name)

    def reduction_a(x: str, name: str) -> str:
        b0 = conv(x, f"{name}.b0", 384, 3, 2, v)
        b1 = conv(conv(x, f"{name}.b1.1x1", 192, 1), f"{name}.b1.3x3a", 224, 3, p=1)
        b1 = conv(b1, f"{name}.b1.3x3b", 256, 3, 2, v)
        return b.concat([b0, b1, b.maxpool(x, f"{name}.b2.pool", 3, 2, pad=v)], name)

    def inception_b(x: str, name: str) -> str:
        b0 = conv(x, f"{name}.b0", 384, 1)
        b1 = conv(x, f"{name}.b1.1x1", 192, 1)
        b1 = conv71(conv17(b1, f"{name}.b1.1x7", 224), f"{name}.b1.7x1", 256)
        b2 = conv(x, f"{name}.b2.1x1", 192, 1)
        b2 = conv17(conv71(b2, f"{name}.b2.7x1a", 192), f"{name}.b2.1x7a", 224)
        b2 = conv17(conv71(b2, f"{name}.b2.7x1b", 224), f"{name}.b2.1x7b", 256)
        return b.concat([b0, b1, b2, avg_branch(x, f"{name}.b3", 128)], name)

    def reduction_b(x: str, name: str) -> str:
        b0 = conv(conv(x, f"{name}.b0.1x1", 192, 1), f"{name}.b0.3x3", 192, 3, 2, v)
        b1 = conv(x, f"{name}.b1.1x1", 256, 1)
        b1 = conv71(conv17(b1, f"{name}.b1.1x7", 256), f"{name}.b1.7x1", 320)
        b1 = conv(b1, f"{name}.b1.3x3", 320, 3, 2, v)
        return b.concat([b0, b1, b.maxpool(x, f"{name}.b2.pool", 3, 2, pad=v)], name)

    def inception_c(x: str, name: str) -> str:
        b0 = conv(x, f"{name}.b0", 256, 1)
        b1 = conv(x, f"{name}.b1.1x1", 384, 1)
        b1a, b1b = conv13(b1, f"{name}.b1.1x3", 256), conv31(b1, f"{name}.b1.3x1", 256)
        b2 = conv(x, f"{name}.b2.1x1", 384, 1)
        b2 = conv13(conv31(b2, f"{name}.b2.3x1", 448), f"{name}.b2.1x3", 512)
        b2a, b2b = conv13(b2, f"{name}.b2.1x3a", 256), conv31(b2, f"{name}.b2.3x1b", 256)
        return b.concat([b0, b1a, b1b, b2a, b2b, avg_branch(x, f"{name}.b3", 256)], name)

    stages: list[tuple[int, str, Callable[[str, str], str], Callable[[str, str], str] | None]] = [
        (config.blocks[0], "a", inception_a, reduction_a),
        (config.blocks[1], "b", inception_b, reduction_b),
        (config.blocks[2], "c", inception_c, None),
    ]
    for count, letter, block, reduction in stages:
        for i in range(count):
            x = block(x, f"inception_{letter}{i}")
        if reduction is not None:
            x = reduction(x, f"reduction_{letter}")
    x = b.global_avgpool(x, "pool")
    x = b.flatten(x, "flatten")
    x = b.dropout(x, "dropout", config.dropout)
    b.classifier(x, classes)
