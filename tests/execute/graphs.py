"""Training graphs for executor tests: the hand-made MLP and, when autotm-graph can build
them, the zoo's tiny networks."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from tests.handmade import tiny_mlp

ZOO_TINY = ("vgg19-tiny", "resnet50-tiny")
GRAPHS = ("tiny_mlp", *ZOO_TINY)


def write_graph(name: str, folder: Path) -> Path:
    """Write the training graph ``name`` into ``folder``; skip when it cannot be built here."""
    path = folder / f"{name}.onnx"
    if path.exists():
        return path
    if name == "tiny_mlp":
        onnx.save(tiny_mlp(), str(path))
        return path
    try:
        from autotm_graph.train import TrainOptions, build_training_model
        from autotm_graph.zoo import build
    except ImportError as exc:  # pragma: no cover - depends on autotm-graph's progress
        pytest.skip(f"autotm_graph zoo/train not importable yet: {exc}")
    model = build_training_model(build(name, batch=2), TrainOptions(batch=2), source=name)
    onnx.save(model, str(path))
    return path
