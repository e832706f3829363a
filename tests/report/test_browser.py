"""index.html in a real headless browser (Debian's chromium via chromedriver), offline.

Every chart must load and have a size, the console must hold no SEVERE entry, and every
resource the page loaded must be a local file: the page works without a network.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Report

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
        reason="needs /usr/bin/chromium and chromedriver (apt-get install chromium chromium-driver)",
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="autotm-report-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_every_chart_renders_offline(browser: Any, report: Report) -> None:
    page = report.folder / "index.html"
    browser.get(page.resolve().as_uri())
    charts = browser.execute_script(
        """
        return Array.from(document.querySelectorAll('img.chart')).map(img => {
          const box = img.getBoundingClientRect();
          return {src: img.getAttribute('src'), complete: img.complete,
                  natural: img.naturalWidth * img.naturalHeight,
                  shown: box.width * box.height};
        });
        """
    )
    expected = sorted(p.name for p in (report.folder / "figures").glob("*.svg"))
    assert sorted(Path(c["src"]).name for c in charts) == expected
    assert len(expected) == 9
    for chart in charts:
        assert chart["complete"] and chart["natural"] > 0 and chart["shown"] > 0, chart
    loaded = browser.execute_script(
        "return Array.from(document.querySelectorAll('[src], link[href]'))"
        ".map(e => new URL(e.getAttribute('src') || e.getAttribute('href'), document.baseURI)"
        ".protocol);"
    )
    assert len(loaded) >= len(expected)
    assert set(loaded) <= {"file:", "data:"}  # nothing from a network
    assert browser.execute_script("return document.scripts.length;") == 0
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []


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
    assert any(e["level"] == "SEVERE" for e in browser.get_log("browser"))
