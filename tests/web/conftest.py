"""A live Accord server on a free port and headless Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from accord.core.settings import Settings
from accord.web.app import create_app
from tests.live_app import serving

# Debian's Chromium; Playwright never downloads a browser of its own here.
CHROMIUM = os.environ.get("ACCORD_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path, sqlite_synchronous="NORMAL")
    with serving(create_app(settings)) as base:
        yield base


# One Chromium per test module: Playwright's sync API keeps an event loop running on
# the main thread while it is started, which would break every later `asyncio.run`.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is required for the browser tests and is missing at {CHROMIUM}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()
