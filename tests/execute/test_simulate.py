"""--simulate: a plan replayed against a hand-made profile gives the hand-computed time."""

from __future__ import annotations

from pathlib import Path

import pytest
from autotm_execute.device_model import DeviceModel
from autotm_execute.emulation import kernel_penalties
from autotm_execute.schedule import plan_schedule, unplanned_schedule
from autotm_execute.simulate import load_profile, simulate
from autotm_graph.ir import Graph
from autotm_schemas import BadInputError, SchemaError

from tests.execute.plans import PLANS, WIDE, load_tiny_mlp
from tests.execute.profiles import COPY, fast_time, make_profile


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Graph, Path]:
    folder = tmp_path_factory.mktemp("sim")
    _, graph = load_tiny_mlp(folder)
    return graph, make_profile(graph, folder / "profile")


def fast_total(graph: Graph) -> float:
    return sum(fast_time(_first_index(graph, n.index)) for n in graph.nodes)


def _first_index(graph: Graph, index: int) -> int:
    """Nodes sharing a kernel key share the time of the first node with it."""
    from autotm_graph.ir import kernel_key

    key = kernel_key(graph, graph.nodes[index])
    return next(n.index for n in graph.nodes if kernel_key(graph, n) == key)


def test_all_fast_is_the_sum_of_fast_times(setup: tuple[Graph, Path]) -> None:
    graph, profile_dir = setup
    result = simulate(
        graph, unplanned_schedule(graph, "all-fast"), load_profile(profile_dir, graph), None
    )
    assert result.iteration_s == pytest.approx(fast_total(graph))
    assert result.provenance == "emulated:optane-dc-2019+simulated"
    assert set(result.row_provenance) == {"emulated:optane-dc-2019+simulated"}


def test_all_slow_uses_the_profiled_slow_times(setup: tuple[Graph, Path]) -> None:
    graph, profile_dir = setup
    schedule = plan_schedule(graph, PLANS["all-slow"](graph), "p")
    result = simulate(graph, schedule, load_profile(profile_dir, graph), None)
    assert result.iteration_s == pytest.approx(2 * fast_total(graph))


def test_unprofiled_placements_fall_back_to_fast_plus_penalty(setup: tuple[Graph, Path]) -> None:
    graph, profile_dir = setup
    schedule = plan_schedule(graph, PLANS["static-mix"](graph), "p")
    profile = load_profile(profile_dir, graph)
    result = simulate(graph, schedule, profile, None)
    model = DeviceModel.load("optane-dc-2019")
    penalties = kernel_penalties(schedule, model)
    mixed = [
        p.node
        for p in schedule.kernels
        if len({t for t in (*p.input_tiers, *p.output_tiers) if t}) > 1
    ]
    assert mixed, "the static mix must have kernels with mixed tiers"
    expected = 0.0
    for p in schedule.kernels:
        t = fast_time(_first_index(graph, p.node))
        tiers = {t for t in (*p.input_tiers, *p.output_tiers) if t}
        expected += (
            2 * t if tiers == {"slow"} else t + (penalties[p.node] if p.node in mixed else 0)
        )
    assert result.iteration_s == pytest.approx(expected)


def test_sync_moves_add_bytes_over_bandwidth(setup: tuple[Graph, Path]) -> None:
    graph, profile_dir = setup
    schedule = plan_schedule(graph, PLANS["sync-evict-fetch"](graph), "p")
    result = simulate(graph, schedule, load_profile(profile_dir, graph), None)
    moves = sum(m.nbytes / COPY[m.direction]["sync_bytes_per_s"] for m in schedule.moves)
    assert result.sync_move_s.sum() == pytest.approx(moves)
    assert result.iteration_s == pytest.approx(fast_total(graph) + moves)


def test_async_moves_overlap_kernels_and_stall_when_late(setup: tuple[Graph, Path]) -> None:
    graph, profile_dir = setup
    schedule = plan_schedule(graph, PLANS["async-evict-fetch"](graph), "p")
    result = simulate(graph, schedule, load_profile(profile_dir, graph), None)
    evict, fetch = schedule.moves
    times = [fast_time(_first_index(graph, k)) for k in range(len(graph.nodes))]
    # replay by hand: the evict overlaps kernel evict.start, the fetch kernel fetch.start
    t = 0.0
    ends: dict[int, float] = {}
    engine = 0.0
    for k in range(len(times)):
        for m in (evict, fetch):
            if m.done_by == k:
                t = max(t, ends[m.index])
            if m.start == k:
                engine = max(t, engine) + m.nbytes / COPY[m.direction]["async_bytes_per_s"]
                ends[m.index] = engine
        t += times[k]
    assert result.iteration_s == pytest.approx(t)
    assert result.iteration_s > fast_total(graph)  # the slow copies could not hide
    assert result.async_wait_s[evict.done_by] > 0


def test_2lm_needs_a_cache_size(tmp_path: Path) -> None:
    _, graph = load_tiny_mlp(tmp_path, **WIDE)  # a pool of several 4 KiB lines
    profile_dir = make_profile(graph, tmp_path / "profile")
    schedule = unplanned_schedule(graph, "2lm")
    profile = load_profile(profile_dir, graph)
    with pytest.raises(BadInputError, match="cache size"):
        simulate(graph, schedule, profile, None)
    small = simulate(graph, schedule, profile, None, cache_bytes=4096)
    large = simulate(graph, schedule, profile, None, cache_bytes=1 << 30)
    assert large.iteration_s == pytest.approx(fast_total(graph))
    assert small.iteration_s > large.iteration_s


def test_a_profile_of_another_graph_is_refused(setup: tuple[Graph, Path], tmp_path: Path) -> None:
    _, profile_dir = setup
    _, other = load_tiny_mlp(tmp_path, hidden=8)
    with pytest.raises(SchemaError, match=r"profile\.json: graph\.sha256"):
        load_profile(profile_dir, other)


def test_a_missing_profile_dir_is_refused(setup: tuple[Graph, Path], tmp_path: Path) -> None:
    graph, _ = setup
    with pytest.raises(BadInputError, match="profile directory"):
        load_profile(tmp_path / "none", graph)
