"""Grouping runs by workload and finding baselines."""

from __future__ import annotations

import dataclasses

from autotm_report.inputs import Inputs
from autotm_report.selection import PLANNED, at_share, baseline, by_workload, planned, same_budget


def test_workloads_are_sorted_and_separate_devices(inputs: Inputs) -> None:
    groups = by_workload(inputs.runs)
    keys = list(groups)
    assert keys == sorted(keys, key=lambda w: (w.network, w.batch, w.device))
    assert sum(len(g) for g in groups.values()) == len(inputs.runs)


def test_baseline_picks_the_latest(inputs: Inputs) -> None:
    run = next(r for r in inputs.runs if r.formulation == "all-slow")
    later = dataclasses.replace(run, finished="2099-01-01T00:00:00Z", median_s=1.0)
    assert baseline([run, later], "all-slow") is later
    assert baseline([run], "2lm") is None


def test_planned_and_share(inputs: Inputs) -> None:
    chosen = planned(inputs.runs)
    assert {r.formulation for r in chosen} <= set(PLANNED)
    quarter = at_share(chosen, 0.2)
    assert quarter and all(r.ratio == "4:1" for r in quarter)


def test_same_budget_tolerance(inputs: Inputs) -> None:
    run = dataclasses.replace(inputs.runs[0], fast_limit_bytes=1000)
    assert same_budget(run, 1010)
    assert not same_budget(run, 1100)
    assert same_budget(run, None)
