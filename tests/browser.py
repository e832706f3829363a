"""A headless Debian chromium driven by chromedriver, shared by the report and end-to-end tests.

The flags keep chromium off the network (this machine has none) and out of any user profile.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")

needs_browser = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
        reason="needs /usr/bin/chromium and chromedriver (apt-get install chromium chromium-driver)",
    ),
]


def requires_browser(test: Callable[..., Any]) -> Callable[..., Any]:
    """Mark one test as needing the browser (skipped without chromium and chromedriver)."""
    for mark in needs_browser:
        test = mark(test)
    return test


@contextmanager
def chromium() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="autotm-chromium-")
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


def rendered_charts(driver: Any, page: Path) -> list[dict[str, Any]]:
    """Load ``page`` and return, per chart image, its source, load state and sizes."""
    driver.get(page.resolve().as_uri())
    charts: list[dict[str, Any]] = driver.execute_script(
        """
        return Array.from(document.querySelectorAll('img.chart')).map(img => {
          const box = img.getBoundingClientRect();
          return {src: img.getAttribute('src'), complete: img.complete,
                  natural: img.naturalWidth * img.naturalHeight,
                  shown: box.width * box.height};
        });
        """
    )
    return charts


def loaded_protocols(driver: Any) -> list[str]:
    """The URL scheme of every resource the current page refers to."""
    protocols: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll('[src], link[href]'))"
        ".map(e => new URL(e.getAttribute('src') || e.getAttribute('href'), document.baseURI)"
        ".protocol);"
    )
    return protocols


def severe_console_entries(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
