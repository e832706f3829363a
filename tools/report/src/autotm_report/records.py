"""Typed views of the documents the report reads: one frozen dataclass per run, plan, profile.

The figures never touch raw JSON: each record keeps only the fields a figure or table keys on,
normalised once here (a run's formulation comes from its mode when it has no plan; ratios are
reduced to fast shares), so that the figure modules stay small and agree with each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autotm_schemas import BadInputError, SchemaError

from . import ratios

#: Order and names of the placements a run can have; also the legend order of every figure.
FORMULATIONS = (
    "numa",
    "static",
    "synchronous",
    "asynchronous",
    "all-slow",
    "all-fast",
    "2lm",
    "unified",
)


@dataclass(frozen=True)
class Workload:
    """What a baseline is shared by: the same network at the same batch on the same device."""

    device: str
    network: str
    batch: int

    @property
    def label(self) -> str:
        suffix = " (GPU)" if self.device == "cuda" else ""
        return f"{self.network} b={self.batch}{suffix}"


@dataclass(frozen=True)
class Moves:
    """Bytes and counts a run moved between tiers, each direction and kind."""

    slow_to_fast_sync_bytes: int
    slow_to_fast_async_bytes: int
    fast_to_slow_sync_bytes: int
    fast_to_slow_async_bytes: int
    slow_to_fast_count: int
    fast_to_slow_count: int

    @property
    def slow_to_fast_bytes(self) -> int:
        return self.slow_to_fast_sync_bytes + self.slow_to_fast_async_bytes

    @property
    def fast_to_slow_bytes(self) -> int:
        return self.fast_to_slow_sync_bytes + self.fast_to_slow_async_bytes


@dataclass(frozen=True)
class Run:
    """One run.json. ``formulation`` is the plan's, or the mode for runs without a plan."""

    file: str
    workload: Workload
    mode: str
    formulation: str
    ratio: str | None
    fast_share: float | None
    fast_limit_bytes: int | None
    median_s: float
    predicted_s: float | None
    plan_path: str | None
    moves: Moves
    provenance: str
    finished: str

    @property
    def budget_label(self) -> str:
        """The ratio when known, else the fast share, else the byte limit."""
        if self.fast_share is not None:
            return ratios.ratio_label(self.fast_share)
        if self.fast_limit_bytes is not None:
            return f"{self.fast_limit_bytes / 1e9:.3g} GB"
        return "-"


@dataclass(frozen=True)
class Plan:
    """One plan.json, with the shares of kernel inputs and outputs it put in fast memory."""

    file: str
    network: str
    batch: int
    formulation: str
    ratio: str | None
    fast_share: float
    fast_limit_bytes: int
    footprint_bytes: int
    inputs_fast_share: float | None
    outputs_fast_share: float | None
    predicted_s: float
    moved_bytes: int
    solver: str
    status: str
    variables: int
    constraints: int
    build_s: float
    solve_s: float
    gap: float | None
    provenance: str

    @property
    def is_ilp(self) -> bool:
        """Heuristic baselines (numa, all-fast, all-slow) report no model worth plotting."""
        return self.status != "heuristic" and self.solver != "heuristic"


@dataclass(frozen=True)
class Profile:
    """One PROFILE_DIR: its manifest and the machine it was taken on."""

    folder: str
    network: str
    batch: int
    measure_batch: int | None
    nodes: int
    tensors: int
    unique_kernels: int
    configurations: int
    provenance: str
    device: str | None
    cpu: str | None
    fast_tier: str | None
    slow_tier: str | None
    device_model: str | None


def _ratio(value: object, file: str, field: str) -> tuple[str, float] | None:
    """A document's ratio, normalised, and its fast share; errors name the file and field."""
    if not value:
        return None
    try:
        normal = ratios.normalize_ratio(str(value))
        return normal, ratios.share_of_ratio(normal)
    except BadInputError:
        raise SchemaError(file, field, f"a slow:fast ratio such as 4:1, got {value!r}") from None


def _formulation_of_run(doc: dict[str, Any]) -> str:
    mode = str(doc["mode"])
    plan = doc.get("plan")
    if mode in ("2lm", "unified"):
        return mode
    if mode == "all-fast" or plan is None:
        return "all-fast"
    return str(plan["formulation"])


def _moves(doc: dict[str, Any]) -> Moves:
    moves = doc["moves"]
    s2f, f2s = moves["slow_to_fast"], moves["fast_to_slow"]
    return Moves(
        slow_to_fast_sync_bytes=int(s2f["sync"]["bytes"]),
        slow_to_fast_async_bytes=int(s2f["async"]["bytes"]),
        fast_to_slow_sync_bytes=int(f2s["sync"]["bytes"]),
        fast_to_slow_async_bytes=int(f2s["async"]["bytes"]),
        slow_to_fast_count=int(s2f["sync"]["count"]) + int(s2f["async"]["count"]),
        fast_to_slow_count=int(f2s["sync"]["count"]) + int(f2s["async"]["count"]),
    )


def run_from_document(doc: dict[str, Any], file: str, footprint: int | None) -> Run:
    """Build a :class:`Run` from a validated run.json.

    ``footprint`` is the all-fast peak from the run's plan when the report has it: it turns a
    byte limit without a ratio (``--fast-limit``, 2lm cache sizes) into a fast share.
    """
    graph = doc["graph"]
    plan = doc.get("plan")
    median = float(doc["iterations"]["median_s"])
    if median <= 0:
        # Every figure divides by it; the schema allows 0, a real iteration never takes 0 s.
        raise SchemaError(file, "iterations.median_s", f"a positive time, got {median!r}")
    formulation = _formulation_of_run(doc)
    parsed = _ratio(plan.get("ratio"), file, "plan.ratio") if plan else None
    ratio = parsed[0] if parsed else None
    limit = plan["fast_limit_bytes"] if plan else doc.get("fast_limit_bytes")
    share: float | None = None
    if parsed:
        share = parsed[1]
    elif formulation == "all-fast":
        share = 1.0
    elif formulation == "all-slow":
        share = 0.0
    elif limit is not None and footprint:
        share = min(1.0, int(limit) / footprint)
    return Run(
        file=file,
        workload=Workload(str(doc["device"]), str(graph["network"]), int(graph["batch"])),
        mode=str(doc["mode"]),
        formulation=formulation,
        ratio=ratio,
        fast_share=share,
        fast_limit_bytes=None if limit is None else int(limit),
        median_s=median,
        predicted_s=None if plan is None else float(plan["predicted_s"]),
        plan_path=None if plan is None else str(plan["path"]),
        moves=_moves(doc),
        provenance=str(doc["provenance"]),
        finished=str(doc["finished"]),
    )


def _fast_share_of_tiers(lists: list[list[str]]) -> float | None:
    tiers = [t for tiers in lists for t in tiers if t]
    if not tiers:
        return None
    return sum(t == "fast" for t in tiers) / len(tiers)


def plan_from_document(doc: dict[str, Any], file: str) -> Plan:
    """Build a :class:`Plan` from a validated plan.json."""
    footprint = int(doc["footprint_bytes"])
    limit = int(doc["fast_limit_bytes"])
    parsed = _ratio(doc.get("ratio"), file, "ratio")
    ratio = parsed[0] if parsed else None
    if parsed:
        share = parsed[1]
    elif doc["formulation"] == "all-slow":
        share = 0.0
    else:
        share = min(1.0, limit / footprint) if footprint else 1.0
    kernels = doc["kernels"]
    solver = doc["solver"]
    return Plan(
        file=file,
        network=str(doc["network"]),
        batch=int(doc["batch"]),
        formulation=str(doc["formulation"]),
        ratio=ratio,
        fast_share=share,
        fast_limit_bytes=limit,
        footprint_bytes=footprint,
        inputs_fast_share=_fast_share_of_tiers([k["input_tiers"] for k in kernels]),
        outputs_fast_share=_fast_share_of_tiers([k["output_tiers"] for k in kernels]),
        predicted_s=float(doc["predicted"]["total_s"]),
        moved_bytes=sum(int(m["bytes"]) for m in doc["moves"]),
        solver=str(solver["name"]),
        status=str(solver["status"]),
        variables=int(solver["variables"]),
        constraints=int(solver["constraints"]),
        build_s=float(solver["build_s"]),
        solve_s=float(solver["solve_s"]),
        gap=None if solver.get("gap") is None else float(solver["gap"]),
        provenance=str(doc["provenance"]),
    )


def profile_from_documents(
    profile: dict[str, Any], machine: dict[str, Any] | None, folder: str
) -> Profile:
    """Build a :class:`Profile` from a validated profile.json and its machine.json."""
    counts = profile["counts"]
    tiers = machine["tiers"] if machine else None
    model = machine.get("device_model") if machine else None
    return Profile(
        folder=folder,
        network=str(profile["graph"]["network"]),
        batch=int(profile["graph"]["batch"]),
        measure_batch=profile.get("measure_batch"),
        nodes=int(counts["nodes"]),
        tensors=int(counts["tensors"]),
        unique_kernels=int(counts["unique_kernels"]),
        configurations=int(counts["configurations"]),
        provenance=str(profile["provenance"]),
        device=None if machine is None else str(machine["device"]),
        cpu=None
        if machine is None
        else f"{machine['cpu']['model']} ({machine['cpu']['cores']} cores)",
        fast_tier=None if tiers is None else str(tiers["fast"]["description"]),
        slow_tier=None if tiers is None else str(tiers["slow"]["description"]),
        device_model=None if not model else str(model["name"]),
    )
