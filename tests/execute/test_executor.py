"""The executor: every kind of plan gives bit-identical results, costs are really injected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from autotm_execute.emulation import cache_penalties
from autotm_execute.executor import (
    Executor,
    bind_kernels,
    check_plan_scratch,
    scratch_bytes_of,
)
from autotm_execute.schedule import Schedule, plan_schedule, unplanned_schedule
from autotm_execute.tiers import TierOptions, open_tiers
from autotm_execute.values import initial_values
from autotm_graph.ir import Graph, load_graph
from autotm_schemas import SchemaError

from tests.execute.graphs import GRAPHS, write_graph
from tests.execute.plans import PLANS, WIDE, load_tiny_mlp, place_scratch


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("graphs")


def run(
    graph: Graph,
    schedule: Schedule,
    options: TierOptions,
    iterations: int = 1,
    cache_bytes: int | None = None,
) -> tuple[dict[str, list[np.ndarray]], Executor]:
    kernels = bind_kernels(graph)
    sizes = Executor.pool_sizes(schedule, scratch_bytes_of(kernels, schedule))
    with open_tiers(options, sizes["fast"], sizes["slow"]) as tiers:
        cache = None
        if cache_bytes is not None:
            assert tiers.device_model is not None
            cache = cache_penalties(schedule, tiers.device_model, cache_bytes)
        executor = Executor(graph, schedule, tiers, initial_values(graph, 0), kernels, cache)
        executor.run(iterations)
        outputs = {o.name: executor.read(o.name) for o in graph.model.graph.output}
        executor.close()
    return outputs, executor


def assert_identical(got: dict[str, list[np.ndarray]], want: dict[str, list[np.ndarray]]) -> None:
    assert got.keys() == want.keys()
    for name, copies in got.items():
        for value in copies:
            assert value.tobytes() == want[name][0].tobytes(), name


@pytest.mark.parametrize("graph_name", GRAPHS)
@pytest.mark.parametrize("kind", sorted(PLANS))
def test_every_plan_kind_matches_all_fast_bit_for_bit(
    folder: Path, graph_name: str, kind: str
) -> None:
    graph = load_graph(write_graph(graph_name, folder))
    reference, _ = run(
        graph, unplanned_schedule(graph, "all-fast"), TierOptions(device_model="none")
    )
    schedule = plan_schedule(graph, PLANS[kind](graph), "plan.json")
    got, _executor = run(graph, schedule, TierOptions(device_model="none"), iterations=2)
    assert_identical(got, reference)
    loss = float(reference[graph.meta.loss][0]) if graph.meta else 0.0
    assert np.isfinite(loss)


def test_iterations_start_from_the_same_values(folder: Path) -> None:
    graph = load_graph(write_graph("tiny_mlp", folder))
    once, _ = run(graph, unplanned_schedule(graph, "all-fast"), TierOptions(device_model="none"))
    thrice, _ = run(
        graph, unplanned_schedule(graph, "all-fast"), TierOptions(device_model="none"), 3
    )
    assert_identical(thrice, once)


def test_emulated_kernels_take_at_least_their_penalty(folder: Path) -> None:
    graph = load_graph(write_graph("tiny_mlp", folder))
    schedule = plan_schedule(graph, PLANS["all-slow"](graph), "p")
    _, executor = run(graph, schedule, TierOptions(), iterations=2)
    kernel_s = np.array(executor.timings.kernel_s)
    assert (executor.penalties_steady > 0).all()
    assert (kernel_s >= executor.penalties_steady[None, :]).all()


def test_sync_and_async_moves_are_timed_where_they_happen(folder: Path) -> None:
    graph = load_graph(write_graph("tiny_mlp", folder))
    for kind in ("sync-evict-fetch", "async-evict-fetch"):
        schedule = plan_schedule(graph, PLANS[kind](graph), "p")
        _, executor = run(graph, schedule, TierOptions(), iterations=1)
        sync_s = np.array(executor.timings.sync_move_s[0])
        moved_at = {m.start for m in schedule.moves if m.kind == "sync"}
        assert all(sync_s[k] > 0 for k in moved_at)
        assert all(sync_s[k] == 0 for k in range(len(sync_s)) if k not in moved_at)


def test_2lm_runs_with_cache_penalties(tmp_path: Path) -> None:
    _, graph = load_tiny_mlp(tmp_path, **WIDE)  # a pool of several 4 KiB cache lines
    schedule = unplanned_schedule(graph, "2lm")
    reference, _ = run(
        graph, unplanned_schedule(graph, "all-fast"), TierOptions(device_model="none")
    )
    got, executor = run(graph, schedule, TierOptions(), iterations=2, cache_bytes=4096)
    assert_identical(got, reference)
    assert executor.penalties_cold.sum() > 0 and executor.penalties_steady.sum() > 0
    kernel_s = np.array(executor.timings.kernel_s)
    assert (kernel_s[1] >= executor.penalties_steady).all()


def test_scratch_is_appended_to_the_scratch_tier_aligned_for_its_size() -> None:
    schedule: Any = type("S", (), {"pool_bytes": {"fast": 5000, "slow": 0}, "scratch_tier": "fast"})
    # small scratch: a cache line after the pool, padded to lines; large: a page, whole pages
    assert Executor.pool_sizes(schedule, 100) == {"fast": 5056 + 128, "slow": 0}
    assert Executor.pool_sizes(schedule, 5000) == {"fast": 8192 + 8192, "slow": 0}
    assert Executor.pool_sizes(schedule, 0) == {"fast": 5000, "slow": 0}


def test_plans_are_json(folder: Path) -> None:
    graph = load_graph(write_graph("tiny_mlp", folder))
    for make in PLANS.values():
        json.dumps(make(graph))


def test_scratch_the_plan_places_is_where_kernels_work(folder: Path) -> None:
    """A plan giving every kernel its scratch in the fast pool (as the optimizer does) runs in
    exactly the plan's pools, nothing appended, and matches the all-fast run bit for bit."""
    graph = load_graph(write_graph("vgg19-tiny", folder))
    kernels = bind_kernels(graph)
    need = [int(k.scratch_bytes) for k in kernels]
    assert max(need) > 0
    plan = place_scratch(PLANS["static-mix"](graph), need)
    schedule = plan_schedule(graph, plan, "plan.json")
    assert scratch_bytes_of(kernels, schedule) == 0  # no shared region left to append
    assert Executor.pool_sizes(schedule, 0) == {
        "fast": plan["pools"]["fast_bytes"],
        "slow": plan["pools"]["slow_bytes"],
    }
    reference, _ = run(
        graph, unplanned_schedule(graph, "all-fast"), TierOptions(device_model="none")
    )
    got, _ = run(graph, schedule, TierOptions(device_model="none"))
    assert_identical(got, reference)
    offset = plan["kernels"][need.index(max(need))]["scratch_offset"]
    pools = plan["pools"]
    with open_tiers(
        TierOptions(device_model="none"), pools["fast_bytes"], pools["slow_bytes"]
    ) as tiers:
        placed = Executor(graph, schedule, tiers, initial_values(graph, 0), kernels)
        busy = next(step for step in placed._steps if step.scratch is not None)
        assert busy.scratch.ctypes.data == tiers.fast.bytes_view(offset, 1).ctypes.data
        placed.close()


def test_a_plan_with_too_little_scratch_is_refused(folder: Path) -> None:
    graph = load_graph(write_graph("vgg19-tiny", folder))
    kernels = bind_kernels(graph)
    need = [int(k.scratch_bytes) for k in kernels]
    node = next(i for i, n in enumerate(need) if n)  # the first kernel with scratch
    plan = place_scratch(PLANS["static-mix"](graph), [max(n - 64, 0) for n in need])
    schedule = plan_schedule(graph, plan, "plan.json")
    with pytest.raises(SchemaError, match=rf"kernels\[{node}\]\.scratch_bytes: expected at least"):
        check_plan_scratch(schedule, kernels, "plan.json")
