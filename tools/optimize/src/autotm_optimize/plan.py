"""The one plan type every planner returns, and its plan.json form (schemas: plan.schema.json).

ILP formulations and baselines alike produce a :class:`Plan`, so they can be compared, verified
and written the same way (checkmate's habit). ``to_document`` and ``from_document`` are exact
inverses over the fields the schema defines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FORMULATIONS = ("static", "synchronous", "asynchronous", "numa", "all-fast", "all-slow")
ILP_FORMULATIONS = ("static", "synchronous", "asynchronous")
PLAN_FORMAT = "autotm.plan/1"


@dataclass(frozen=True)
class Residency:
    """The tensor's bytes at [offset, offset + bytes) of ``tier``'s pool over nodes [from, to]."""

    tier: str
    offset: int
    from_node: int
    to_node: int


@dataclass(frozen=True)
class TensorPlan:
    name: str
    bytes: int
    residencies: tuple[Residency, ...]


@dataclass(frozen=True)
class Move:
    tensor: str
    direction: str  # slow_to_fast | fast_to_slow
    kind: str  # sync | async
    start_node: int
    done_by_node: int
    bytes: int


@dataclass(frozen=True)
class KernelChoice:
    node: int
    kernel_key: str
    input_tiers: tuple[str, ...]
    output_tiers: tuple[str, ...]
    predicted_s: float
    scratch_bytes: int = 0
    scratch_offset: int = 0
    estimated: bool = False  # configuration absent from kernels.parquet (baselines only)


@dataclass(frozen=True)
class Predicted:
    kernel_s: float
    sync_move_s: float
    async_move_s: float
    async_overlap_s: float

    @property
    def total_s(self) -> float:
        return self.kernel_s + self.sync_move_s + (self.async_move_s - self.async_overlap_s)


@dataclass(frozen=True)
class SolverStats:
    name: str
    status: str  # optimal | feasible | time_limit | heuristic
    objective: float | None = None
    bound: float | None = None
    gap: float | None = None
    variables: int = 0
    constraints: int = 0
    build_s: float = 0.0
    solve_s: float = 0.0
    time_limit_s: float | None = None
    relative_gap_limit: float | None = None
    rounds: int = 1  # solves, counting re-solves after address assignment
    threads: int | None = None


@dataclass(frozen=True)
class Plan:
    network: str
    batch: int
    graph_sha256: str
    formulation: str
    ratio: str | None
    fast_limit_bytes: int
    footprint_bytes: int
    tensors: tuple[TensorPlan, ...]
    moves: tuple[Move, ...]
    kernels: tuple[KernelChoice, ...]
    predicted: Predicted
    fast_pool_bytes: int
    slow_pool_bytes: int
    solver: SolverStats
    provenance: str
    profile_path: str | None = None
    machine_fingerprint: str | None = None
    reductions: dict[str, Any] = field(default_factory=dict)
    tool_version: str = "0.1.0"

    # -----------------------------------------------------------------------------------------
    def to_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": PLAN_FORMAT,
            "graph_sha256": self.graph_sha256,
            "network": self.network,
            "batch": self.batch,
        }
        profile: dict[str, Any] = {}
        if self.profile_path is not None:
            profile["path"] = self.profile_path
        if self.machine_fingerprint is not None:
            profile["machine_fingerprint"] = self.machine_fingerprint
        if profile:
            doc["profile"] = profile
        doc |= {
            "formulation": self.formulation,
            "ratio": self.ratio,
            "fast_limit_bytes": self.fast_limit_bytes,
            "footprint_bytes": self.footprint_bytes,
            "tensors": [
                {
                    "name": t.name,
                    "bytes": t.bytes,
                    "residencies": [
                        {
                            "tier": r.tier,
                            "offset": r.offset,
                            "from_node": r.from_node,
                            "to_node": r.to_node,
                        }
                        for r in t.residencies
                    ],
                }
                for t in self.tensors
            ],
            "moves": [
                {
                    "tensor": m.tensor,
                    "direction": m.direction,
                    "kind": m.kind,
                    "start_node": m.start_node,
                    "done_by_node": m.done_by_node,
                    "bytes": m.bytes,
                }
                for m in self.moves
            ],
            "kernels": [
                {
                    "node": k.node,
                    "kernel_key": k.kernel_key,
                    "input_tiers": list(k.input_tiers),
                    "output_tiers": list(k.output_tiers),
                    "predicted_s": k.predicted_s,
                    "scratch_bytes": k.scratch_bytes,
                    "scratch_offset": k.scratch_offset,
                    "estimated": k.estimated,
                }
                for k in self.kernels
            ],
            "predicted": {
                "kernel_s": self.predicted.kernel_s,
                "sync_move_s": self.predicted.sync_move_s,
                "async_move_s": self.predicted.async_move_s,
                "async_overlap_s": self.predicted.async_overlap_s,
                "total_s": self.predicted.total_s,
            },
            "pools": {"fast_bytes": self.fast_pool_bytes, "slow_bytes": self.slow_pool_bytes},
            "solver": {
                "name": self.solver.name,
                "status": self.solver.status,
                "objective": self.solver.objective,
                "bound": self.solver.bound,
                "gap": self.solver.gap,
                "variables": self.solver.variables,
                "constraints": self.solver.constraints,
                "build_s": self.solver.build_s,
                "solve_s": self.solver.solve_s,
                "time_limit_s": self.solver.time_limit_s,
                "relative_gap_limit": self.solver.relative_gap_limit,
                "rounds": self.solver.rounds,
                "threads": self.solver.threads,
            },
            "reductions": self.reductions,
            "tool": {"name": "autotm-optimize", "version": self.tool_version},
            "provenance": self.provenance,
        }
        return doc

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Plan:
        solver = doc["solver"]
        profile = doc.get("profile") or {}
        predicted = doc["predicted"]
        return cls(
            network=doc["network"],
            batch=doc["batch"],
            graph_sha256=doc["graph_sha256"],
            formulation=doc["formulation"],
            ratio=doc.get("ratio"),
            fast_limit_bytes=doc["fast_limit_bytes"],
            footprint_bytes=doc["footprint_bytes"],
            tensors=tuple(
                TensorPlan(
                    t["name"],
                    t["bytes"],
                    tuple(
                        Residency(r["tier"], r["offset"], r["from_node"], r["to_node"])
                        for r in t["residencies"]
                    ),
                )
                for t in doc["tensors"]
            ),
            moves=tuple(
                Move(
                    m["tensor"],
                    m["direction"],
                    m["kind"],
                    m["start_node"],
                    m["done_by_node"],
                    m["bytes"],
                )
                for m in doc["moves"]
            ),
            kernels=tuple(
                KernelChoice(
                    node=k["node"],
                    kernel_key=k["kernel_key"],
                    input_tiers=tuple(k["input_tiers"]),
                    output_tiers=tuple(k["output_tiers"]),
                    predicted_s=k["predicted_s"],
                    scratch_bytes=k.get("scratch_bytes", 0),
                    scratch_offset=k.get("scratch_offset", 0),
                    estimated=k.get("estimated", False),
                )
                for k in doc["kernels"]
            ),
            predicted=Predicted(
                predicted["kernel_s"],
                predicted["sync_move_s"],
                predicted["async_move_s"],
                predicted["async_overlap_s"],
            ),
            fast_pool_bytes=doc["pools"]["fast_bytes"],
            slow_pool_bytes=doc["pools"]["slow_bytes"],
            solver=SolverStats(
                name=solver["name"],
                status=solver["status"],
                objective=solver.get("objective"),
                bound=solver.get("bound"),
                gap=solver.get("gap"),
                variables=solver["variables"],
                constraints=solver["constraints"],
                build_s=solver["build_s"],
                solve_s=solver["solve_s"],
                time_limit_s=solver.get("time_limit_s"),
                relative_gap_limit=solver.get("relative_gap_limit"),
                rounds=solver.get("rounds", 1),
                threads=solver.get("threads"),
            ),
            provenance=doc["provenance"],
            profile_path=profile.get("path"),
            machine_fingerprint=profile.get("machine_fingerprint"),
            reductions=dict(doc.get("reductions") or {}),
            tool_version=(doc.get("tool") or {}).get("version", "0.1.0"),
        )
