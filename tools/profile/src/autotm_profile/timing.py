"""The timing protocol: warm up, then repeat until the median is stable or the budget is spent.

For one kernel in one configuration:

1. **Warm-up.** Call it once (lazy initialisation, caches), then keep calling until 10 % of
   the budget is spent, at most ``max_warmup`` calls. Warm-up calls are not recorded. The
   configurations of one kernel after its first share that warm-up: their buffers are touched
   before timing (see :meth:`autotm_profile.measure.KernelTimer.place`), so they only get the
   warm-up calls expected to fit in 10 % of the budget, possibly none -- a 60 ms kernel is
   then called 3 times per configuration instead of 4.
2. **Timed calls.** Each call is timed alone with ``time.perf_counter`` (on a GPU the device
   is synchronised before the clock is read at both ends). After each call, once at least
   ``min_samples`` calls are in, the 95 % confidence interval of the median is taken from the
   order statistics (distribution-free: the ranks ``n/2 -+ 0.98 sqrt(n)``); timing stops when
   its half-width is within ``tolerance`` of the median (default 5 %).
3. **Budget.** Otherwise timing stops when the timed calls have used ``budget_s`` seconds and
   at least ``min_on_budget`` calls are in (a kernel slower than the budget is still called
   that often), or after ``max_samples`` calls.

Recorded: median, min, max and the number of timed calls. The median rather than the mean,
because a shared machine adds rare, long outliers that say nothing about the kernel.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_BUDGET_S = 0.05
DEFAULT_TOLERANCE = 0.05


@dataclass(frozen=True)
class Protocol:
    """Parameters of the timing protocol (see the module docstring)."""

    budget_s: float = DEFAULT_BUDGET_S
    tolerance: float = DEFAULT_TOLERANCE
    min_samples: int = 5
    min_on_budget: int = 3
    max_samples: int = 200
    max_warmup: int = 10

    def to_json(self) -> dict[str, float | int]:
        return {
            "budget_s": self.budget_s,
            "tolerance": self.tolerance,
            "min_samples": self.min_samples,
            "min_on_budget": self.min_on_budget,
            "max_samples": self.max_samples,
            "max_warmup": self.max_warmup,
        }


@dataclass(frozen=True)
class Stats:
    """Statistics of the timed calls of one kernel configuration, seconds."""

    median_s: float
    min_s: float
    max_s: float
    samples: int

    def shifted(self, seconds: float) -> Stats:
        """Every statistic plus a constant (an emulated penalty)."""
        return Stats(
            self.median_s + seconds, self.min_s + seconds, self.max_s + seconds, self.samples
        )

    def scaled(self, factor: float) -> Stats:
        """Every statistic times a factor (batch scaling)."""
        return Stats(self.median_s * factor, self.min_s * factor, self.max_s * factor, self.samples)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def median_ci_halfwidth(values: list[float]) -> float:
    """Half the width of the ~95 % distribution-free confidence interval of the median."""
    ordered = sorted(values)
    n = len(ordered)
    spread = 0.98 * math.sqrt(n)  # 1.96 * sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - spread))
    hi = min(n - 1, math.ceil(n / 2 + spread) - 1)
    return 0.5 * (ordered[hi] - ordered[lo])


def stable(values: list[float], tolerance: float) -> bool:
    m = median(values)
    return m > 0 and median_ci_halfwidth(values) <= tolerance * m


def time_call(
    call: Callable[[], None],
    protocol: Protocol,
    sync: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.perf_counter,
    previous_s: float | None = None,
) -> Stats:
    """Time ``call`` under the protocol. ``sync`` waits for queued device work (GPU).

    ``previous_s`` is the median of an earlier configuration of the same kernel: the kernel is
    warm, so warm-up calls are made only while one more is expected to fit in the warm-up
    share of the budget (possibly none).
    """
    warmup_s = 0.1 * protocol.budget_s
    start = clock()
    calls = 0
    while calls < protocol.max_warmup:
        spent = clock() - start
        if previous_s is not None and spent + previous_s > warmup_s:
            break
        if previous_s is None and calls > 0 and spent >= warmup_s:
            break
        call()
        sync()
        calls += 1
    samples: list[float] = []
    spent = 0.0
    while True:
        t0 = clock()
        call()
        sync()
        elapsed = clock() - t0
        samples.append(elapsed)
        spent += elapsed
        n = len(samples)
        if n >= protocol.max_samples:
            break
        if n >= protocol.min_samples and stable(samples, protocol.tolerance):
            break
        if spent >= protocol.budget_s and n >= protocol.min_on_budget:
            break
    return Stats(median(samples), min(samples), max(samples), len(samples))
