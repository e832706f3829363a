"""index.html in a real headless browser (Debian's chromium via chromedriver), offline.

Every chart must load and have a size, the console must hold no SEVERE entry, and every
resource the page loaded must be a local file: the page works without a network.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import (
    chromium,
    loaded_protocols,
    needs_browser,
    rendered_charts,
    severe_console_entries,
)

from .conftest import Report

pytestmark = needs_browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def test_every_chart_renders_offline(browser: Any, report: Report) -> None:
    charts = rendered_charts(browser, report.folder / "index.html")
    expected = sorted(p.name for p in (report.folder / "figures").glob("*.svg"))
    assert sorted(Path(c["src"]).name for c in charts) == expected
    assert len(expected) == 9
    for chart in charts:
        assert chart["complete"] and chart["natural"] > 0 and chart["shown"] > 0, chart
    loaded = loaded_protocols(browser)
    assert len(loaded) >= len(expected)
    assert set(loaded) <= {"file:", "data:"}  # nothing from a network
    assert browser.execute_script("return document.scripts.length;") == 0
    assert severe_console_entries(browser) == []


def test_broken_chart_is_detected(browser: Any, report: Report, tmp_path: Path) -> None:
    """The check above can fail: a page with a missing SVG shows a zero-size image and a
    SEVERE console entry."""
    copy = tmp_path / "report"
    shutil.copytree(report.folder, copy)
    missing = next((copy / "figures").glob("*.svg"))
    missing.unlink()
    browser.get((copy / "index.html").resolve().as_uri())
    natural = browser.execute_script(
        "return document.querySelector(`img[src='figures/${arguments[0]}']`).naturalWidth;",
        missing.name,
    )
    assert natural == 0
    assert severe_console_entries(browser)
