"""Browser tests: Playwright driving Debian's Chromium (`/usr/bin/chromium`, headless; never
`playwright install`). Chromium is installed with apt when missing, so `make test` works on a fresh
machine. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.ui import Page

__all__ = ["Page"]  # importable from here as before

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("MLIFE_TEST_ARTIFACTS", "test-artifacts")) / "screenshots"


def ensure_chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        raise RuntimeError("Chromium is missing and apt-get is not available: install Debian's chromium package")
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    path = ensure_chromium()
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
        yield b
        await b.close()


@pytest.fixture
async def page(browser: object, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1366, "height": 768})  # a laptop screen
    p = Page(await context.new_page())
    yield p
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await p.page.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    await context.close()
