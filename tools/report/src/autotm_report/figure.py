"""What every figure module returns, and the chart conventions all figures share.

A figure is its data (a polars frame, written to Parquet as it is) and an Altair chart drawn
from exactly that frame, so the Parquet file is the figure's numbers and nothing else. Colours
are fixed per formulation so that 'static' is the same blue in every figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import altair as alt
import polars as pl
from autotm_schemas.provenance import describe

from .records import FORMULATIONS

#: Tableau-10 colours, one per formulation, stable across figures.
FORMULATION_COLORS = {
    "numa": "#e15759",
    "static": "#4e79a7",
    "synchronous": "#59a14f",
    "asynchronous": "#f28e2b",
    "all-slow": "#79706e",
    "all-fast": "#222222",
    "2lm": "#b07aa1",
    "unified": "#9c755f",
}

#: Width and height of one facet panel, in pixels.
PANEL_WIDTH = 180
PANEL_HEIGHT = 180


@dataclass(frozen=True)
class Options:
    """Report-wide settings from the command line."""

    price_ratio: float = 2.1
    case_study: str | None = None


@dataclass(frozen=True)
class Figure:
    """A figure with data: its file stem, title, caption, numbers and chart."""

    id: str
    title: str
    caption: str
    data: pl.DataFrame
    chart: alt.TopLevelMixin
    provenance: tuple[str, ...]


@dataclass(frozen=True)
class Omitted:
    """A figure the inputs cannot draw, and what it would need."""

    id: str
    title: str
    needs: str


def provenance_phrases(values: Iterable[str]) -> tuple[str, ...]:
    """Distinct provenance strings as caption phrases ('emulated (optane-dc-2019)')."""
    return tuple(describe(v) for v in sorted(set(values)))


def chart_title(title: str, provenance: Sequence[str], *notes: str) -> alt.TitleParams:
    """A title whose subtitle says where the numbers come from, then any notes."""
    subtitle = ["Provenance: " + "; ".join(provenance), *notes]
    return alt.TitleParams(title, subtitle=subtitle, anchor="start", fontSize=14)


def formulation_color(present: Iterable[str], title: str = "formulation") -> alt.Color:
    """A colour encoding whose legend lists only the formulations in the figure, in order."""
    names = set(present)
    domain = [f for f in FORMULATIONS if f in names]
    return alt.Color(
        "formulation:N",
        title=title,
        sort=domain,
        scale=alt.Scale(domain=domain, range=[FORMULATION_COLORS[f] for f in domain]),
    )


def formulation_order(present: Iterable[str]) -> list[str]:
    names = set(present)
    return [f for f in FORMULATIONS if f in names]


def frame(rows: list[dict[str, Any]], schema: dict[str, Any]) -> pl.DataFrame:
    """A frame with a fixed schema, so that an empty selection still has typed columns."""
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def budget_sort(data: pl.DataFrame, label: str = "ratio", share: str = "fast_share") -> list[str]:
    """Labels in the paper's order: least fast memory first."""
    pairs = data.select(label, share).unique().sort(share)
    return [str(v) for v in pairs[label].to_list()]
