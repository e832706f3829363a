"""Shared fixtures of the autotm-profile tests: tiny training graphs and a private cache."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from autotm_graph.ir import Graph, load_graph
from autotm_schemas import BadInputError

from tests.handmade import write_tiny_mlp

#: A device model whose slow tier is so slow that its penalty dwarfs timing noise.
SLUGGISH_MODEL = {
    "format": "autotm.device-model/1",
    "name": "sluggish-test",
    "description": "test model: a slow tier at 50 MB/s, so penalties dominate tiny kernels",
    "sources": [{"citation": "made up for tests/profile"}],
    "tiers": {
        "fast": {
            "read_bytes_per_s": 2e10,
            "write_bytes_per_s": 1e10,
            "read_latency_s": 1e-7,
            "write_latency_s": 1e-7,
        },
        "slow": {
            "read_bytes_per_s": 5e7,
            "write_bytes_per_s": 2.5e7,
            "read_latency_s": 1e-6,
            "write_latency_s": 2e-6,
        },
    },
    "copy": {
        "slow_to_fast": {"sync_bytes_per_s": 2e9, "async_bytes_per_s": 1e9},
        "fast_to_slow": {"sync_bytes_per_s": 1e9, "async_bytes_per_s": 5e8},
    },
}

#: Fast profiling for tests: small time budget, tiny copy sizes.
FAST_ARGS = ["--time-budget", "0.005", "--copy-sizes", "4KiB,64KiB", "--quiet"]


@pytest.fixture
def tiny_path(tmp_path: Path) -> Path:
    """tests/handmade.py's tiny_mlp at batch 4."""
    return write_tiny_mlp(tmp_path / "tiny.onnx")


@pytest.fixture
def wide_path(tmp_path: Path) -> Path:
    """tiny_mlp wide enough that slow-tier penalties and batch scaling are visible."""
    return write_tiny_mlp(tmp_path / "wide.onnx", batch=64, features=256, hidden=256, classes=8)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def sluggish_model(tmp_path: Path) -> Path:
    path = tmp_path / "sluggish.json"
    path.write_text(json.dumps(SLUGGISH_MODEL))
    return path


def zoo_training_graph(name: str, batch: int, path: Path) -> Path:
    """A zoo network's training graph, or a skip when the zoo or its kernels are missing."""
    try:
        from autotm_graph import zoo
        from autotm_graph.train import TrainOptions, build_training_model
    except ImportError as exc:  # pragma: no cover - depends on the graph package's progress
        pytest.skip(f"autotm_graph zoo/train not importable: {exc}")
    model = zoo.build(name, batch=batch)
    onnx.save(build_training_model(model, TrainOptions(batch=batch, network=name), name), path)
    return path


def require_kernels(graph: Graph) -> None:
    """Skip when the executor lacks a kernel for some node of the graph (work in progress)."""
    from autotm_execute.kernels import bind_node

    for node in graph.nodes:
        try:
            bind_node(graph, node)
        except BadInputError as exc:
            if "no kernel" in str(exc):
                pytest.skip(f"autotm-execute has no kernel yet: {exc}")
            raise


@pytest.fixture
def zoo_graph(tmp_path: Path) -> Callable[[str, int], Path]:
    """``zoo_graph(name, batch)``: a zoo training graph whose kernels all bind."""

    def make(name: str, batch: int) -> Path:
        path = zoo_training_graph(name, batch, tmp_path / f"{name}-{batch}.onnx")
        require_kernels(load_graph(path))
        return path

    return make
