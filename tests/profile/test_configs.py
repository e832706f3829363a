"""Configurations: fixed tiers, aliases, ties, the GPU rule and deduplication by kernel key."""

from __future__ import annotations

from pathlib import Path

import pytest
from autotm_graph.ir import Graph, load_graph
from autotm_profile.configs import (
    FAST,
    SLOW,
    Config,
    all_fast,
    fixed_tiers,
    node_configs,
    unique_kernels,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from tests.handmade import write_tiny_mlp


def _concat_graph(tmp_path: Path, inputs: int, width: int = 1024) -> Graph:
    """One Concat of ``inputs`` float32 tensors [1, width * (i + 1)], then two equal Relus."""
    names = [f"x{i}" for i in range(inputs)]
    total = sum(width * (i + 1) for i in range(inputs))
    nodes = [
        helper.make_node("Concat", names, ["y"], name="cat", axis=1),
        helper.make_node("Relu", ["y"], ["r1"], name="relu1"),
        helper.make_node("Relu", ["r1"], ["r2"], name="relu2"),
        helper.make_node("Mul", ["r2", "r2"], ["sq"], name="square"),
    ]
    graph = helper.make_graph(
        nodes,
        "cat",
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, width * (i + 1)])
            for i, n in enumerate(names)
        ],
        [helper.make_tensor_value_info("sq", TensorProto.FLOAT, [1, total])],
        value_info=[
            helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, total])
            for n in ("y", "r1", "r2")
        ],
    )
    path = tmp_path / "cat.onnx"
    path.write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    )
    return load_graph(path)


def test_constants_and_small_tensors_are_fixed_fast(tmp_path: Path) -> None:
    graph = load_graph(write_tiny_mlp(tmp_path / "t.onnx"))
    fixed = fixed_tiers(graph, fixed_below=100)
    assert fixed["lr"] == FAST and fixed["axes0"] == FAST  # constants
    assert fixed["b1"] == FAST  # 64 bytes < 100
    assert fixed["w1"] is None  # 512 bytes: the plan chooses
    assert fixed_tiers(graph, fixed_below=0)["b1"] is None
    assert fixed_tiers(graph, fixed_below=0)["lr"] == FAST  # constants whatever the size


def test_every_configuration_of_a_node_once(tmp_path: Path) -> None:
    graph = load_graph(write_tiny_mlp(tmp_path / "t.onnx"))
    fixed = fixed_tiers(graph, fixed_below=0)
    gemm = graph.nodes[0]  # fc1: x, w1, b1 -> h_pre, all varied
    configs = node_configs(graph, gemm, fixed)
    assert len(configs) == 2**4 == len(set(configs))
    assert configs[0] == all_fast(gemm)
    sgd = next(n for n in graph.nodes if n.op_type == "SGDOptimizer")
    for config in node_configs(graph, sgd, fixed):
        assert config.input_tiers[0] == FAST  # lr is a constant


def test_an_aliased_tensor_has_one_tier(tmp_path: Path) -> None:
    graph = _concat_graph(tmp_path, 2)
    square = next(n for n in graph.nodes if n.name == "square")
    configs = node_configs(graph, square, fixed_tiers(graph, 0))
    assert len(configs) == 4  # r2 and sq: 2 x 2, not 2^3
    assert all(c.input_tiers[0] == c.input_tiers[1] for c in configs)


def test_many_inputs_are_tied_beyond_max_varied(tmp_path: Path) -> None:
    graph = _concat_graph(tmp_path, 8)
    cat = graph.nodes[0]
    configs = node_configs(graph, cat, fixed_tiers(graph, 0), max_varied=4)
    assert len(configs) == 2**4
    # y and the two largest inputs vary alone; the six smallest inputs x0..x5 move together.
    for config in configs:
        assert len(set(config.input_tiers[:6])) == 1
    assert {c.input_tiers[7] for c in configs} == {FAST, SLOW}


def test_identical_kernels_are_timed_once(tmp_path: Path) -> None:
    graph = _concat_graph(tmp_path, 2)
    kernels = unique_kernels(graph, fixed_tiers(graph, 0))
    assert len(graph.nodes) == 4 and len(kernels) == 3
    relu = next(k for k in kernels if k.node.op_type == "Relu")
    assert relu.nodes == (1, 2) and relu.node.name == "relu1"


def test_gpu_rule_one_configuration_per_kernel(tmp_path: Path) -> None:
    graph = load_graph(write_tiny_mlp(tmp_path / "t.onnx"))
    kernels = unique_kernels(graph, fixed_tiers(graph, 0), single_config=True)
    assert all(k.configs == (all_fast(k.node),) for k in kernels)


@settings(max_examples=25, deadline=None)
@given(
    inputs=st.integers(min_value=1, max_value=9),
    max_varied=st.integers(min_value=1, max_value=6),
    fixed_below=st.sampled_from([0, 2048 * 4 + 1, 10**9]),
)
def test_configuration_count_and_fixed_tiers_hold(
    tmp_path_factory: pytest.TempPathFactory, inputs: int, max_varied: int, fixed_below: int
) -> None:
    graph = _concat_graph(tmp_path_factory.mktemp("cat"), inputs)
    fixed = fixed_tiers(graph, fixed_below)
    cat = graph.nodes[0]
    varied = [n for n in (*cat.inputs, *cat.outputs) if fixed[n] is None]
    configs = node_configs(graph, cat, fixed, max_varied)
    assert len(configs) == 2 ** min(len(varied), max_varied) == len(set(configs))
    for config in configs:
        for name, tier in zip(
            (*cat.inputs, *cat.outputs), (*config.input_tiers, *config.output_tiers), strict=True
        ):
            if fixed[name] is not None:
                assert tier == fixed[name]


@pytest.mark.parametrize(
    "config",
    [Config(("fast", "", "slow"), ("slow",)), Config((), ("fast",)), Config(("slow",), ())],
)
def test_config_text_round_trips(config: Config) -> None:
    assert Config.parse(config.text) == config
