"""The HTML page: every figure, omitted-figure notes, escaped text, no remote script."""

from __future__ import annotations

import re

import polars as pl
from autotm_report.claims import Claim
from autotm_report.page import MAX_ROWS, html_table, render_page


def test_html_table_escapes_and_formats() -> None:
    df = pl.DataFrame({"name": ["<b>x</b>"], "n": [1234567], "t": [0.000123456], "none": [None]})
    table = html_table(df)
    assert "&lt;b&gt;x&lt;/b&gt;" in table and "<b>x</b>" not in table
    assert "1,234,567" in table and "0.0001235" in table


def test_html_table_shortens_paths_and_rows() -> None:
    path = "/a/very/long/folder/name/that/goes/on/and/on/run.json"
    df = pl.DataFrame({"file": [path] * (MAX_ROWS + 5)})
    table = html_table(df)
    assert f'title="{path}">run.json<' in table
    assert table.count("<tr>") == MAX_ROWS + 1
    assert "5 more rows" in table


def test_page_without_figures_lists_omitted_and_claims() -> None:
    from autotm_report.figure import Omitted

    claim = Claim("c", "p", "-", "d", "cannot check: needs x", "", 0, "")
    page = render_page([], [Omitted("fig", "Fig. X", "some runs")], [claim], {}, ["careful"])
    assert "Fig. X</b>: not drawn; it needs some runs." in page
    assert "cannot check: needs x" in page and "careful" in page
    assert not re.search(r"<script[^>]*src=", page)
