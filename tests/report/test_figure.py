"""Shared chart conventions: fixed colours, typed empty frames, paper ordering."""

from __future__ import annotations

import polars as pl
from autotm_report.figure import (
    FORMULATION_COLORS,
    budget_sort,
    chart_title,
    formulation_color,
    formulation_order,
    frame,
    provenance_phrases,
)
from autotm_report.records import FORMULATIONS


def test_every_formulation_has_a_colour() -> None:
    assert set(FORMULATION_COLORS) == set(FORMULATIONS)


def test_colour_domain_in_legend_order() -> None:
    encoding = formulation_color(["synchronous", "numa", "static"]).to_dict()
    assert isinstance(encoding, dict)
    assert encoding["scale"]["domain"] == ["numa", "static", "synchronous"]
    assert encoding["scale"]["range"][0] == FORMULATION_COLORS["numa"]
    assert formulation_order(["2lm", "static"]) == ["static", "2lm"]


def test_empty_frame_keeps_its_schema() -> None:
    df = frame([], {"a": pl.Int64, "b": pl.String})
    assert df.is_empty() and df.schema == pl.Schema({"a": pl.Int64, "b": pl.String})


def test_budget_sort_least_fast_first() -> None:
    df = pl.DataFrame(
        {"ratio": ["1:1", "8:1", "4:1", "8:1"], "fast_share": [0.5, 1 / 9, 0.2, 1 / 9]}
    )
    assert budget_sort(df) == ["8:1", "4:1", "1:1"]


def test_title_names_provenance() -> None:
    title = chart_title("T", provenance_phrases(["measured", "emulated:m", "measured"]), "note")
    assert title.to_dict()["subtitle"] == [
        "Provenance: emulated (m); measured on real tiers",
        "note",
    ]
