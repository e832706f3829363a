"""Replay a schedule against a profile's kernel table, without allocating any tensor.

``--simulate --profile PROFILE_DIR`` predicts an iteration's time for set-ups that do not fit
this machine (a 650 GB network, a batch too large): every kernel takes the time the profile
measured for its placement, every copy the profile machine's copy bandwidth, and asynchronous
copies run one after another on a copy engine that overlaps the kernels, exactly as the
executor orders them:

    t = 0; engine = 0
    for kernel k:  t = max(t, end of async moves due at k)        (async wait)
                   t += bytes of sync moves at k / sync bandwidth  (sync moves)
                   each async move starting at k: begins at max(t, engine),
                                                  engine = its end
                   t += time of kernel k in its placement
    iteration = max(t, end of async moves due at the end)

A placement missing from the kernel table (a plan made with another profile) falls back to
the all-fast time of the same kernel plus the device model's penalty, and says so in the
row's provenance. In 2lm mode each kernel's all-fast time gets the emulated cache's penalty.
Every number is labelled ``simulated``, joined with the profile's own provenance
(``emulated:<model>``, ``scaled:<batch>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from autotm_graph.ir import Graph
from autotm_schemas import BadInputError, SchemaError, provenance, read_document, read_table

from .device_model import DeviceModel
from .emulation import CachePenalties, cache_penalties, slow_traffic
from .schedule import Schedule


@dataclass(frozen=True)
class Profile:
    """The parts of a PROFILE_DIR a simulation needs."""

    path: str
    times: dict[tuple[str, tuple[str, ...], tuple[str, ...]], tuple[float, float, float, str]]
    machine: dict[str, Any]
    manifest: dict[str, Any] | None

    @property
    def copy_bandwidth(self) -> dict[str, dict[str, float]]:
        copy = self.machine["copy_bandwidth"]
        return {
            direction: {
                mode: float(copy[direction][f"{mode}_bytes_per_s"]) for mode in ("sync", "async")
            }
            for direction in ("slow_to_fast", "fast_to_slow")
        }

    @property
    def device_model(self) -> DeviceModel | None:
        doc = self.machine.get("device_model")
        return DeviceModel.from_json(doc, f"{self.path}/machine.json") if doc else None

    @property
    def provenance(self) -> str:
        parts = [self.machine.get("provenance")]
        if self.manifest is not None:
            parts.append(self.manifest.get("provenance"))
        return provenance.combine(*parts)


def load_profile(directory: str | Path, graph: Graph) -> Profile:
    """Read kernels.parquet, nodes.parquet and machine.json (profile.json when present)."""
    root = Path(directory)
    if not root.is_dir():
        raise BadInputError(f"--profile {directory}: expected a profile directory")
    manifest = None
    if (root / "profile.json").exists():
        manifest = read_document(root / "profile.json", "profile")
        if manifest["graph"]["sha256"] != graph.sha256:
            raise SchemaError(
                str(root / "profile.json"),
                "graph.sha256",
                f"{graph.sha256} (the sha256 of {graph.path}): the profile is of another graph",
            )
    machine = read_document(root / "machine.json", "machine")
    nodes = read_table(root / "nodes.parquet", "nodes").to_pydict()
    if nodes["name"] != [node.name for node in graph.nodes]:
        raise SchemaError(
            str(root / "nodes.parquet"),
            "name",
            f"the {len(graph.nodes)} nodes of {graph.path} in execution order: the profile is "
            "of another graph",
        )
    kernels = read_table(root / "kernels.parquet", "kernels").to_pydict()
    times = {}
    for i, key in enumerate(kernels["kernel_key"]):
        config = (key, tuple(kernels["input_tiers"][i]), tuple(kernels["output_tiers"][i]))
        times[config] = (
            float(kernels["median_s"][i]),
            float(kernels["min_s"][i]),
            float(kernels["max_s"][i]),
            str(kernels["provenance"][i]),
        )
    return Profile(str(root), times, machine, manifest)


@dataclass(frozen=True)
class Simulation:
    """Predicted seconds: the iteration, and per node kernel, sync-move and async-wait time."""

    iteration_s: float
    kernel_s: np.ndarray
    min_s: np.ndarray
    max_s: np.ndarray
    sync_move_s: np.ndarray
    async_wait_s: np.ndarray
    row_provenance: list[str]
    provenance: str
    cache: CachePenalties | None


def _kernel_time(
    profile: Profile,
    key: str,
    input_tiers: list[str],
    output_tiers: list[str],
    name: str,
) -> tuple[tuple[float, float, float, str], bool]:
    """Time of a configuration; (all-fast time, True) when it must be emulated on top."""
    exact = profile.times.get((key, tuple(input_tiers), tuple(output_tiers)))
    if exact is not None:
        return exact, False
    fast_in = tuple("fast" if t else "" for t in input_tiers)
    fast_out = tuple("fast" if t else "" for t in output_tiers)
    fast = profile.times.get((key, fast_in, fast_out))
    if fast is None:
        raise BadInputError(
            f"{profile.path}/kernels.parquet: kernel_key: expected a time for {key} (node "
            f"{name!r}) with inputs {input_tiers} and outputs {output_tiers}, or all fast"
        )
    return fast, True


def simulate(
    graph: Graph,
    schedule: Schedule,
    profile: Profile,
    model: DeviceModel | None,
    cache_bytes: int | None = None,
) -> Simulation:
    """Predict one steady-state iteration of ``schedule`` from ``profile``."""
    n = schedule.n_nodes
    model = model or profile.device_model
    cache = None
    if schedule.mode == "2lm":
        if model is None or cache_bytes is None:
            raise BadInputError(
                "--simulate --mode 2lm: expected a device model (--device-model, or the "
                "profile's machine.json) and a cache size (--fast-memory or --ratio)"
            )
        cache = cache_penalties(schedule, model, cache_bytes)
    kernel_s, min_s, max_s = np.zeros(n), np.zeros(n), np.zeros(n)
    rows: list[str] = []
    for placement in schedule.kernels:
        k = placement.node
        inputs, outputs = placement.input_tiers, placement.output_tiers
        if schedule.mode == "2lm":  # the cache decides; the kernel itself ran in DRAM
            inputs = ["fast" if t else "" for t in inputs]
            outputs = ["fast" if t else "" for t in outputs]
        (median, low, high, row_prov), emulate = _kernel_time(
            profile, placement.kernel_key, inputs, outputs, graph.nodes[k].name
        )
        extra = 0.0
        parts: list[str | None] = [row_prov, "simulated"]
        if cache is not None:
            extra = float(cache.steady[k])
            parts.append(model.provenance if model else None)
        elif emulate:
            if model is None:
                raise BadInputError(
                    f"{profile.path}/kernels.parquet: no time for node {graph.nodes[k].name!r} "
                    f"with inputs {inputs} and outputs {outputs}, and no device model to "
                    "emulate it from (--device-model)"
                )
            traffic = slow_traffic(placement)
            extra = model.kernel_penalty_s(
                traffic.read_bytes, traffic.write_bytes, traffic.read_tensors, traffic.write_tensors
            )
            parts.append(model.provenance)
        kernel_s[k], min_s[k], max_s[k] = median + extra, low + extra, high + extra
        rows.append(provenance.combine(*parts))

    bandwidth = profile.copy_bandwidth
    sync_s, wait_s = np.zeros(n), np.zeros(n)
    ends: dict[int, float] = {}
    t = engine = 0.0
    for k in range(n + 1):
        due = [ends[m.index] for m in schedule.waits_before[k]]
        if due and max(due) > t:
            if k < n:
                wait_s[k] = max(due) - t
            t = max(due)
        if k == n:
            break
        for move in schedule.syncs_before[k]:
            seconds = move.nbytes / bandwidth[move.direction]["sync"]
            sync_s[k] += seconds
            t += seconds
        for move in schedule.asyncs_at[k]:
            begin = max(t, engine)
            engine = begin + move.nbytes / bandwidth[move.direction]["async"]
            ends[move.index] = engine
        t += kernel_s[k]
    overall = provenance.combine(profile.provenance, *rows, "simulated")
    return Simulation(t, kernel_s, min_s, max_s, sync_s, wait_s, rows, overall, cache)
