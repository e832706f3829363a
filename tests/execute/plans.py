"""Hand-made plans for executor tests: plan.json dicts following plan.schema.json.

The optimizer is not under test here, so plans are written from a short description: where
each tensor lives over which nodes, and which copies connect those residencies. Offsets come
from the executor's own best-fit layout per tier (a plan that shares bytes wrongly is made by
hand in the tests that want one). Each kernel reads and writes the fast copy of a tensor when
one covers the node, else the slow one.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from autotm_execute.layout import Block, assign_offsets
from autotm_graph.ir import Graph, kernel_key, load_graph

from tests.handmade import tiny_mlp

Segment = tuple[str, int, int]  # tier, first node, last node

#: tiny_mlp options for tests that need a pool of many pages (the emulated 2LM cache has 4 KiB
#: lines): the default tiny_mlp's tensors are all small, so they share pages and its whole pool
#: is under one page.
WIDE = {"features": 64, "hidden": 64}


def load_tiny_mlp(folder: Path, **kwargs: int) -> tuple[Path, Graph]:
    path = folder / "tiny_mlp.onnx"
    onnx.save(tiny_mlp(**kwargs), str(path))
    return path, load_graph(path)


def make_plan(
    graph: Graph,
    segments: Mapping[str, Sequence[Segment]] | None = None,
    moves: Sequence[Mapping[str, Any]] = (),
    default_tier: str = "fast",
    formulation: str = "static",
) -> dict[str, Any]:
    """A plan: ``segments`` per tensor (others: ``default_tier`` over their lifetime)."""
    segments = dict(segments or {})
    blocks: dict[str, list[tuple[str, Block]]] = {"fast": [], "slow": []}
    per_tensor: dict[str, list[tuple[str, str, int, int]]] = {}
    for name, tensor in graph.tensors.items():
        spans = segments.get(name) or [(default_tier, *graph.lifetime(name))]
        for i, (tier, first, last) in enumerate(spans):
            key = f"{name}#{i}"
            blocks[tier].append((key, Block(key, tensor.nbytes, first, last)))
            per_tensor.setdefault(name, []).append((key, tier, first, last))
    offsets: dict[str, int] = {}
    pools: dict[str, int] = {}
    for tier, entries in blocks.items():
        placed, size = assign_offsets([b for _, b in entries])
        offsets.update(placed)
        pools[tier] = size

    def tier_at(name: str, node: int) -> str:
        tiers = {tier for _, tier, first, last in per_tensor[name] if first <= node <= last}
        return "fast" if "fast" in tiers else "slow"

    tensors = [
        {
            "name": name,
            "bytes": graph.tensors[name].nbytes,
            "residencies": [
                {"tier": tier, "offset": offsets[key], "from_node": first, "to_node": last}
                for key, tier, first, last in spans
            ],
        }
        for name, spans in per_tensor.items()
    ]
    kernels = [
        {
            "node": node.index,
            "kernel_key": kernel_key(graph, node),
            "input_tiers": [tier_at(n, node.index) if n else "" for n in node.inputs],
            "output_tiers": [tier_at(n, node.index) if n else "" for n in node.outputs],
            "predicted_s": 0.0,
        }
        for node in graph.nodes
    ]
    move_docs = [
        {
            "tensor": m["tensor"],
            "direction": m["direction"],
            "kind": m["kind"],
            "start_node": m["start"],
            "done_by_node": m.get("done_by", m["start"]),
            "bytes": graph.tensors[m["tensor"]].nbytes,
        }
        for m in moves
    ]
    footprint = graph.peak_live_bytes()
    return {
        "format": "autotm.plan/1",
        "graph_sha256": graph.sha256,
        "network": graph.network,
        "batch": graph.meta.batch if graph.meta else 1,
        "formulation": formulation,
        "ratio": None,
        "fast_limit_bytes": pools["fast"],
        "footprint_bytes": footprint,
        "tensors": tensors,
        "moves": move_docs,
        "kernels": kernels,
        "predicted": {
            "kernel_s": 0.0,
            "sync_move_s": 0.0,
            "async_move_s": 0.0,
            "async_overlap_s": 0.0,
            "total_s": 0.0,
        },
        "pools": {"fast_bytes": pools["fast"], "slow_bytes": pools["slow"]},
        "solver": {
            "name": "heuristic",
            "status": "heuristic",
            "variables": 0,
            "constraints": 0,
            "build_s": 0.0,
            "solve_s": 0.0,
        },
        "provenance": "measured",
    }


def all_slow(graph: Graph) -> dict[str, Any]:
    return make_plan(graph, default_tier="slow", formulation="all-slow")


def static_mix(graph: Graph) -> dict[str, Any]:
    """Parameters and their updates slow, everything else fast: a static placement."""
    slow = {
        name: [("slow", *graph.lifetime(name))]
        for name, t in graph.tensors.items()
        if t.kind in ("parameter", "updated_parameter")
    }
    return make_plan(graph, slow)


def alternating(graph: Graph) -> dict[str, Any]:
    """Every other tensor slow: kernels with mixed input and output tiers."""
    names = list(graph.tensors)
    slow = {name: [("slow", *graph.lifetime(name))] for name in names[::2]}
    return make_plan(graph, slow)


def _evicted_tensor(graph: Graph) -> tuple[str, int, int, int, int]:
    """An activation with no use for at least two nodes between two touches of it:
    (name, producer, last touch before the gap, first use after it, last use)."""
    for name, tensor in graph.tensors.items():
        if tensor.producer is None or tensor.kind not in ("activation", "gradient"):
            continue
        touches = [tensor.producer, *sorted(u for u in tensor.users if u > tensor.producer)]
        for before, after in itertools.pairwise(touches):
            if after >= before + 3:
                return name, tensor.producer, before, after, max(tensor.users)
    raise AssertionError("no tensor with a gap to evict across")


def sync_evict_fetch(graph: Graph) -> dict[str, Any]:
    """One activation evicted (sync) to slow after a use, fetched back (sync) before the next."""
    name, producer, before, after, last = _evicted_tensor(graph)
    segments = {
        name: [
            ("fast", producer, before),
            ("slow", before + 1, after),
            ("fast", after, last),
        ]
    }
    moves = [
        {"tensor": name, "direction": "fast_to_slow", "kind": "sync", "start": before + 1},
        {"tensor": name, "direction": "slow_to_fast", "kind": "sync", "start": after},
    ]
    return make_plan(graph, segments, moves, formulation="synchronous")


def async_evict_fetch(graph: Graph) -> dict[str, Any]:
    """The same tensor moved asynchronously: evicted over the node after its last use before
    the gap, fetched over the node before its next use."""
    name, producer, before, after, last = _evicted_tensor(graph)
    segments = {
        name: [
            ("fast", producer, before + 1),
            ("slow", before + 1, after),
            ("fast", after - 1, last),
        ]
    }
    moves = [
        {
            "tensor": name,
            "direction": "fast_to_slow",
            "kind": "async",
            "start": before + 1,
            "done_by": before + 2,
        },
        {
            "tensor": name,
            "direction": "slow_to_fast",
            "kind": "async",
            "start": after - 1,
            "done_by": after,
        },
    ]
    return make_plan(graph, segments, moves, formulation="asynchronous")


def updated_params_to_slow_async(graph: Graph) -> dict[str, Any]:
    """Every updated parameter written fast and copied to slow by the end of the iteration."""
    n = len(graph.nodes)
    segments = {}
    moves = []
    for name, tensor in graph.tensors.items():
        if tensor.kind != "updated_parameter" or tensor.producer is None:
            continue
        p = tensor.producer
        if p + 1 >= n:
            continue
        segments[name] = [("fast", p, n - 1), ("slow", p + 1, n - 1)]
        moves.append(
            {
                "tensor": name,
                "direction": "fast_to_slow",
                "kind": "async",
                "start": p + 1,
                "done_by": n,
            }
        )
    return make_plan(graph, segments, moves, formulation="asynchronous")


PLANS = {
    "all-slow": all_slow,
    "static-mix": static_mix,
    "alternating": alternating,
    "sync-evict-fetch": sync_evict_fetch,
    "async-evict-fetch": async_evict_fetch,
    "async-to-end": updated_params_to_slow_async,
}


def slow_bytes_read(plan: Mapping[str, Any], graph: Graph) -> np.ndarray:
    """Bytes each kernel reads from the slow tier (distinct tensors), from the plan alone."""
    out = np.zeros(len(graph.nodes), np.int64)
    for entry in plan["kernels"]:
        node = graph.nodes[entry["node"]]
        seen = {
            name
            for name, tier in zip(node.inputs, entry["input_tiers"], strict=True)
            if name and tier == "slow"
        }
        out[node.index] = sum(graph.tensors[n].nbytes for n in seen)
    return out


def place_scratch(plan: dict[str, Any], scratch: Sequence[int]) -> dict[str, Any]:
    """The plan with every kernel's scratch (``scratch[node]`` bytes) placed in the fast pool, as
    the optimizer does: one region after the tensors, aligned for its size, reused by every
    kernel in turn (a kernel's scratch lives during that kernel only)."""
    from autotm_schemas.alignment import alignment, padded_size

    largest = max(scratch, default=0)
    if not largest:
        return plan
    pool = plan["pools"]["fast_bytes"]
    offset = -(-pool // alignment(largest)) * alignment(largest)
    for entry in plan["kernels"]:
        nbytes = int(scratch[entry["node"]])
        entry["scratch_bytes"] = nbytes
        entry["scratch_offset"] = offset if nbytes else 0
    plan["pools"]["fast_bytes"] = offset + padded_size(largest)
    plan["fast_limit_bytes"] = plan["pools"]["fast_bytes"]
    return plan
