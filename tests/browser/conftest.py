"""Real Chromium, driven by Playwright, against a real regtrain (API and worker processes on the embedded
SQLite default), with every request that would leave loopback blocked and recorded.

Chromium is Debian's package (/usr/bin/chromium, installed by `make browser`); Playwright's own browser
download is never used. Without Chromium or the playwright package these tests skip, saying why.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.stack import Stack, start_stack

CHROMIUM = Path("/usr/bin/chromium")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
# As root Chromium needs --no-sandbox; the rest stop its background connections (updates, sync, field
# trials, QUIC probes), which this machine's closed network would refuse, and its first-run pages.
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Playwright's per-action wait: generous for a 2-core machine running the API and a worker beside it.
ACTION_TIMEOUT_MS = 15_000


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (`make browser` installs Debian's package)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.skip(f"browser tests need the playwright package (the dev extra): {exc}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(Path(tmp_path_factory.mktemp("browser-stack")), database_url=None, broker_url=None)
    yield running
    running.stop()


@dataclass
class Browsing:
    """One fresh browser context (no cookies or stored authorization) and page, with what it tried."""

    page: Any
    base_url: str
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def open(self, path: str) -> None:
        self.page.goto(self.base_url + path)

    def assert_stayed_local_and_clean(self) -> None:
        assert self.blocked == [], f"the page asked for something outside loopback: {self.blocked}"
        assert self.console_errors == [], f"the page logged errors: {self.console_errors}"


@pytest.fixture
def browsing(chromium: Any, stack: Stack) -> Iterator[Browsing]:
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = context.new_page()
    seen = Browsing(page=page, base_url=stack.base_url)

    def only_loopback(route: Any) -> None:
        url = route.request.url
        host = urlsplit(url).hostname or ""
        if urlsplit(url).scheme in {"data", "blob"} or host in LOOPBACK_HOSTS:
            route.continue_()
        else:
            seen.blocked.append(url)
            route.abort()

    def note_console(message: Any) -> None:
        if message.type == "error":
            seen.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    context.route("**/*", only_loopback)
    page.on("console", note_console)
    page.on("pageerror", lambda error: seen.console_errors.append(f"uncaught: {error}"))
    yield seen
    context.close()


def save_screenshot(page: Any, path: Path, copy_to: Path | None = None) -> Path:
    page.screenshot(path=str(path), full_page=False)
    if copy_to is not None:
        shutil.copyfile(path, copy_to)
    return path
