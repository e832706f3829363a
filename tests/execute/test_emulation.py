"""Emulated costs per kernel: the device model's formula over the plan's slow traffic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from autotm_execute.cache2lm import LINE_BYTES
from autotm_execute.device_model import DeviceModel
from autotm_execute.emulation import cache_penalties, cache_trace, kernel_penalties, slow_traffic
from autotm_execute.schedule import plan_schedule, unplanned_schedule
from autotm_graph.ir import Graph

from tests.execute.plans import PLANS, WIDE, load_tiny_mlp, slow_bytes_read


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Graph:
    return load_tiny_mlp(tmp_path_factory.mktemp("graph"))[1]


@pytest.fixture(scope="module")
def model() -> DeviceModel:
    return DeviceModel.load("optane-dc-2019")


@pytest.mark.parametrize("kind", ["all-slow", "static-mix", "alternating"])
def test_penalties_follow_the_formula(graph: Graph, model: DeviceModel, kind: str) -> None:
    plan = PLANS[kind](graph)
    schedule = plan_schedule(graph, plan, "p")
    penalties = kernel_penalties(schedule, model)
    reads = slow_bytes_read(plan, graph)
    f, s = model.fast, model.slow
    for placement in schedule.kernels:
        node = graph.nodes[placement.node]
        writes = {
            n
            for n, t in zip(node.outputs, placement.output_tiers, strict=True)
            if n and t == "slow"
        }
        read_names = {
            n for n, t in zip(node.inputs, placement.input_tiers, strict=True) if n and t == "slow"
        }
        write_bytes = sum(graph.tensors[n].nbytes for n in writes)
        expected = (
            reads[node.index] * (1 / s.read_bytes_per_s - 1 / f.read_bytes_per_s)
            + write_bytes * (1 / s.write_bytes_per_s - 1 / f.write_bytes_per_s)
            + len(read_names) * (s.read_latency_s - f.read_latency_s)
            + len(writes) * (s.write_latency_s - f.write_latency_s)
        )
        assert penalties[node.index] == pytest.approx(expected, rel=1e-12, abs=1e-18)
    if kind == "all-slow":
        assert (penalties > 0).all()


def test_all_fast_has_no_penalty(graph: Graph, model: DeviceModel) -> None:
    schedule = unplanned_schedule(graph, "all-fast")
    assert not kernel_penalties(schedule, model).any()
    assert not kernel_penalties(plan_schedule(graph, PLANS["all-slow"](graph), "p"), None).any()


def test_slow_traffic_counts_a_tensor_read_twice_once(graph: Graph) -> None:
    schedule = plan_schedule(graph, PLANS["all-slow"](graph), "p")
    fc2_dw = next(p for p in schedule.kernels if graph.nodes[p.node].name == "fc2_dw")
    traffic = slow_traffic(fc2_dw)
    assert traffic.read_tensors == 2 and traffic.write_tensors == 1


def test_2lm_trace_reads_inputs_then_writes_outputs(graph: Graph) -> None:
    schedule = unplanned_schedule(graph, "2lm")
    trace = cache_trace(schedule)
    first = schedule.kernels[0]
    reads = sum(-(-r.nbytes // LINE_BYTES) for r in first.inputs if r is not None)
    assert not trace.writes[:reads].any() and trace.writes[reads]
    assert (np.diff(trace.kernels) >= 0).all()


def test_2lm_penalties_vanish_when_everything_fits(tmp_path: Path, model: DeviceModel) -> None:
    _, graph = load_tiny_mlp(tmp_path, **WIDE)  # a pool of several pages
    schedule = unplanned_schedule(graph, "2lm")
    big = cache_penalties(schedule, model, cache_bytes=1 << 30)
    assert big.cold.sum() > 0 and big.steady.sum() == 0
    assert big.result.steady.totals()["misses"] == 0
    tiny = cache_penalties(schedule, model, cache_bytes=LINE_BYTES)
    assert tiny.steady.sum() > 0 and tiny.result.steady.totals()["writebacks"] > 0
