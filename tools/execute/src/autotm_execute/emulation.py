"""The emulated slow tier's cost per kernel, for a schedule: plan placements and 2LM.

Executor and simulator share these functions, so an emulated run and a simulated one charge
the same seconds for the same placement:

* plan and all-fast modes: each kernel pays :meth:`DeviceModel.kernel_penalty_s` for the
  distinct tensors it reads from and writes to the slow tier;
* 2lm mode: the iteration's line trace runs through the emulated DRAM cache
  (:mod:`cache2lm`), and each kernel pays :meth:`DeviceModel.cache_penalty_s` for its misses
  and the write-backs they cause; the first iteration starts cold, later ones warm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cache2lm import (
    LINE_BYTES,
    CacheCounts,
    Trace,
    TwoLevelResult,
    block_lines,
    build_trace,
    simulate_iterations,
)
from .device_model import DeviceModel
from .schedule import KernelPlacement, Schedule


@dataclass(frozen=True)
class SlowTraffic:
    """Bytes and tensors a kernel reads from / writes to the slow tier (each tensor once)."""

    read_bytes: int
    write_bytes: int
    read_tensors: int
    write_tensors: int


def slow_traffic(placement: KernelPlacement) -> SlowTraffic:
    reads = {r.tensor: r.nbytes for r in placement.inputs if r is not None and r.tier == "slow"}
    writes = {r.tensor: r.nbytes for r in placement.outputs if r is not None and r.tier == "slow"}
    return SlowTraffic(sum(reads.values()), sum(writes.values()), len(reads), len(writes))


def kernel_penalties(schedule: Schedule, model: DeviceModel | None) -> np.ndarray:
    """Seconds added to each kernel for its slow-tier traffic (zeros without a model)."""
    penalties = np.zeros(schedule.n_nodes, np.float64)
    if model is None:
        return penalties
    for placement in schedule.kernels:
        traffic = slow_traffic(placement)
        penalties[placement.node] = model.kernel_penalty_s(
            traffic.read_bytes, traffic.write_bytes, traffic.read_tensors, traffic.write_tensors
        )
    return penalties


def cache_trace(schedule: Schedule) -> Trace:
    """One iteration's accesses: per kernel, its distinct inputs read, then its outputs written."""
    accesses: list[tuple[int, int, int, bool]] = []
    for placement in schedule.kernels:
        seen: set[str] = set()
        for r in placement.inputs:
            if r is not None and r.tensor not in seen:
                seen.add(r.tensor)
                accesses.append((placement.node, r.offset, r.nbytes, False))
        for r in placement.outputs:
            if r is not None:
                accesses.append((placement.node, r.offset, r.nbytes, True))
    return build_trace(accesses, schedule.n_nodes, block_lines(accesses))


@dataclass(frozen=True)
class CachePenalties:
    """Per-kernel seconds of the cold first iteration and of the steady later ones."""

    cold: np.ndarray
    steady: np.ndarray
    result: TwoLevelResult


def cache_penalties(schedule: Schedule, model: DeviceModel, cache_bytes: int) -> CachePenalties:
    """Simulate the 2LM cache over the schedule and price each kernel's misses."""
    result = simulate_iterations(cache_trace(schedule), cache_bytes)

    def price(counts: CacheCounts) -> np.ndarray:
        return np.array(
            [
                model.cache_penalty_s(
                    int(counts.misses[k]) * LINE_BYTES,
                    int(counts.writebacks[k]) * LINE_BYTES,
                    int(counts.miss_streams[k]),
                )
                for k in range(schedule.n_nodes)
            ],
            np.float64,
        )

    return CachePenalties(price(result.cold), price(result.steady), result)
