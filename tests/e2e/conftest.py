"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, and the real app
served by uvicorn in a thread on a seeded SQLite database.

Skipped when /usr/bin/chromium is missing (`.ci/run` installs it), except under CI, where
a missing browser fails the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("PILAH_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "reports" / "screenshots"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives a real browser (Chromium, Playwright)")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium shared by one module's browser tests (each test opens its own
    context). Module scope: while Playwright's sync API is started, the main thread has a
    running event loop, which other tests' `asyncio.run`/`anyio.run` must not meet."""
    if not CHROMIUM.is_file():
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
