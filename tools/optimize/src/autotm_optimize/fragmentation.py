"""Fragmentation: what the driver does when no arrangement of a solved plan fits the limit.

The ILP keeps the live bytes under the fast limit at every node, but an arrangement of the
buffers (dynamic storage allocation, NP-hard) may need more than that peak: on plans of the
mini networks filled to the brim, the greedy orders left 3 to 10 % of the pool in holes. The
driver then re-solves under tighter per-node limits (:class:`Tightening`), within one deadline
for the whole run (:class:`Clock`), searching each round's arrangement briefly
(:func:`search_budget`); the first solve, under the limit itself, bounds every plan that fits
it (:func:`lower_bound`), so a plan can say what its headroom cost.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .placement import PoolOverflow
from .solve import SolveResult

LAST_CHANCE_S = 4.0  # with less time left, a round that overflows is the last one
PRIORITIZE_S = 3.0  # seconds of reordering an overflowing arrangement, at most, per round
REFINE_STEPS = 3  # bisections of a fragmentation headroom that costs more than half the gap


class Clock:
    """The whole run's deadline (``--time-limit``), shared by solves and address searches."""

    def __init__(self, limit_s: float | None) -> None:
        self.started = time.monotonic()
        self.limit_s = limit_s

    def left(self) -> float:
        if self.limit_s is None:
            return math.inf
        return max(0.0, self.limit_s - (time.monotonic() - self.started))

    def share(self, fraction: float, floor: float = 0.5) -> float | None:
        """A solve's time limit: ``fraction`` of what is left, at least ``floor`` seconds."""
        if self.limit_s is None:
            return None
        return max(floor, fraction * self.left())


class Tightening:
    """Per-node limits (the model's caps, in units of ``unit`` bytes), lowered round by round
    where fragmentation made the fast pool overflow.

    Two cuts after each overflow. Locally, the crowded nodes (where the live bytes plus the
    overflow there exceed the limit: where the arrangement ran out of room) lose that overflow.
    Globally, every node keeps a headroom below the limit: the fragmentation just seen (the
    arrangement's height above the plan's peak of live bytes, what a plan filled to the brim
    would lose; more than the room that plan left, so the next plan must differ), or the
    previous headroom plus the overflow left (at least 0.2 % of the limit), doubled each round
    so the loop ends, whichever is more. The local
    cut alone tends to move the problem to other nodes the next plan fills to the brim; the
    headroom binds only at nodes a plan would fill closer to the limit than that, which are
    the nodes where an arrangement can fail. The plan records the headroom it was solved with
    (``reductions.fragmentation_headroom_bytes``).
    """

    def __init__(self, caps: np.ndarray, limit: int, unit: int) -> None:
        self.caps = caps  # changed in place: the formulation's caps
        self.base = caps.copy()
        self.limit = limit
        self.unit = unit
        self.headroom = 0
        self.rounds = 0

    def apply(self, overflow: PoolOverflow) -> int:
        """Lower the caps after an overflow; returns how many nodes changed."""
        self.rounds += 1
        over = np.maximum(overflow.top - overflow.limit, 0)
        crowded = (over > 0) & (overflow.live + over > overflow.limit)
        if not crowded.any():
            crowded = over > 0
        new = self.caps - np.where(crowded, -(-over // self.unit), 0)
        fragmentation = overflow.high_water - int(overflow.live.max(initial=0))
        excess = max(overflow.high_water - overflow.limit, self.limit // 500, 1)
        grown = self.headroom + excess * 2 ** (self.rounds - 2) if self.rounds > 1 else 0
        self.headroom = max(fragmentation, grown)
        new = np.minimum(new, self.base - -(-self.headroom // self.unit))
        changed = int((new < self.caps).sum())
        self.caps[:] = new
        return changed


@dataclass(frozen=True)
class SearchBudget:
    """Seconds a round may spend arranging a solved plan beyond the fixed greedy orders."""

    prioritize_s: float  # reordering what overflowed (:func:`autotm_optimize.addresses.prioritize`)
    restarts_s: float  # randomized greedy orders, for a near miss
    search_s: float  # CP-SAT's no-overlap-2D


def search_budget(clock: Clock) -> SearchBudget:
    """What a round may spend arranging when a solved plan's greedy arrangement overflows the
    limit. A re-solve with tighter limits costs about a second on the mini networks and 2 to
    60 s on Inception v4 at batch 1024, where a greedy pass takes 0.07 s and reordering finds
    an arrangement at the peak in a few passes: so up to 3 s of reordering (5 % of what is left),
    a second of restarts, and no CP-SAT, which needs many seconds to close the last percent,
    if it can (the last round may, see the driver)."""
    left = clock.left()
    if left == math.inf:
        left = 60.0
    return SearchBudget(min(PRIORITIZE_S, 0.05 * left), min(1.0, 0.05 * left), 0.0)


def lower_bound(result: SolveResult, gap: float) -> float | None:
    """A lower bound (ticks) on every plan the solved model admits: the solver's own bound,
    or, for a solve proven within ``gap`` with no bound reported (HiGHS), its objective less
    the gap."""
    if result.bound is not None:
        return result.bound
    if result.status == "optimal" and result.objective is not None:
        return result.objective * (1 - gap)
    return None
