"""The browser harness shared by the browser tests: Debian Chromium driven by Playwright, and a page
that records console errors, uncaught exceptions, dialogs and requests that leave the allowed origin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class WatchedPage:
    """A new page; ``allowed(url)`` says which requests stay local. ``check`` saves a screenshot under
    tests/artifacts/ and asserts that nothing went wrong or left."""

    def __init__(self, browser: Browser, viewport: dict[str, int], allowed: Callable[[str], bool], prefix: str):
        self.page = browser.new_page(viewport=viewport)
        self.prefix = prefix
        self.errors: list[str] = []
        self.remote: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("request", lambda r: allowed(r.url) or self.remote.append(r.url))

    def check(self, name: str, full_page: bool = False) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{self.prefix}-{name}.png"), full_page=full_page)
        assert self.errors == [], self.errors
        assert self.remote == [], self.remote
        assert self.dialogs == [], self.dialogs
        self.page.close()
