"""index.html: every figure, the claims table and the summary tables, on one offline page.

Figures are ``<img>`` elements pointing at the SVG files beside the page, so the page needs
no script at all: it opens from ``file://`` without a network, and a browser shows exactly
the images vl-convert drew. Each figure links its PNG, Vega-Lite JSON and Parquet data.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

import polars as pl

from . import __version__
from .claims import Claim
from .figure import Figure, Omitted
from .render import FigureFiles

#: Rows shown per table on the page; the Parquet file always holds all of them.
MAX_ROWS = 400

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1500px;
       padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; }
nav a { margin-right: 0.8rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.45rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5rem 0 2.5rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9rem; max-width: 70rem; }
.layout { display: flex; flex-wrap: wrap; gap: 2rem; align-items: flex-start; }
.layout > .claims { flex: 1 1 30rem; }
.layout > .figures { flex: 3 1 50rem; min-width: 0; }
.omitted li { margin-bottom: 0.3rem; }
.verdict { font-weight: 600; }
.scroll { overflow-x: auto; max-width: 100%; }
"""


@dataclass(frozen=True)
class Drawn:
    """A figure as the page shows it: the figure and where its files are."""

    figure: Figure
    files: FigureFiles


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "<td></td>"
    if isinstance(value, bool):
        return f"<td>{value}</td>"
    if isinstance(value, int):
        return f'<td class="num">{value:,}</td>'
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    text = str(value)
    if "/" in text and len(text) > 40:  # a path: show its name, keep the whole in a tooltip
        return f'<td title="{html.escape(text)}">{html.escape(PurePath(text).name)}</td>'
    return f"<td>{html.escape(text)}</td>"


def html_table(df: pl.DataFrame, caption: str = "") -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    body = "\n".join(
        "<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in df.head(MAX_ROWS).iter_rows()
    )
    more = ""
    if df.height > MAX_ROWS:
        more = f"<p>{df.height - MAX_ROWS} more rows in the Parquet file.</p>"
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (
        f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead><tbody>\n{body}\n'
        f"</tbody></table></div>{more}"
    )


def _claims_section(claims: Sequence[Claim]) -> str:
    rows = "\n".join(
        "<tr>"
        f"<td>{html.escape(c.claim)}</td>"
        f"<td>{html.escape(c.paper)}</td>"
        f"<td>{html.escape(c.measured)}</td>"
        f'<td><span class="verdict">{html.escape(c.verdict)}</span>'
        + (f"<br>{html.escape(c.note)}" if c.note else "")
        + f"<br><small>Definition: {html.escape(c.definition)}</small>"
        + (f"<br><small>Provenance: {html.escape(c.provenance)}</small>" if c.provenance else "")
        + "</td></tr>"
        for c in claims
    )
    return (
        '<section class="claims" id="claims"><h2>The paper\'s claims and these runs</h2>'
        "<table><thead><tr><th>claim</th><th>paper</th><th>these runs</th>"
        f"<th>verdict</th></tr></thead><tbody>\n{rows}\n</tbody></table>"
        '<p>Numbers: <a href="data/claims.parquet">data/claims.parquet</a>.</p></section>'
    )


def _figure_section(drawn: Drawn) -> str:
    fig, files = drawn.figure, drawn.files
    links = " · ".join(
        f'<a href="{html.escape(path)}">{label}</a>'
        for label, path in (
            ("PNG", files.png),
            ("SVG", files.svg),
            ("Vega-Lite", files.vega_lite),
            ("data (Parquet)", files.data),
        )
    )
    provenance = "; ".join(fig.provenance)
    return (
        f'<figure id="{html.escape(fig.id)}"><h2>{html.escape(fig.title)}</h2>'
        f'<img class="chart" src="{html.escape(files.svg)}" alt="{html.escape(fig.title)}">'
        f"<figcaption>{html.escape(fig.caption)} <b>Provenance:</b> {html.escape(provenance)}."
        f" Files: {links}.</figcaption>"
        f"<details><summary>Numbers ({fig.data.height} rows)</summary>"
        f"{html_table(fig.data)}</details></figure>"
    )


def render_page(
    drawn: Sequence[Drawn],
    omitted: Sequence[Omitted],
    claims: Sequence[Claim],
    summary: dict[str, pl.DataFrame],
    warnings: Sequence[str],
) -> str:
    """The whole page as a string."""
    counts = ", ".join(f"{df.height} {name}" for name, df in summary.items())
    nav = " ".join(
        f'<a href="#{html.escape(d.figure.id)}">{html.escape(d.figure.title.split(":")[0])}</a>'
        for d in drawn
    )
    figures = "\n".join(_figure_section(d) for d in drawn)
    if omitted:
        items = "\n".join(
            f"<li><b>{html.escape(o.title)}</b>: not drawn; it needs {html.escape(o.needs)}.</li>"
            for o in omitted
        )
        figures += f'<section class="omitted" id="omitted"><h2>Figures not drawn</h2><ul>{items}</ul></section>'
    tables = "\n".join(
        f'<section id="{name}"><h2>{name.capitalize()}</h2>'
        f'<p>All rows: <a href="data/{name}.parquet">data/{name}.parquet</a>.</p>'
        f"{html_table(df)}</section>"
        for name, df in summary.items()
    )
    warning_html = ""
    if warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
        warning_html = f'<section id="warnings"><h2>Warnings</h2><ul>{items}</ul></section>'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>AutoTM report</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>AutoTM report</h1>
<p>Made by autotm-report {html.escape(__version__)} from {html.escape(counts)}.
Every figure says where its numbers come from: measured on real tiers, emulated with a device
model, scaled from a smaller batch, or simulated.</p>
<nav>{nav} <a href="#runs">Runs</a> <a href="#plans">Plans</a> <a href="#profiles">Profiles</a></nav>
</header>
<div class="layout">
{_claims_section(claims)}
<main class="figures">
{figures}
</main>
</div>
{warning_html}
{tables}
</body>
</html>
"""
