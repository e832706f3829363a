"""Summary tables: one row per input, numbers as in the records."""

from __future__ import annotations

from autotm_report.inputs import Inputs
from autotm_report.tables import plans_table, profiles_table, runs_table

from .fixtures import median_of


def test_runs_table(inputs: Inputs) -> None:
    df = runs_table(inputs)
    assert df.height == len(inputs.runs)
    for row in df.iter_rows(named=True):
        assert row["median_s"] == median_of(row["file"])


def test_plans_and_profiles_tables(inputs: Inputs) -> None:
    assert plans_table(inputs).height == len(inputs.plans)
    profiles = profiles_table(inputs)
    assert profiles.height == 5
    assert set(profiles["device"]) == {"cpu", "cuda"}
