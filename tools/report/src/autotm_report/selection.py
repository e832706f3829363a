"""Picking runs: grouping by workload and finding each workload's baseline run.

Every speedup in the paper divides a baseline's time by a run's time, where the baseline ran
the same network at the same batch on the same device: all-slow (Fig. 7), all-fast (Figs. 9,
10 and the first claim), 2LM (Fig. 8) or CUDA unified memory (Fig. 12).
"""

from __future__ import annotations

from collections.abc import Iterable

from . import ratios
from .records import Run, Workload

#: The formulations a plan run can have that the paper plots against a baseline.
PLANNED = ("numa", "static", "synchronous", "asynchronous")


def by_workload(runs: Iterable[Run]) -> dict[Workload, list[Run]]:
    """Runs grouped by workload, workloads in order of network, batch and device."""
    groups: dict[Workload, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.workload, []).append(run)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0].network, kv[0].batch, kv[0].device)))


def baseline(runs: Iterable[Run], formulation: str) -> Run | None:
    """The workload's run of a baseline formulation (all-slow, all-fast, 2lm, unified)."""
    matches = [r for r in runs if r.formulation == formulation]
    return max(matches, key=lambda r: r.finished) if matches else None


def planned(runs: Iterable[Run], formulations: Iterable[str] = PLANNED) -> list[Run]:
    wanted = set(formulations)
    return [r for r in runs if r.formulation in wanted]


def at_share(runs: Iterable[Run], share: float | None) -> list[Run]:
    return [r for r in runs if ratios.same_share(r.fast_share, share)]


def same_budget(run: Run, limit_bytes: int | None, tolerance: float = 0.02) -> bool:
    """Whether a plan run had the fast budget of a 2LM or unified run (within 2 %).

    2LM and unified runs state only a byte limit (the cache or device size); a plan made for
    the same budget may round its limit differently, hence the tolerance.
    """
    if limit_bytes is None or run.fast_limit_bytes is None:
        return True
    return abs(run.fast_limit_bytes - limit_bytes) <= tolerance * max(limit_bytes, 1)
