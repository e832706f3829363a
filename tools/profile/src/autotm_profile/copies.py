"""Copy bandwidth between the tiers, both directions, synchronous and asynchronous.

Copies go through the executor's own copy paths (``Tiers.copy_sync`` and
``Tiers.async_copier``), between views of its own pools, over a range of sizes:

* **sync**: the copy alone, the caller waiting;
* **async**: the copy on the copy thread (a CUDA stream on a GPU) while the main thread runs a
  kernel (a float32 matrix product in the fast pool, compute-bound like the convolutions and
  GEMMs asynchronous moves hide under), so both compete for memory bandwidth as in a run. On a
  GPU the products are queued on the compute stream until the copy has finished, and the
  copy's time is the device time between the events around it on the copy stream; a sync
  copy's time is the device time between events around it on the compute stream.

Each (direction, mode, size) is copied ``repeats`` times; every copy is a sample in
machine.json ``copy_samples``. The bandwidth is the inverse slope of a least-squares line
through the median time of each size (seconds = latency + bytes / bandwidth), or total bytes
over total seconds when the slope is not positive (sizes too close together, noise).

Under emulation the executor holds every copy to the device model's bandwidth, so what is
measured here is the model's rate plus any real overhead: the numbers are labelled
``emulated:<model>`` in machine.json, never ``measured``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from autotm_execute.pools import align_up
from autotm_execute.tiers import Tiers

from .measure import synchronizer

DIRECTIONS = ("slow_to_fast", "fast_to_slow")
MODES = ("sync", "async")
DEFAULT_SIZES = (1 << 16, 1 << 20, 1 << 23, 1 << 25)  # 64 KiB .. 32 MiB
KERNEL_SIDE = 384  # the overlapping matrix product: 3 x 384 x 384 float32 = 1.7 MiB
GPU_KERNELS_PER_CHECK = 4  # GPU: products queued between looks at the copy's end event
GPU_KERNELS_MAX = 4096  # GPU: at most this many products overlap one copy


@dataclass(frozen=True)
class CopySample:
    direction: str
    mode: str
    nbytes: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "mode": self.mode,
            "bytes": self.nbytes,
            "seconds": self.seconds,
        }


def pool_needs(sizes: Sequence[int] = DEFAULT_SIZES) -> tuple[int, int]:
    """(fast, slow) bytes the measurement needs: one buffer per tier plus the kernel's."""
    largest = align_up(max(sizes))
    return largest + 3 * align_up(KERNEL_SIDE * KERNEL_SIDE * 4), largest


def measure_copies(
    tiers: Tiers, sizes: Sequence[int] = DEFAULT_SIZES, repeats: int = 3
) -> list[CopySample]:
    """Time every (direction, mode, size) ``repeats`` times on the open tiers."""
    xp = tiers.xp
    sync = synchronizer(xp)
    largest = align_up(max(sizes))
    fast_buffer = tiers.fast.bytes_view(0, largest)
    slow_buffer = tiers.slow.bytes_view(0, largest)
    fast_buffer.fill(1)  # a cupy array on a GPU, numpy (pinned host memory) for the slow tier
    slow_buffer.fill(2)
    side = KERNEL_SIDE
    a, b, c = (
        tiers.fast.view(largest + i * align_up(side * side * 4), (side, side), np.float32)
        for i in range(3)
    )
    a.fill(1.0)
    b.fill(1.0)
    samples: list[CopySample] = []
    copier = tiers.async_copier()  # closed with the tiers
    for direction in DIRECTIONS:
        for size in sizes:
            src_pool, dst_pool = (
                (slow_buffer, fast_buffer)
                if direction == "slow_to_fast"
                else (fast_buffer, slow_buffer)
            )
            src, dst = src_pool[:size], dst_pool[:size]
            for _ in range(repeats):
                sync()
                seconds = (
                    tiers.copy_sync(direction, dst, src)
                    if xp is np
                    else _gpu_sync_copy(xp, dst, src)
                )
                samples.append(CopySample(direction, "sync", size, seconds))
            for _ in range(repeats):
                seconds = _async_copy(tiers, copier, direction, dst, src, (a, b, c))
                samples.append(CopySample(direction, "async", size, seconds))
    return samples


def _gpu_sync_copy(xp: Any, dst: Any, src: Any) -> float:
    """Device time of one copy on the compute stream, between CUDA events: what a synchronous
    move costs the compute stream in a run (the executor times those the same way)."""
    from autotm_execute.copies import copy_into
    from autotm_execute.gpu import EventClock

    clock = EventClock(xp)
    stream = xp.cuda.get_current_stream()
    clock.wrap(lambda: copy_into(dst, src, stream=stream, blocking=False))()
    clock.sync()
    return clock.clock()


def _async_copy(
    tiers: Tiers, copier: Any, direction: str, dst: Any, src: Any, kernel: tuple[Any, ...]
) -> float:
    """One asynchronous copy overlapping matrix products on the main thread; its seconds."""
    xp = tiers.xp
    sync = synchronizer(xp)
    a, b, c = kernel
    sync()
    hold = tiers.copy_hold_s(direction, "async", int(src.nbytes))
    ticket = copier.submit(dst, src, hold_s=hold)
    if xp is np:
        # Keep the kernel running for as long as the copy does, as in a run.
        while not ticket.done.is_set():
            xp.matmul(a, b, out=c)
        copier.wait(ticket)
        return float(ticket.seconds)
    # On a GPU: matrix products on the compute stream while the copy stream copies, kept
    # coming until the copy's end event has passed (a few at a time, so that the compute
    # stream never runs far beyond the copy), then the copy's own device time from its events.
    compute = xp.cuda.get_current_stream()
    for _ in range(GPU_KERNELS_MAX // GPU_KERNELS_PER_CHECK):
        for _ in range(GPU_KERNELS_PER_CHECK):
            xp.matmul(a, b, out=c)
        compute.synchronize()
        if ticket.event.done:
            break
    copier.wait(ticket)
    copier.stream.synchronize()
    sync()
    return max(float(copier.copy_seconds(ticket)), hold)


def bandwidths(samples: Sequence[CopySample]) -> dict[str, dict[str, float]]:
    """The copy_bandwidth object: bytes per second by direction and mode."""
    result: dict[str, dict[str, float]] = {}
    for direction in DIRECTIONS:
        rates: dict[str, float] = {}
        for mode in MODES:
            chosen = [s for s in samples if s.direction == direction and s.mode == mode]
            sizes = sorted({s.nbytes for s in chosen})
            medians = [
                float(np.median([s.seconds for s in chosen if s.nbytes == size])) for size in sizes
            ]
            rates[f"{mode}_bytes_per_s"] = fit_bandwidth(sizes, medians)
        result[direction] = rates
    return result


def fit_bandwidth(nbytes: Sequence[int], seconds: Sequence[float]) -> float:
    """Bytes per second: 1 / slope of seconds against bytes, else total bytes / total seconds.

    :func:`bandwidths` fits the median time of each size, so one stalled copy among the
    repeats does not tilt the line.
    """
    if not nbytes:
        raise ValueError("no copy samples")
    x = np.asarray(nbytes, dtype=np.float64)
    y = np.asarray(seconds, dtype=np.float64)
    if len(set(nbytes)) >= 2:
        slope = float(np.polyfit(x, y, 1)[0])
        if slope > 0:
            return 1.0 / slope
    return float(x.sum()) / max(float(y.sum()), 1e-9)
