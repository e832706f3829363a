"""Timing the executor's kernels on its pools: placement, input data, the shared penalty."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from autotm_execute.device_model import DeviceModel
from autotm_execute.tiers import TierOptions, Tiers, open_tiers
from autotm_graph.ir import Graph, load_graph
from autotm_profile.configs import FAST, SLOW, Config, all_fast, fixed_tiers, node_configs
from autotm_profile.measure import KernelTimer, footprint, penalty_s, placement, pool_sizes
from autotm_profile.timing import Protocol


@pytest.fixture
def graph(wide_path: Path) -> Graph:
    return load_graph(wide_path)


@pytest.fixture
def tiers(graph: Graph) -> Iterator[Tiers]:
    fast, slow = pool_sizes([footprint(graph, n, 1 << 20) for n in graph.nodes])
    with open_tiers(TierOptions(), fast, slow) as opened:
        yield opened


def _address(array: np.ndarray) -> int:
    return int(array.__array_interface__["data"][0])


def _inside(array: np.ndarray, pool_view: np.ndarray) -> bool:
    start = _address(pool_view)
    return start <= _address(array) and _address(array) + array.nbytes <= start + pool_view.nbytes


def test_each_tensor_is_viewed_in_the_pool_its_tier_says(graph: Graph, tiers: Tiers) -> None:
    timer = KernelTimer(graph, tiers, Protocol(budget_s=0.001))
    gemm = graph.nodes[0]  # fc1: x, w1, b1 -> h_pre
    prepared = timer.prepare(gemm)
    config = Config((SLOW, FAST, SLOW), (SLOW,))
    inputs, outputs, _ = timer.place(prepared, config)
    fast_all = tiers.fast.bytes_view(0, tiers.fast.size_bytes)
    slow_all = tiers.slow.bytes_view(0, tiers.slow.size_bytes)
    assert _inside(inputs[0], slow_all) and _inside(inputs[1], fast_all)
    assert _inside(inputs[2], slow_all) and _inside(outputs[0], slow_all)
    np.testing.assert_array_equal(inputs[0], prepared.data["x"])  # data copied in


def test_a_timed_kernel_computes_what_it_should(graph: Graph, tiers: Tiers) -> None:
    timer = KernelTimer(graph, tiers, Protocol(budget_s=0.001))
    relu = graph.nodes[1]
    prepared = timer.prepare(relu)
    stats = timer.time(prepared, Config((SLOW,), (FAST,)))
    assert 0 < stats.min_s <= stats.median_s <= stats.max_s and stats.samples >= 3
    inputs, outputs, _ = timer.place(prepared, Config((SLOW,), (FAST,)))
    prepared.kernel.run(np, inputs, outputs, None)
    np.testing.assert_array_equal(outputs[0], np.maximum(inputs[0], 0))


def test_input_data_is_plausible(graph: Graph, tiers: Tiers) -> None:
    timer = KernelTimer(graph, tiers, Protocol())
    assert timer.host_value("lr") == pytest.approx(0.1)  # a constant keeps its value
    labels = timer.host_value("labels")
    assert labels.dtype == np.int64 and labels.min() >= 0 and labels.max() < 8  # 8 classes
    from autotm_graph.weights import example_inputs

    np.testing.assert_array_equal(timer.host_value("x"), example_inputs(graph)["x"])
    h = timer.host_value("h")  # an activation: finite for log, sqrt and division
    assert h.shape == (64, 256) and h.min() >= 0.5 and h.max() < 1.5
    np.testing.assert_array_equal(timer.host_value("h"), h)  # deterministic


def test_the_penalty_is_the_executors_function_of_slow_bytes(graph: Graph) -> None:
    model = DeviceModel.load("optane-dc-2019")
    with open_tiers(TierOptions(), 4096, 4096) as tiers:
        gemm = graph.nodes[0]
        fast = all_fast(gemm)
        assert penalty_s(tiers, gemm, graph, fast) == 0.0
        config = Config((SLOW, SLOW, FAST), (SLOW,))
        x, w1, h_pre = (graph.tensors[n].nbytes for n in ("x", "w1", "h_pre"))
        expected = model.kernel_penalty_s(x + w1, h_pre, 2, 1)
        assert penalty_s(tiers, gemm, graph, config) == pytest.approx(expected)
    with open_tiers(TierOptions(device_model="none"), 4096, 4096) as plain:
        assert penalty_s(plain, gemm, graph, config) == 0.0  # no model: nothing injected


def test_placement_counts_an_aliased_tensor_once(tmp_path: Path) -> None:
    from tests.profile.test_configs import _concat_graph

    graph = _concat_graph(tmp_path, 2)
    square = graph.nodes[3]  # Mul(r2, r2)
    slow_config = next(
        c for c in node_configs(graph, square, fixed_tiers(graph, 0)) if c.input_tiers[0] == SLOW
    )
    kernel = placement(square, graph, slow_config)
    assert [r.tensor for r in kernel.inputs if r is not None] == ["r2", "r2"]
    with open_tiers(TierOptions(), 4096, 4096) as tiers:
        once = tiers.kernel_penalty_s(
            graph.tensors["r2"].nbytes,
            graph.tensors["sq"].nbytes if slow_config.output_tiers[0] == SLOW else 0,
            1,
            int(slow_config.output_tiers[0] == SLOW),
        )
        assert penalty_s(tiers, square, graph, slow_config) == pytest.approx(once)


def test_pool_sizes_cover_the_largest_kernel() -> None:
    assert pool_sizes([(10_000, 5_000), (3_000, 9_000)]) == (12_288, 12_288)
    assert pool_sizes([]) == (4096, 4096)


def test_boolean_and_integer_tensors_are_placed_and_timed(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    graph_proto = helper.make_graph(
        [
            helper.make_node("Greater", ["a", "b"], ["mask"], name="greater"),
            helper.make_node("Cast", ["mask"], ["ints"], name="cast", to=TensorProto.INT64),
        ],
        "bools",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [64, 64]) for n in ("a", "b")],
        [helper.make_tensor_value_info("ints", TensorProto.INT64, [64, 64])],
        value_info=[helper.make_tensor_value_info("mask", TensorProto.BOOL, [64, 64])],
    )
    path = tmp_path / "bools.onnx"
    path.write_bytes(
        helper.make_model(
            graph_proto, opset_imports=[helper.make_opsetid("", 17)]
        ).SerializeToString()
    )
    graph = load_graph(path)
    with open_tiers(TierOptions(), 1 << 20, 1 << 20) as tiers:
        timer = KernelTimer(graph, tiers, Protocol(budget_s=0.001))
        for node in graph.nodes:
            prepared = timer.prepare(node)
            config = node_configs(graph, node, fixed_tiers(graph, 0))[-1]  # all slow
            assert timer.time(prepared, config).samples >= 3
        assert timer.host_value("mask").dtype == np.bool_  # a bool input gets random bits


def test_integer_tensors_a_node_produces_come_from_running_it(
    zoo_graph: Callable[[str, int], Path],
) -> None:
    graph = load_graph(zoo_graph("vgg19-tiny", 2))
    pool = next(n for n in graph.nodes if n.op_type == "MaxPool")
    with open_tiers(TierOptions(), 4096, 4096) as tiers:
        indices = KernelTimer(graph, tiers, Protocol()).host_value(pool.outputs[1])
    size = int(np.prod(graph.tensors[pool.inputs[0]].shape))
    assert indices.dtype == np.int64 and indices.min() >= 0 and indices.max() < size
    assert len(np.unique(indices)) == indices.size  # a real MaxPool picks distinct maxima


def test_tensors_are_laid_out_by_the_pools_alignment_rule(graph: Graph, tiers: Tiers) -> None:
    """As in a run: small tensors share pages at cache-line offsets, large ones start on pages."""
    timer = KernelTimer(graph, tiers, Protocol(budget_s=0.001))
    base = _address(tiers.fast.bytes_view(0, 1))
    for node in graph.nodes:
        prepared = timer.prepare(node)
        inputs, outputs, _ = timer.place(prepared, all_fast(node))
        views = [v for v in (*inputs, *outputs) if v is not None]
        for view in views:
            offset = _address(view) - base
            assert offset % (4096 if view.nbytes >= 4096 else 64) == 0
    sgd = next(n for n in graph.nodes if n.name == "sgd_b1")  # b1, its gradient, lr: all small
    inputs, outputs, _ = timer.place(timer.prepare(sgd), all_fast(sgd))
    offsets = sorted(_address(v) - base for v in (*inputs, *outputs) if v is not None)
    assert offsets[-1] < 4096 and len(offsets) == len(set(offsets)) >= 3  # one shared page
