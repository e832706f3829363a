"""What the executor does at each node: where every input and output lives, which copies run.

A :class:`Schedule` comes either from a plan (plan.json, validated here against the graph) or
from the graph alone (all-fast, 2lm and unified runs, with offsets from
:func:`layout.assign_offsets`). The executor and the simulator both walk it, so a simulated
run and a real one make the same decisions.

Plan semantics (plan.schema.json): a residency ``[from_node, to_node]`` holds the tensor's
bytes at ``[offset, offset + bytes)`` of its tier's pool from just before kernel ``from_node``
starts until kernel ``to_node`` has finished. A move copies from a source residency to a
destination one; it may begin once kernel ``start_node - 1`` has finished and must be done
before kernel ``done_by_node`` starts (``done_by_node`` equal to the node count: by the end of
the iteration). Before kernel ``k`` the executor (1) waits for the asynchronous moves due at
``k``, (2) runs the synchronous moves of ``k``, (3) starts the asynchronous moves that begin at
``k``, then (4) runs kernel ``k`` on the residencies the plan's kernel entry names.

A kernel entry may place the kernel's scratch (``scratch_bytes`` at ``scratch_offset`` of the
fast pool, during that kernel only); the executor then gives the kernel exactly those bytes.
Kernels whose entry places none share one region appended to the fast pool.

Offsets follow the alignment rule every tool shares (:mod:`autotm_schemas.alignment`): a
multiple of 4096 for a tensor (or scratch) of 4096 bytes or more, of 64 for a smaller one, and
each occupies its padded size, so two residencies clash when their padded byte ranges
intersect while both live.

Validation refuses, with one line naming the plan file and the field: a plan for another graph
(hash mismatch), tensors missing or of the wrong size, offsets not aligned for their size,
two residencies (or a residency and a kernel's scratch) sharing padded bytes while both live,
residencies or scratch beyond their pool, kernel entries whose tiers have no residency covering
the node, moves without a source or destination.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from autotm_graph.ir import Graph, kernel_key
from autotm_schemas import SchemaError
from autotm_schemas.alignment import alignment, is_aligned, padded_size

from .layout import Block, assign_offsets, find_overlap, peak_live_bytes

TIERS = ("fast", "slow")
DIRECTIONS = ("slow_to_fast", "fast_to_slow")
KINDS = ("sync", "async")


@dataclass(frozen=True)
class Residency:
    """Bytes of one tensor at ``offset`` of ``tier``'s pool, live over nodes first..last."""

    tensor: str
    tier: str
    offset: int
    nbytes: int
    first: int
    last: int

    def covers(self, node: int) -> bool:
        return self.first <= node <= self.last


@dataclass(frozen=True)
class Move:
    """One copy between the tiers, per iteration."""

    index: int
    tensor: str
    direction: str
    kind: str
    start: int
    done_by: int
    nbytes: int
    src: Residency
    dst: Residency


@dataclass(frozen=True)
class KernelPlacement:
    """Where kernel ``node`` reads each input and writes each output (None: omitted).

    ``scratch`` is ``(offset, bytes)`` in the fast pool when the plan places the kernel's
    scratch; None when the kernel uses the shared region appended to the scratch tier.
    """

    node: int
    kernel_key: str
    inputs: tuple[Residency | None, ...]
    outputs: tuple[Residency | None, ...]
    predicted_s: float | None = None
    scratch: tuple[int, int] | None = None

    @property
    def input_tiers(self) -> list[str]:
        return [r.tier if r is not None else "" for r in self.inputs]

    @property
    def output_tiers(self) -> list[str]:
        return [r.tier if r is not None else "" for r in self.outputs]


@dataclass
class Schedule:
    """Everything a run needs to place tensors and move them, node by node."""

    mode: str  # plan | all-fast | 2lm | unified
    n_nodes: int
    residencies: dict[str, tuple[Residency, ...]]
    moves: tuple[Move, ...]
    kernels: tuple[KernelPlacement, ...]
    pool_bytes: dict[str, int]
    plan_summary: dict[str, Any] | None = None
    waits_before: list[list[Move]] = field(default_factory=list)
    syncs_before: list[list[Move]] = field(default_factory=list)
    asyncs_at: list[list[Move]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = self.n_nodes
        self.waits_before = [[] for _ in range(n + 1)]
        self.syncs_before = [[] for _ in range(n + 1)]
        self.asyncs_at = [[] for _ in range(n + 1)]
        for move in self.moves:
            if move.kind == "sync":
                self.syncs_before[move.start].append(move)
            else:
                self.asyncs_at[move.start].append(move)
                self.waits_before[move.done_by].append(move)

    @property
    def scratch_tier(self) -> str:
        """Kernel scratch lives in the fast tier, except in 2lm where there is one pool."""
        return "slow" if self.mode == "2lm" else "fast"

    def initial(self, name: str) -> tuple[Residency, ...]:
        """Where a tensor's initial value is written: its earliest residencies."""
        places = self.residencies.get(name, ())
        if not places:
            return ()
        first = min(r.first for r in places)
        return tuple(r for r in places if r.first == first)

    def final(self, name: str) -> tuple[Residency, ...]:
        """Where a result is read after the iteration: its residencies that last longest."""
        places = self.residencies.get(name, ())
        if not places:
            return ()
        last = max(r.last for r in places)
        return tuple(r for r in places if r.last == last)

    def high_water(self, tier: str) -> int:
        """The most bytes of ``tier`` live at one node (scratch not included)."""
        places = [r for rs in self.residencies.values() for r in rs if r.tier == tier]
        return peak_live_bytes(
            np.array([r.nbytes for r in places], np.int64),
            np.array([r.first for r in places], np.int64),
            np.array([r.last for r in places], np.int64),
            self.n_nodes,
        )

    def move_counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """Moves per iteration by direction and kind (run.schema.json ``moves``)."""
        counts = {d: {k: {"count": 0, "bytes": 0} for k in KINDS} for d in DIRECTIONS}
        for move in self.moves:
            entry = counts[move.direction][move.kind]
            entry["count"] += 1
            entry["bytes"] += move.nbytes
        return counts


def _blocks(graph: Graph) -> list[Block]:
    return [
        Block(name, tensor.nbytes, *graph.lifetime(name)) for name, tensor in graph.tensors.items()
    ]


def unplanned_schedule(graph: Graph, mode: str) -> Schedule:
    """All tensors in one pool at offsets from :func:`assign_offsets`.

    ``all-fast`` and ``unified`` use the fast pool; ``2lm`` the slow one (the memory the
    operating system sees in Memory Mode; DRAM is the cache in front of it).
    """
    tier = "slow" if mode == "2lm" else "fast"
    blocks = _blocks(graph)
    offsets, pool = assign_offsets(blocks)
    residencies: dict[str, tuple[Residency, ...]] = {
        b.name: (Residency(b.name, tier, offsets[b.name], b.nbytes, b.first, b.last),)
        for b in blocks
    }
    kernels = tuple(
        KernelPlacement(
            node=node.index,
            kernel_key=kernel_key(graph, node),
            inputs=tuple(residencies[name][0] if name else None for name in node.inputs),
            outputs=tuple(residencies[name][0] if name else None for name in node.outputs),
        )
        for node in graph.nodes
    )
    pool_bytes = {"fast": 0, "slow": 0}
    pool_bytes[tier] = pool
    return Schedule(mode, len(graph.nodes), residencies, (), kernels, pool_bytes)


class _PlanChecker:
    """Turns a plan document into a Schedule, raising SchemaError naming the field."""

    def __init__(self, graph: Graph, plan: Mapping[str, Any], path: str) -> None:
        self.graph = graph
        self.plan = plan
        self.path = path
        self.n = len(graph.nodes)

    def fail(self, where: str, expected: str) -> SchemaError:
        return SchemaError(self.path, where, expected)

    def check_graph(self) -> None:
        if self.plan["graph_sha256"] != self.graph.sha256:
            raise self.fail(
                "graph_sha256",
                f"{self.graph.sha256} (the sha256 of {self.graph.path}), got "
                f"{self.plan['graph_sha256']}: the plan was made for another graph",
            )

    def residencies(self) -> dict[str, tuple[Residency, ...]]:
        graph, pools = self.graph, self.plan["pools"]
        out: dict[str, tuple[Residency, ...]] = {}
        for t_index, entry in enumerate(self.plan["tensors"]):
            name = entry["name"]
            where = f"tensors[{t_index}]"
            tensor = graph.tensors.get(name)
            if tensor is None:
                raise self.fail(f"{where}.name", f"a tensor of the graph, got {name!r}")
            if name in out:
                raise self.fail(f"{where}.name", f"each tensor once, got {name!r} again")
            if entry["bytes"] != tensor.nbytes:
                raise self.fail(
                    f"{where}.bytes", f"{tensor.nbytes} for tensor {name!r}, got {entry['bytes']}"
                )
            places = []
            for r_index, raw in enumerate(entry["residencies"]):
                at = f"{where}.residencies[{r_index}]"
                offset, first, last = raw["offset"], raw["from_node"], raw["to_node"]
                if not is_aligned(offset, tensor.nbytes):
                    raise self.fail(f"{at}.offset", _alignment_expected(tensor.nbytes, offset))
                if not first <= last < self.n:
                    raise self.fail(
                        f"{at}.to_node",
                        f"from_node <= to_node < {self.n} (the node count), got [{first}, {last}]",
                    )
                pool = pools[f"{raw['tier']}_bytes"]
                if offset + tensor.nbytes > pool:
                    raise self.fail(
                        f"{at}.offset",
                        f"the tensor inside the {raw['tier']} pool of {pool} bytes "
                        f"(pools.{raw['tier']}_bytes), got [{offset}, {offset + tensor.nbytes})",
                    )
                places.append(Residency(name, raw["tier"], offset, tensor.nbytes, first, last))
            out[name] = tuple(places)
        # Tensors no node touches and the graph does not output (unused initializers) may be
        # left out of a plan; every other one needs a place.
        outputs = {o.name for o in self.graph.model.graph.output}
        missing = [
            name
            for name, tensor in self.graph.tensors.items()
            if name not in out and (tensor.users or tensor.producer is not None or name in outputs)
        ]
        if missing:
            raise self.fail(
                "tensors", f"an entry for every tensor of the graph; missing {missing[0]!r}"
            )
        return out

    def check_overlaps(
        self,
        residencies: Mapping[str, Sequence[Residency]],
        kernels: Sequence[KernelPlacement] = (),
    ) -> None:
        """Refuse two blocks of one pool whose padded bytes meet while both live.

        Blocks are the residencies and, in the fast pool, the scratch the plan places (live
        during its kernel only). Padded sizes: a tensor owns its alignment padding.
        """
        for tier in TIERS:
            blocks = [  # field, label, offset, bytes, first, last
                ("tensors", repr(r.tensor), r.offset, r.nbytes, r.first, r.last)
                for rs in residencies.values()
                for r in rs
                if r.tier == tier
            ]
            if tier == "fast":
                blocks += [
                    ("kernels", f"the scratch of node {k.node}", *k.scratch, k.node, k.node)
                    for k in kernels
                    if k.scratch is not None
                ]
            if len(blocks) < 2:
                continue
            starts = np.array([b[2] for b in blocks], np.int64)
            clash = find_overlap(
                starts,
                starts + np.array([padded_size(b[3]) for b in blocks], np.int64),
                np.array([b[4] for b in blocks], np.int64),
                np.array([b[5] for b in blocks], np.int64),
            )
            if clash is not None:
                one, two = blocks[clash[0]], blocks[clash[1]]
                spans = [
                    f"{label} [{at}, {at + padded_size(nbytes)}) nodes {first}..{last}"
                    for _, label, at, nbytes, first, last in (one, two)
                ]
                raise self.fail(
                    "kernels" if "kernels" in (one[0], two[0]) else "tensors",
                    f"residencies that never share bytes while both live; {spans[0]} and "
                    f"{spans[1]} overlap in the {tier} pool (sizes padded by "
                    "autotm_schemas.alignment)",
                )

    @staticmethod
    def covering(places: Sequence[Residency], tier: str, node: int) -> Residency | None:
        best = None
        for r in places:
            if r.tier == tier and r.covers(node) and (best is None or r.first > best.first):
                best = r
        return best

    def kernels(
        self, residencies: Mapping[str, Sequence[Residency]]
    ) -> tuple[KernelPlacement, ...]:
        entries = self.plan["kernels"]
        by_node: dict[int, tuple[int, Mapping[str, Any]]] = {}
        for index, entry in enumerate(entries):
            node = entry["node"]
            if node >= self.n or node in by_node:
                raise self.fail(
                    f"kernels[{index}].node", f"each node 0..{self.n - 1} once, got {node}"
                )
            by_node[node] = (index, entry)
        if len(by_node) != self.n:
            missing = min(set(range(self.n)) - set(by_node))
            raise self.fail("kernels", f"an entry for every node; node {missing} has none")
        out = []
        for node in self.graph.nodes:
            index, entry = by_node[node.index]
            where = f"kernels[{index}]"
            placed: list[tuple[Residency | None, ...]] = []
            for role, names, tiers in (
                ("input", node.inputs, entry["input_tiers"]),
                ("output", node.outputs, entry["output_tiers"]),
            ):
                if len(tiers) != len(names):
                    raise self.fail(
                        f"{where}.{role}_tiers",
                        f"{len(names)} entries for node {node.name!r}, got {len(tiers)}",
                    )
                row: list[Residency | None] = []
                for position, (name, tier) in enumerate(zip(names, tiers, strict=True)):
                    if not name:
                        row.append(None)
                        continue
                    place = self.covering(residencies[name], tier, node.index) if tier else None
                    if place is None:
                        raise self.fail(
                            f"{where}.{role}_tiers[{position}]",
                            f"tensor {name!r} to have a {tier or '(tier)'} residency covering "
                            f"node {node.index} ({node.name})",
                        )
                    row.append(place)
                placed.append(tuple(row))
            out.append(
                KernelPlacement(
                    node.index,
                    kernel_key(self.graph, node),
                    placed[0],
                    placed[1],
                    float(entry["predicted_s"]),
                    self.scratch(entry, where),
                )
            )
        return tuple(out)

    def scratch(self, entry: Mapping[str, Any], where: str) -> tuple[int, int] | None:
        """The kernel's scratch as the plan places it: (offset, bytes), or None."""
        nbytes = int(entry.get("scratch_bytes") or 0)
        if not nbytes:
            return None
        if "scratch_offset" not in entry:
            raise self.fail(
                f"{where}.scratch_offset",
                f"an offset in the fast pool for the kernel's scratch_bytes ({nbytes})",
            )
        offset = int(entry["scratch_offset"])
        if not is_aligned(offset, nbytes):
            raise self.fail(f"{where}.scratch_offset", _alignment_expected(nbytes, offset))
        pool = int(self.plan["pools"]["fast_bytes"])
        if offset + nbytes > pool:
            raise self.fail(
                f"{where}.scratch_offset",
                f"the scratch inside the fast pool of {pool} bytes (pools.fast_bytes), got "
                f"[{offset}, {offset + nbytes})",
            )
        return offset, nbytes

    def moves(self, residencies: Mapping[str, Sequence[Residency]]) -> tuple[Move, ...]:
        out = []
        for index, raw in enumerate(self.plan["moves"]):
            where = f"moves[{index}]"
            name, kind = raw["tensor"], raw["kind"]
            start, done_by = raw["start_node"], raw["done_by_node"]
            tensor = self.graph.tensors.get(name)
            if tensor is None or name not in residencies:
                raise self.fail(f"{where}.tensor", f"a tensor of the plan, got {name!r}")
            if raw["bytes"] != tensor.nbytes:
                raise self.fail(
                    f"{where}.bytes", f"{tensor.nbytes} for {name!r}, got {raw['bytes']}"
                )
            if not start <= done_by <= self.n:
                raise self.fail(
                    f"{where}.done_by_node",
                    f"start_node <= done_by_node <= {self.n}, got {start}..{done_by}",
                )
            if kind == "sync" and start != done_by:
                raise self.fail(f"{where}.done_by_node", f"{start} (a sync move's start_node)")
            if kind == "async" and start == done_by:
                raise self.fail(f"{where}.done_by_node", "more than start_node for an async move")
            src_tier, dst_tier = raw["direction"].split("_to_")
            src = self._endpoint(residencies[name], src_tier, start, done_by)
            dst = self._endpoint(residencies[name], dst_tier, start, done_by)
            if src is None or dst is None:
                missing = "source" if src is None else "destination"
                tier = src_tier if src is None else dst_tier
                raise self.fail(
                    where,
                    f"a {missing} residency of {name!r} in the {tier} tier starting by node "
                    f"{start} and lasting to node {max(done_by - 1, start - 1, 0)}",
                )
            out.append(
                Move(index, name, raw["direction"], kind, start, done_by, tensor.nbytes, src, dst)
            )
        return tuple(out)

    @staticmethod
    def _endpoint(
        places: Sequence[Residency], tier: str, start: int, done_by: int
    ) -> Residency | None:
        """The residency a copy reads or fills: in ``tier``, begun by ``start``, covering the
        copy's span (kernels start .. done_by - 1); the latest such one."""
        best = None
        for r in places:
            fits = r.tier == tier and r.first <= start and r.last >= done_by - 1
            if fits and (best is None or r.first > best.first):
                best = r
        return best

    def schedule(self) -> Schedule:
        self.check_graph()
        residencies = self.residencies()
        kernels = self.kernels(residencies)
        self.check_overlaps(residencies, kernels)
        moves = self.moves(residencies)
        pools = self.plan["pools"]
        predicted = self.plan["predicted"]["total_s"]
        summary = {
            "path": self.path,
            "formulation": self.plan["formulation"],
            "ratio": self.plan.get("ratio"),
            "fast_limit_bytes": int(self.plan["fast_limit_bytes"]),
            "predicted_s": float(predicted),
        }
        return Schedule(
            "plan",
            self.n,
            residencies,
            moves,
            kernels,
            {"fast": int(pools["fast_bytes"]), "slow": int(pools["slow_bytes"])},
            plan_summary=summary,
        )


def _alignment_expected(nbytes: int, offset: int) -> str:
    return (
        f"a multiple of {alignment(nbytes)} for {nbytes} bytes (autotm_schemas.alignment: "
        f"4096 from 4096 bytes up, else 64), got {offset}"
    )


def plan_schedule(graph: Graph, plan: Mapping[str, Any], path: str) -> Schedule:
    """Validate a plan (already schema-checked) against the graph and build its schedule."""
    return _PlanChecker(graph, plan, path).schedule()


def require_fast_kernels(schedule: Schedule, path: str) -> None:
    """The GPU rule (the original's too): every kernel reads and writes device memory only.

    Checked before any memory is allocated or cupy imported, so a plan that breaks it fails
    with exit 2 on any machine. Slow residencies are fine: copies reach them, kernels do not.
    """
    for placement in schedule.kernels:
        for role, places in (("input", placement.inputs), ("output", placement.outputs)):
            for position, place in enumerate(places):
                if place is not None and place.tier == "slow":
                    raise SchemaError(
                        path,
                        f"kernels[{placement.node}].{role}_tiers[{position}]",
                        "fast on --device cuda (a GPU kernel reads and writes device memory "
                        f"only), got slow for tensor {place.tensor!r}",
                    )
