"""Plans into schedules: what is accepted, and every refusal naming its field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from autotm_execute.schedule import plan_schedule, require_fast_kernels, unplanned_schedule
from autotm_graph.ir import Graph
from autotm_schemas import SchemaError, validate_document

from tests.execute.plans import PLANS, WIDE, load_tiny_mlp, make_plan, place_scratch


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Graph:
    return load_tiny_mlp(tmp_path_factory.mktemp("graph"))[1]


@pytest.mark.parametrize("kind", sorted(PLANS))
def test_hand_made_plans_follow_the_schema_and_schedule(graph: Graph, kind: str) -> None:
    plan = PLANS[kind](graph)
    validate_document(plan, "plan", kind)
    schedule = plan_schedule(graph, plan, "plan.json")
    assert schedule.mode == "plan" and schedule.n_nodes == len(graph.nodes)
    assert len(schedule.moves) == len(plan["moves"])
    assert schedule.plan_summary is not None
    assert schedule.plan_summary["formulation"] == plan["formulation"]
    for placement in schedule.kernels:
        entry = plan["kernels"][placement.node]
        assert placement.input_tiers == entry["input_tiers"]
        assert placement.output_tiers == entry["output_tiers"]


def test_moves_are_filed_by_node(graph: Graph) -> None:
    schedule = plan_schedule(graph, PLANS["async-evict-fetch"](graph), "p")
    evict, fetch = schedule.moves
    assert schedule.asyncs_at[evict.start] == [evict]
    assert schedule.waits_before[evict.done_by] == [evict]
    assert evict.src.tier == "fast" and evict.dst.tier == "slow"
    assert fetch.src is evict.dst and fetch.dst.tier == "fast"
    sync = plan_schedule(graph, PLANS["sync-evict-fetch"](graph), "p")
    assert [m.kind for m in sync.moves] == ["sync", "sync"]
    assert all(sync.syncs_before[m.start] == [m] for m in sync.moves)


def test_initial_and_final_residencies(graph: Graph) -> None:
    schedule = plan_schedule(graph, PLANS["async-to-end"](graph), "p")
    assert [r.tier for r in schedule.initial("w1")] == ["fast"]
    assert sorted(r.tier for r in schedule.final("w1.updated")) == ["fast", "slow"]
    move_counts = schedule.move_counts()
    assert move_counts["fast_to_slow"]["async"]["count"] == 3  # not b1: updated last
    assert move_counts["slow_to_fast"]["sync"] == {"count": 0, "bytes": 0}


@pytest.mark.parametrize("mode", ["all-fast", "2lm", "unified"])
def test_unplanned_schedules_use_one_pool(graph: Graph, mode: str) -> None:
    schedule = unplanned_schedule(graph, mode)
    tier = "slow" if mode == "2lm" else "fast"
    other = "fast" if tier == "slow" else "slow"
    assert schedule.pool_bytes[other] == 0
    assert schedule.pool_bytes[tier] >= graph.peak_live_bytes()
    assert all(set(p.input_tiers) <= {tier, ""} for p in schedule.kernels)
    assert schedule.scratch_tier == ("slow" if mode == "2lm" else "fast")


def broken(graph: Graph, edit: Any) -> dict[str, Any]:
    plan = copy.deepcopy(PLANS["static-mix"](graph))
    edit(plan)
    return plan


def tensor_entry(plan: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in plan["tensors"] if t["name"] == name)


def _overlap(plan: dict[str, Any]) -> None:
    # h_pre (node 0..1) and h (node 1..) are both live at node 1: give them one offset
    tensor_entry(plan, "h")["residencies"][0]["offset"] = tensor_entry(plan, "h_pre")[
        "residencies"
    ][0]["offset"]


CASES = [
    ("hash", lambda p: p.update(graph_sha256="0" * 64), r"graph_sha256: .*another graph"),
    ("overlap", _overlap, r"tensors: .*'h(_pre)?'.*overlap in the fast pool"),
    (
        "unaligned",
        lambda p: p["tensors"][0]["residencies"][0].update(offset=100),
        r"tensors\[0\]\.residencies\[0\]\.offset: expected a multiple of 64 for \d+ bytes",
    ),
    (
        "beyond pool",
        lambda p: p["pools"].update(fast_bytes=64),
        r"offset: expected the tensor inside the fast pool",
    ),
    (
        "missing tensor",
        lambda p: p["tensors"].pop(),
        r"tensors: expected an entry for every tensor",
    ),
    ("unknown tensor", lambda p: p["tensors"][0].update(name="ghost"), r"tensors\[0\]\.name"),
    ("wrong bytes", lambda p: p["tensors"][0].update(bytes=3), r"tensors\[0\]\.bytes"),
    (
        "node range",
        lambda p: p["tensors"][0]["residencies"][0].update(to_node=99),
        r"to_node: expected from_node <= to_node < 15",
    ),
    (
        "kernel tier",
        lambda p: p["kernels"][0]["input_tiers"].__setitem__(1, "fast"),
        r"kernels\[0\]\.input_tiers\[1\]: expected tensor 'w1' to have a fast residency",
    ),
    (
        "kernel arity",
        lambda p: p["kernels"][0]["input_tiers"].pop(),
        r"kernels\[0\]\.input_tiers: expected 3 entries",
    ),
    ("kernel missing", lambda p: p["kernels"].pop(), r"kernels: expected an entry for every node"),
    (
        "move without source",
        lambda p: p["moves"].append(
            {
                "tensor": "h",
                "direction": "slow_to_fast",
                "kind": "sync",
                "start_node": 3,
                "done_by_node": 3,
                "bytes": 256,
            }
        ),
        r"moves\[0\]: expected a source residency of 'h' in the slow tier",
    ),
    (
        "sync span",
        lambda p: p["moves"].append(
            {
                "tensor": "h",
                "direction": "fast_to_slow",
                "kind": "sync",
                "start_node": 3,
                "done_by_node": 4,
                "bytes": 256,
            }
        ),
        r"moves\[0\]\.done_by_node: expected 3",
    ),
    (
        "move bytes",
        lambda p: p["moves"].append(
            {
                "tensor": "h",
                "direction": "fast_to_slow",
                "kind": "sync",
                "start_node": 3,
                "done_by_node": 3,
                "bytes": 1,
            }
        ),
        r"moves\[0\]\.bytes: expected 256",
    ),
]


@pytest.mark.parametrize(("case", "edit", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_plans_are_refused_naming_the_field(
    graph: Graph, case: str, edit: Any, message: str
) -> None:
    with pytest.raises(SchemaError, match=message) as info:
        plan_schedule(graph, broken(graph, edit), "plan.json")
    assert str(info.value).startswith("plan.json: ")
    assert "\n" not in str(info.value)


def test_gpu_plans_must_keep_kernels_in_device_memory(graph: Graph) -> None:
    require_fast_kernels(plan_schedule(graph, make_plan(graph), "p"), "p")
    with pytest.raises(SchemaError, match=r"kernels\[\d+\]\.input_tiers\[\d\]: expected fast"):
        require_fast_kernels(plan_schedule(graph, PLANS["all-slow"](graph), "p"), "p")


def test_load_tiny_mlp_writes_the_file(tmp_path: Path) -> None:
    path, graph = load_tiny_mlp(tmp_path)
    assert path.exists() and graph.network == "tiny_mlp"


def test_small_tensors_may_share_a_page_and_large_ones_need_their_own(tmp_path: Path) -> None:
    _, graph = load_tiny_mlp(tmp_path, **WIDE)
    plan = make_plan(graph)
    offsets = {t["name"]: t["residencies"][0]["offset"] for t in plan["tensors"]}
    small = [n for n, t in graph.tensors.items() if t.nbytes < 4096]
    assert len({offsets[n] // 4096 for n in small}) < len(small)  # some share a page
    assert any(offsets[n] % 4096 for n in small)  # at a 64-byte, not a page, boundary
    schedule = plan_schedule(graph, plan, "plan.json")
    assert schedule.pool_bytes["fast"] == plan["pools"]["fast_bytes"]
    # the same 64-byte alignment is refused for a tensor of a page or more
    large = next(i for i, t in enumerate(plan["tensors"]) if t["bytes"] >= 4096)
    plan["tensors"][large]["residencies"][0]["offset"] += 64
    with pytest.raises(
        SchemaError,
        match=rf"tensors\[{large}\]\.residencies\[0\]\.offset: "
        r"expected a multiple of 4096 for \d+ bytes .*got \d+$",
    ):
        plan_schedule(graph, plan, "plan.json")


def test_padding_belongs_to_its_tensor(tmp_path: Path) -> None:
    """A small tensor inside a large one's padding (past its bytes, within its padded size)
    while both live is an overlap: padded_size is what a tensor occupies."""
    _, graph = load_tiny_mlp(tmp_path, features=65, hidden=64)
    plan = make_plan(graph)
    w1, b1 = tensor_entry(plan, "w1"), tensor_entry(plan, "b1")
    assert w1["bytes"] == 16640  # padded to 20480
    b1["residencies"][0]["offset"] = w1["residencies"][0]["offset"] + 16640
    with pytest.raises(SchemaError, match=r"tensors: .*'w1'.*'b1'.*overlap in the fast pool"):
        plan_schedule(graph, plan, "p")


def _with_scratch(graph: Graph, nbytes: int) -> dict[str, Any]:
    return place_scratch(make_plan(graph), [nbytes] * len(graph.nodes))


@pytest.mark.parametrize("nbytes", [100, 5000])
def test_a_plan_places_each_kernels_scratch(graph: Graph, nbytes: int) -> None:
    plan = _with_scratch(graph, nbytes)
    schedule = plan_schedule(graph, plan, "p")
    offset = plan["kernels"][0]["scratch_offset"]
    assert offset % (4096 if nbytes >= 4096 else 64) == 0
    assert all(k.scratch == (offset, nbytes) for k in schedule.kernels)
    assert schedule.pool_bytes["fast"] == plan["pools"]["fast_bytes"]


def _scratch_on_an_input(plan: dict[str, Any]) -> None:
    x = tensor_entry(plan, "x")["residencies"][0]["offset"]  # read by node 0
    plan["kernels"][0]["scratch_offset"] = x


SCRATCH_CASES = [
    (
        "unaligned",
        lambda p: p["kernels"][3].update(scratch_offset=p["kernels"][3]["scratch_offset"] + 64),
        r"kernels\[3\]\.scratch_offset: expected a multiple of 4096 for 5000 bytes",
        5000,
    ),
    (
        "beyond pool",
        lambda p: p["pools"].update(fast_bytes=p["kernels"][0]["scratch_offset"] + 4096),
        r"kernels\[0\]\.scratch_offset: expected the scratch inside the fast pool",
        5000,
    ),
    (
        "no offset",
        lambda p: p["kernels"][2].pop("scratch_offset"),
        r"kernels\[2\]\.scratch_offset: expected an offset in the fast pool",
        100,
    ),
    (
        "on a live tensor",
        _scratch_on_an_input,
        r"kernels: expected .*'x' .* and the scratch of node 0 .*overlap in the fast pool",
        100,  # cache-line aligned, like x
    ),
]


@pytest.mark.parametrize(
    ("case", "edit", "message", "nbytes"), SCRATCH_CASES, ids=[c[0] for c in SCRATCH_CASES]
)
def test_bad_scratch_placements_are_refused(
    graph: Graph, case: str, edit: Any, message: str, nbytes: int
) -> None:
    plan = _with_scratch(graph, nbytes)
    edit(plan)
    with pytest.raises(SchemaError, match=message) as info:
        plan_schedule(graph, plan, "plan.json")
    assert "\n" not in str(info.value)
