"""Fixtures of the browser tests: Debian's headless Chromium, driven by Playwright."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.commands import BASE_DIR

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = BASE_DIR / "test-artifacts"
# As the machine's notes say: without the background-networking flags Chromium keeps
# trying hosts this closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium, driven by Playwright. Make the test's data before it
    starts: Django refuses ORM calls from a thread where Playwright runs its event loop."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `bash project/run test` installs Debian's chromium.")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def screenshot() -> Callable[[Page, str], None]:
    """``screenshot(page, name)`` saves the whole page as test-artifacts/NAME.png."""

    def save(page: Page, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    return save
