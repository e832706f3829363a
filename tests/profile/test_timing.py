"""The timing protocol: warm-up, stop on a stable median, on the budget, or on the sample cap."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from autotm_profile.timing import (
    Protocol,
    Stats,
    median,
    median_ci_halfwidth,
    stable,
    time_call,
)
from hypothesis import given
from hypothesis import strategies as st


class FakeClock:
    """A clock that advances by the next duration each time the timed call runs."""

    def __init__(self, durations: Iterator[float]) -> None:
        self.now = 0.0
        self.durations = durations
        self.calls = 0

    def __call__(self) -> float:
        return self.now

    def call(self) -> None:
        self.calls += 1
        self.now += next(self.durations)


def run(durations: Iterator[float], protocol: Protocol) -> tuple[Stats, FakeClock]:
    clock = FakeClock(durations)
    stats = time_call(clock.call, protocol, clock=clock)
    return stats, clock


def test_constant_calls_stop_after_the_minimum() -> None:
    stats, clock = run(itertools.repeat(0.001), Protocol(budget_s=1.0, min_samples=5))
    assert stats.samples == 5
    assert (stats.median_s, stats.min_s, stats.max_s) == pytest.approx((0.001,) * 3)
    assert clock.calls == 5 + 10  # ten warm-up calls: 10 ms < 10 % of the budget


def test_warm_up_is_not_recorded() -> None:
    durations = itertools.chain([0.5], itertools.repeat(0.001))  # a slow first call
    stats, _ = run(durations, Protocol(budget_s=1.0))
    assert stats.max_s == pytest.approx(0.001)


def test_noisy_calls_stop_on_the_budget() -> None:
    noisy = itertools.cycle([0.001, 0.003, 0.0005, 0.004])
    stats, _ = run(noisy, Protocol(budget_s=0.05, tolerance=0.01, max_samples=10_000))
    assert 20 <= stats.samples <= 40  # about 0.05 s of calls averaging 2.1 ms
    assert (stats.min_s, stats.max_s) == pytest.approx((0.0005, 0.004))


def test_a_kernel_slower_than_the_budget_is_still_called_often_enough() -> None:
    stats, clock = run(itertools.repeat(2.0), Protocol(budget_s=0.1, tolerance=1e-9))
    assert stats.samples == 3 and clock.calls == 4  # one warm-up call


def test_a_warm_kernel_skips_warm_up_calls_that_do_not_fit() -> None:
    _, clock = run(itertools.repeat(2.0), Protocol(budget_s=0.1, tolerance=1e-9))
    stats = time_call(
        clock.call, Protocol(budget_s=0.1, tolerance=1e-9), clock=clock, previous_s=2.0
    )
    assert stats.samples == 3 and clock.calls == 4 + 3  # no warm-up call the second time
    cheap = FakeClock(itertools.repeat(0.001))
    time_call(cheap.call, Protocol(budget_s=1.0, min_samples=5), clock=cheap, previous_s=0.001)
    assert cheap.calls == 5 + 10  # cheap warm-up calls still happen


def test_the_sample_cap_holds() -> None:
    noisy = itertools.cycle([1e-6, 5e-6])
    stats, _ = run(noisy, Protocol(budget_s=100.0, tolerance=1e-9, max_samples=50))
    assert stats.samples == 50


@pytest.mark.parametrize(
    ("values", "expected"), [([3.0], 3.0), ([1.0, 3.0], 2.0), ([5.0, 1.0, 3.0], 3.0)]
)
def test_median(values: list[float], expected: float) -> None:
    assert median(values) == expected


@given(st.lists(st.floats(min_value=1e-7, max_value=10.0), min_size=1, max_size=300))
def test_median_and_its_interval_lie_within_the_samples(values: list[float]) -> None:
    m = median(values)
    assert min(values) <= m <= max(values)
    assert 0 <= median_ci_halfwidth(values) <= (max(values) - min(values)) / 2 + 1e-12


def test_identical_samples_are_stable_and_spread_ones_are_not() -> None:
    assert stable([1.0] * 5, 0.01)
    assert not stable([1.0, 2.0, 1.0, 2.0, 1.0, 2.0], 0.01)


def test_shift_and_scale() -> None:
    stats = Stats(2.0, 1.0, 3.0, 7)
    assert stats.shifted(0.5) == Stats(2.5, 1.5, 3.5, 7)
    assert stats.scaled(2.0) == Stats(4.0, 2.0, 6.0, 7)


def test_real_clock_times_a_real_call() -> None:
    def work() -> None:
        sum(range(1000))

    stats = time_call(work, Protocol(budget_s=0.01))
    assert 0 < stats.min_s <= stats.median_s <= stats.max_s and stats.samples >= 3


class SharedClock(FakeClock):
    """A fake clock with the process's CPU time beside it: each call gets ``share`` of a core
    (1.0: ran throughout; 0.04: descheduled for most of the call, as a stall measures here)."""

    def __init__(self, calls: Iterator[tuple[float, float]]) -> None:
        super().__init__(iter(()))
        self.cpu_now = 0.0
        self.plan = calls

    def call(self) -> None:
        self.calls += 1
        seconds, share = next(self.plan)
        self.now += seconds
        self.cpu_now += seconds * share

    def cpu(self) -> float:
        return self.cpu_now


NORMAL = 120e-6  # the vgg19-tiny ConvGrad's own time
STALL = 78e-3  # the all-fast row it was once recorded with


def test_descheduled_calls_are_set_aside() -> None:
    calls = itertools.chain(
        [(NORMAL, 1.0)] * 10,  # warm-up
        [(NORMAL, 1.0), (STALL, 0.04), (STALL, 0.04), (NORMAL, 1.0), (STALL, 0.04)],
        itertools.repeat((NORMAL, 1.0)),
    )
    clock = SharedClock(calls)
    stats = time_call(clock.call, Protocol(), clock=clock, cpu_clock=clock.cpu)
    assert stats.median_s == pytest.approx(NORMAL) and stats.max_s == pytest.approx(NORMAL)
    assert stats.discarded == 3 and stats.samples >= 5


@pytest.mark.parametrize(("slow_s", "burst"), [(STALL, 2), (0.3, 6)])
def test_a_stall_the_cpu_clock_cannot_see_is_outlasted(slow_s: float, burst: int) -> None:
    """Slow calls that burn CPU (multithreaded BLAS spinning beside another process: 250 to
    400 ms a call, in bursts) used to make the median: the spread keeps the timer going until
    the burst is over and the kernel's own time is the median again."""

    def durations() -> Iterator[float]:
        return itertools.chain([NORMAL] * 10, [slow_s] * burst, itertools.repeat(NORMAL))

    stats, _ = run(durations(), Protocol())
    assert stats.median_s == pytest.approx(NORMAL) and stats.settled
    assert stats.max_s == pytest.approx(slow_s) and stats.samples > 2 * burst
    # the old rule (no spread limit) stops on the budget, at the burst
    old, _ = run(durations(), Protocol(spread_limit=float("inf")))
    assert old.samples == 3 and old.median_s == pytest.approx(slow_s)


def test_a_lasting_wide_spread_stops_once_the_extension_is_spent() -> None:
    protocol = Protocol(budget_s=0.05, tolerance=1e-9, max_samples=10_000)
    stats, clock = run(itertools.cycle([0.001, 0.01, 0.01]), protocol)  # median 10x the min
    timed = sum(itertools.islice(itertools.cycle([0.001, 0.01, 0.01]), clock.calls)) - sum(
        itertools.islice(itertools.cycle([0.001, 0.01, 0.01]), clock.calls - stats.samples)
    )
    limit = protocol.extension * protocol.budget_s
    assert limit <= timed < limit + 0.01
    assert not stats.settled
    assert stats.median_s == pytest.approx(0.01)  # reported as it is


def test_stalled_throughout_uses_every_call() -> None:
    clock = SharedClock(itertools.repeat((STALL, 0.04)))
    protocol = Protocol(budget_s=0.05)
    stats = time_call(clock.call, protocol, clock=clock, cpu_clock=clock.cpu)
    assert stats.median_s == pytest.approx(STALL) and stats.discarded == 0
    assert stats.samples * STALL >= protocol.extension * protocol.budget_s  # the whole extension


def test_stats_compare_without_their_discarded_count() -> None:
    assert Stats(1.0, 1.0, 1.0, 3, discarded=2) == Stats(1.0, 1.0, 1.0, 3)
    assert Stats(2.0, 1.0, 3.0, 7, 4).shifted(0.5).discarded == 4


def test_the_process_cpu_clock_tells_a_sleeping_call_from_a_working_one() -> None:
    """Real clocks: a call that sleeps (the process off the CPU, as when descheduled) is set
    aside; the working calls make the statistics."""
    count = itertools.count()

    def work() -> None:
        if next(count) % 4 == 3:
            time.sleep(0.003)
        else:
            sum(range(2000))

    stats = time_call(work, Protocol(budget_s=0.02), cpu_clock=time.process_time)
    assert stats.discarded >= 1 and stats.max_s < 0.003
