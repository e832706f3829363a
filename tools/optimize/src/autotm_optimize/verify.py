"""The plan verifier: checks a plan against its profile, apart from the code that built it.

As tinygrad keeps its IR verifier apart from the builders, nothing here trusts a planner: it
reads only the plan (as written to plan.json) and the profile, and reports every rule broken.
The rules are the plan contract's semantics (plan.schema.json):

1. every tensor of the profile appears once, with its size; residencies are aligned as the
   pools align tensors (:mod:`autotm_schemas.alignment`: a page for tensors of a page or more,
   a cache line for smaller ones), inside the tensor's life, and together cover its whole life;
2. each kernel's configuration was profiled (unless marked estimated) and costs what the plan
   says; every input and output it reads or writes in a tier has a residency of that tier
   covering the node, already filled (by the producer, the initial placement, or a finished move);
   a produced tensor's residency in its output tier starts at its producer;
3. every residency that does not start at the tensor's birth is filled by a move into its tier
   that starts inside it; every move reads a filled source residency that covers its span
   (node k for a sync move at k, nodes start..done-1 for an async one) and writes a destination
   that starts no later than its start and lasts until it is done;
4. in each pool, no two residencies (nor kernel scratch, in the fast pool) that overlap in time
   overlap in address (each taking its size padded to its alignment);
5. the fast pool's high-water mark (scratch included) is at most the fast limit and at most the
   recorded pool size; the prediction adds up.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

from autotm_schemas.alignment import alignment, is_aligned

from . import addresses
from .addresses import Buffer
from .plan import Move, Plan, Residency
from .problem import FAST, SLOW, Problem

MAX_REPORTED = 20


class _Report:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, message: str) -> None:
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(message)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _covering(residencies: list[Residency], tier: str, node: int) -> Residency | None:
    for r in residencies:
        if r.tier == tier and r.from_node <= node <= r.to_node:
            return r
    return None


def _source_span_end(move: Move) -> int:
    return move.start_node if move.kind == "sync" else move.done_by_node - 1


def _check_tensors(plan: Plan, problem: Problem, report: _Report) -> dict[str, list[Residency]]:
    by_name = {t.name: t for t in problem.tensors}
    seen: dict[str, list[Residency]] = {}
    for tp in plan.tensors:
        tensor = by_name.get(tp.name)
        if tensor is None:
            report.add(f"tensor {tp.name!r}: not in the profile")
            continue
        if tp.name in seen:
            report.add(f"tensor {tp.name!r}: listed twice")
            continue
        seen[tp.name] = list(tp.residencies)
        if tp.bytes != tensor.bytes:
            report.add(f"tensor {tp.name!r}: {tp.bytes} bytes, the profile says {tensor.bytes}")
        covered: set[int] = set()
        for r in tp.residencies:
            if not is_aligned(r.offset, tp.bytes):
                report.add(
                    f"tensor {tp.name!r}: offset {r.offset} is not a multiple of "
                    f"{alignment(tp.bytes)} (its alignment)"
                )
            if not tensor.birth <= r.from_node <= r.to_node <= tensor.death:
                report.add(
                    f"tensor {tp.name!r}: residency {r.from_node}..{r.to_node} outside its life "
                    f"{tensor.birth}..{tensor.death}"
                )
            covered.update(range(r.from_node, r.to_node + 1))
        missing = sorted(set(range(tensor.birth, tensor.death + 1)) - covered)
        if missing:
            report.add(f"tensor {tp.name!r}: no residency at node {missing[0]} of its life")
        for tier in (FAST, SLOW):
            spans = sorted((r.from_node, r.to_node) for r in tp.residencies if r.tier == tier)
            for (_, a_end), (b_start, _) in itertools.pairwise(spans):
                if b_start <= a_end:
                    report.add(f"tensor {tp.name!r}: two {tier} residencies at node {b_start}")
    for name in by_name.keys() - seen.keys():
        report.add(f"tensor {name!r}: missing from the plan")
        break
    return seen


def _output_tier(plan: Plan, problem: Problem, tensor: int) -> str | None:
    """The tier the producer writes a tensor to, by the plan's kernel entry (None if none)."""
    producer = problem.tensors[tensor].producer
    if producer is None or producer >= len(plan.kernels):
        return None
    node = problem.nodes[producer]
    tiers = plan.kernels[producer].output_tiers
    for t, tier in zip(node.outputs, tiers, strict=False):
        if t == tensor:
            return tier
    return None


def _fill_times(
    plan: Plan, problem: Problem, residencies: dict[str, list[Residency]], report: _Report
) -> dict[tuple[str, Residency], int]:
    """When each residency holds the data: node from which kernels and moves may read it."""
    by_name = {t.name: t for t in problem.tensors}
    moves_into: dict[tuple[str, str], list[Move]] = defaultdict(list)
    for m in plan.moves:
        moves_into[(m.tensor, FAST if m.direction == "slow_to_fast" else SLOW)].append(m)
    fill: dict[tuple[str, Residency], int] = {}
    for name, rs in residencies.items():
        tensor = by_name[name]
        written = _output_tier(plan, problem, tensor.index)
        for r in rs:
            filling = [
                m for m in moves_into[(name, r.tier)] if r.from_node <= m.start_node <= r.to_node
            ]
            if r.from_node == tensor.birth and not filling:
                # Initial placement, or written by the producer (available after it ran).
                fill[(name, r)] = tensor.birth + (0 if tensor.pre_existing else 1)
                if written is not None and r.tier != written:
                    report.add(
                        f"tensor {name!r}: {r.tier} residency from its producer, which writes it {written}"
                    )
            elif len(filling) == 1:
                m = filling[0]
                fill[(name, r)] = m.done_by_node
                if m.kind == "sync" and r.to_node < m.done_by_node:
                    report.add(
                        f"move of {name!r} at node {m.start_node}: destination ends before it"
                    )
                if m.kind == "async" and r.to_node < m.done_by_node - 1:
                    report.add(
                        f"move of {name!r} at node {m.start_node}: destination ends before it is done"
                    )
            else:
                what = "no move fills it" if not filling else f"{len(filling)} moves fill it"
                report.add(f"tensor {name!r}: {r.tier} residency from node {r.from_node}: {what}")
                fill[(name, r)] = r.from_node
    return fill


def _check_kernels(
    plan: Plan,
    problem: Problem,
    residencies: dict[str, list[Residency]],
    fill: dict[tuple[str, Residency], int],
    report: _Report,
) -> None:
    if len(plan.kernels) != problem.n_nodes:
        report.add(f"kernels: {len(plan.kernels)} entries for {problem.n_nodes} nodes")
        return
    for choice, node in zip(plan.kernels, problem.nodes, strict=True):
        where = f"node {node.index} ({node.name!r})"
        if choice.node != node.index or choice.kernel_key != node.kernel_key:
            report.add(f"{where}: kernel entry names node {choice.node} / {choice.kernel_key!r}")
            continue
        seconds = problem.config_seconds(node, choice.input_tiers, choice.output_tiers)
        if seconds is None and not choice.estimated:
            report.add(
                f"{where}: configuration {list(choice.input_tiers)}|{list(choice.output_tiers)} was not profiled"
            )
        elif seconds is not None and not _close(seconds, choice.predicted_s):
            report.add(f"{where}: predicted {choice.predicted_s} s, the profile says {seconds} s")
        positions = [
            (t, tier, False) for t, tier in zip(node.inputs, choice.input_tiers, strict=False)
        ]
        positions += [
            (t, tier, True) for t, tier in zip(node.outputs, choice.output_tiers, strict=False)
        ]
        if len(positions) != len(node.inputs) + len(node.outputs):
            report.add(f"{where}: tier lists do not match the node's inputs and outputs")
            continue
        for tensor, tier, is_output in positions:
            if tensor is None:
                continue
            name = problem.tensors[tensor].name
            r = _covering(residencies.get(name, []), tier, node.index)
            if r is None:
                report.add(f"{where}: {name!r} has no {tier} residency there")
            elif is_output and r.from_node != node.index:
                report.add(
                    f"{where}: output {name!r} written into a {tier} residency from node {r.from_node}"
                )
            elif not is_output and fill.get((name, r), 0) > node.index:
                report.add(f"{where}: {name!r} read before its {tier} copy arrives")


def _check_moves(
    plan: Plan,
    problem: Problem,
    residencies: dict[str, list[Residency]],
    fill: dict[tuple[str, Residency], int],
    report: _Report,
) -> None:
    by_name = {t.name: t for t in problem.tensors}
    for m in plan.moves:
        where = f"move of {m.tensor!r} ({m.direction}, {m.kind}) at node {m.start_node}"
        tensor = by_name.get(m.tensor)
        if tensor is None:
            report.add(f"{where}: unknown tensor")
            continue
        if m.bytes != tensor.bytes:
            report.add(f"{where}: {m.bytes} bytes, the tensor has {tensor.bytes}")
        if (m.kind == "sync") != (m.start_node == m.done_by_node) or m.done_by_node < m.start_node:
            report.add(f"{where}: done by node {m.done_by_node} does not fit a {m.kind} move")
            continue
        if m.done_by_node >= problem.n_nodes:
            report.add(f"{where}: done by node {m.done_by_node}, past the last node")
        source_tier = SLOW if m.direction == "slow_to_fast" else FAST
        dest_tier = FAST if m.direction == "slow_to_fast" else SLOW
        rs = residencies.get(m.tensor, [])
        source = _covering(rs, source_tier, m.start_node)
        if source is None or source.to_node < _source_span_end(m):
            report.add(f"{where}: no {source_tier} residency covers the copy")
        elif fill.get((m.tensor, source), 0) > m.start_node:
            report.add(f"{where}: its source is not filled yet")
        if _covering(rs, dest_tier, m.start_node) is None:
            report.add(f"{where}: no {dest_tier} residency has started by then")


def _check_pools(plan: Plan, problem: Problem, report: _Report) -> None:
    for tier in (FAST, SLOW):
        buffers: list[Buffer] = []
        offsets: list[int] = []
        labels: list[str] = []
        for tp in plan.tensors:
            for r in tp.residencies:
                if r.tier == tier:
                    buffers.append(Buffer.tensor(r.from_node, r.to_node, tp.bytes))
                    offsets.append(r.offset)
                    labels.append(f"{tp.name!r} {r.from_node}..{r.to_node}")
        if tier == FAST:
            for k in plan.kernels:
                if k.scratch_bytes and not is_aligned(k.scratch_offset, k.scratch_bytes):
                    report.add(
                        f"node {k.node}: scratch offset {k.scratch_offset} is not a multiple of "
                        f"{alignment(k.scratch_bytes)} (its alignment)"
                    )
                buffers.append(Buffer.scratch(k.node, k.scratch_bytes))
                offsets.append(k.scratch_offset)
                labels.append(f"scratch of node {k.node}")
        for i, j in addresses.conflicts(buffers, offsets, limit=3):
            report.add(f"{tier} pool: {labels[i]} and {labels[j]} overlap in time and address")
        high = max((o + b.size for o, b in zip(offsets, buffers, strict=True) if b.size), default=0)
        recorded = plan.fast_pool_bytes if tier == FAST else plan.slow_pool_bytes
        if high > recorded:
            report.add(f"{tier} pool: high-water {high} bytes above the recorded {recorded}")
        if tier == FAST and high > plan.fast_limit_bytes:
            report.add(
                f"fast pool: high-water {high} bytes above the limit {plan.fast_limit_bytes}"
            )


def _check_prediction(plan: Plan, report: _Report) -> None:
    kernel_s = sum(k.predicted_s for k in plan.kernels)
    if not _close(kernel_s, plan.predicted.kernel_s) and abs(
        kernel_s - plan.predicted.kernel_s
    ) > 1e-9 * max(1.0, kernel_s):
        report.add(f"predicted kernel_s {plan.predicted.kernel_s} is not the sum {kernel_s}")
    if plan.predicted.async_overlap_s > plan.predicted.async_move_s * (1 + 1e-9) + 1e-12:
        report.add("predicted async_overlap_s exceeds async_move_s")


def verify(plan: Plan, problem: Problem) -> list[str]:
    """Every rule the plan breaks (empty when it is valid), at most a few dozen."""
    report = _Report()
    if plan.graph_sha256 != problem.graph_sha256:
        report.add("graph_sha256 differs from the profile's graph")
    residencies = _check_tensors(plan, problem, report)
    fill = _fill_times(plan, problem, residencies, report)
    _check_kernels(plan, problem, residencies, fill, report)
    _check_moves(plan, problem, residencies, fill, report)
    _check_pools(plan, problem, report)
    _check_prediction(plan, report)
    return report.problems
