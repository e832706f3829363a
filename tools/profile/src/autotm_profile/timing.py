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

**Stalls.** A median resists rare outliers, not a burst of them, and a busy machine makes
bursts. Two kinds were measured on the 2-core development machine (shared with other jobs):

* *Descheduling*: the process waits a scheduler slice (4 ms and more) for a core. Such a call
  shows it in the process's CPU time: well under its wall time (4 % of it, measured).
* *Multithreaded BLAS under contention*: OpenBLAS's threads wait for each other by spinning;
  when another process holds a core, a matrix product that takes 1 ms crawls for 250 to
  400 ms, in bursts lasting seconds, while burning CPU the whole time (CPU time = wall time,
  about 100 involuntary context switches, no page faults). One in ten BLAS calls of the
  vgg19-mini kernels did so in a 20 s loop beside other jobs; with one BLAS thread
  (``OPENBLAS_NUM_THREADS=1``) none did, at the same median. That is how one vgg19-tiny
  ConvGrad all-fast row got a 78 ms median against 0.12 ms for its sibling configurations,
  and how a per-configuration profile of vgg19-mini got rows 300 to 1600 times their
  siblings.

Two rules guard against them:

* *Descheduled calls are set aside.* Next to the wall clock, the process's CPU time
  (``time.process_time``, every thread) is read around each call on a CPU. A call during which
  the process ran less than ``stall_share`` (default half) of the wall time spent the rest
  waiting for a core, not computing: it is counted in ``Stats.discarded`` and left out of the
  statistics and of the budget. (A kernel running alone gets a share of 1 or more -- BLAS
  threads add up.)
* *A wide spread keeps sampling.* A stop on the budget or on stability is deferred while the
  median is more than ``spread_limit`` (default 2) times the fastest call, warm-up calls
  included (a burst may start after the warm-up and cover every timed call): the slow calls
  may be a burst that ends, and more calls then bring the median down to the kernel's own time.
  This catches the spinning BLAS bursts, which the CPU clock cannot see. It ends when the
  timed calls, stalled ones included, have used ``extension`` budgets (default 40: 2 s at the
  default budget, longer than most bursts seen) -- the numbers are then what they are, marked
  ``Stats.settled = False`` -- or at ``max_samples``. The profiler times such a configuration
  once more after all the others (bursts also lasted a minute and more) and keeps a settled
  try, else the lower median.

If fewer than ``min_on_budget`` calls escaped stalls when the extension is spent, the stalled
calls are used after all (the machine was busy for the whole extension; ``discarded`` is then
0, and the spread shows it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_BUDGET_S = 0.05
DEFAULT_TOLERANCE = 0.05


#: Bumped whenever the protocol changes what it records: part of the kernel cache's namespace
#: (:mod:`autotm_profile.identity`), so timings taken under an older protocol are not reused.
#: 2: stalled calls set aside, sampling extended while the spread is wide.
PROTOCOL_VERSION = 2


@dataclass(frozen=True)
class Protocol:
    """Parameters of the timing protocol (see the module docstring)."""

    budget_s: float = DEFAULT_BUDGET_S
    tolerance: float = DEFAULT_TOLERANCE
    min_samples: int = 5
    min_on_budget: int = 3
    max_samples: int = 200
    max_warmup: int = 10
    stall_share: float = 0.5
    spread_limit: float = 2.0
    extension: float = 40.0

    def to_json(self) -> dict[str, float | int]:
        return {
            "version": PROTOCOL_VERSION,
            "budget_s": self.budget_s,
            "tolerance": self.tolerance,
            "min_samples": self.min_samples,
            "min_on_budget": self.min_on_budget,
            "max_samples": self.max_samples,
            "max_warmup": self.max_warmup,
            "stall_share": self.stall_share,
            "spread_limit": self.spread_limit,
            "extension": self.extension,
        }


@dataclass(frozen=True)
class Stats:
    """Statistics of the timed calls of one kernel configuration, seconds.

    ``discarded``: calls set aside as stalled (not in the statistics); ``settled``: False when
    timing ended with the spread still wide (the extension spent; see the module docstring).
    Both are known only for the timings taken by this run (the cache does not keep them), so
    they take no part in comparisons.
    """

    median_s: float
    min_s: float
    max_s: float
    samples: int
    discarded: int = field(default=0, compare=False)
    settled: bool = field(default=True, compare=False)

    def shifted(self, seconds: float) -> Stats:
        """Every statistic plus a constant (an emulated penalty)."""
        return Stats(
            self.median_s + seconds,
            self.min_s + seconds,
            self.max_s + seconds,
            self.samples,
            self.discarded,
            self.settled,
        )

    def scaled(self, factor: float) -> Stats:
        """Every statistic times a factor (batch scaling)."""
        return Stats(
            self.median_s * factor,
            self.min_s * factor,
            self.max_s * factor,
            self.samples,
            self.discarded,
            self.settled,
        )


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


def stalled(wall_s: float, cpu_s: float, protocol: Protocol) -> bool:
    """Whether the process ran for less than ``stall_share`` of a call's wall time."""
    return cpu_s < protocol.stall_share * wall_s


def wide(values: list[float], protocol: Protocol, fastest: float = math.inf) -> bool:
    """Whether the median is more than ``spread_limit`` times the fastest call (of ``values``
    and ``fastest``, the fastest warm-up call)."""
    return median(values) > protocol.spread_limit * min(min(values), fastest)


def time_call(
    call: Callable[[], None],
    protocol: Protocol,
    sync: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.perf_counter,
    previous_s: float | None = None,
    cpu_clock: Callable[[], float] | None = None,
) -> Stats:
    """Time ``call`` under the protocol. ``sync`` waits for queued device work (GPU).

    ``previous_s`` is the median of an earlier configuration of the same kernel: the kernel is
    warm, so warm-up calls are made only while one more is expected to fit in the warm-up
    share of the budget (possibly none). ``cpu_clock``, the process's CPU time
    (``time.process_time``), tells stalled calls apart; without it (on a GPU, where the host
    waits for the device, or with a fake ``clock``) no call counts as stalled.
    """
    warmup_s = 0.1 * protocol.budget_s
    start = clock()
    calls = 0
    fastest = math.inf  # the fastest warm-up call: a burst may cover every timed call
    while calls < protocol.max_warmup:
        spent = clock() - start
        if previous_s is not None and spent + previous_s > warmup_s:
            break
        if previous_s is None and calls > 0 and spent >= warmup_s:
            break
        t0 = clock()
        call()
        sync()
        fastest = min(fastest, clock() - t0)
        calls += 1
    cpu = cpu_clock or (lambda: 0.0)
    samples: list[float] = []
    stalls: list[float] = []
    spent = 0.0  # seconds of the recorded calls: the budget
    spent_all = 0.0  # stalled calls included: the extension
    limit = protocol.extension * protocol.budget_s
    while True:
        c0 = cpu()
        t0 = clock()
        call()
        sync()
        elapsed = clock() - t0
        cpu_s = cpu() - c0
        spent_all += elapsed
        if cpu_clock is not None and stalled(elapsed, cpu_s, protocol):
            stalls.append(elapsed)
        else:
            samples.append(elapsed)
            spent += elapsed
        n = len(samples)
        if n >= protocol.max_samples or n + len(stalls) >= 2 * protocol.max_samples:
            break
        settled = n >= protocol.min_samples and stable(samples, protocol.tolerance)
        settled = settled or (spent >= protocol.budget_s and n >= protocol.min_on_budget)
        if settled and not wide(samples, protocol, fastest):
            break
        if spent_all >= limit and n + len(stalls) >= protocol.min_on_budget:
            break  # the extension is spent: the numbers are what they are
    if len(samples) < protocol.min_on_budget:
        samples, stalls = samples + stalls, []  # stalled throughout: use every call
    done = not wide(samples, protocol, fastest)
    return Stats(median(samples), min(samples), max(samples), len(samples), len(stalls), done)
