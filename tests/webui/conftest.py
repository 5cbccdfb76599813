"""A real devenv world (embedded Temporal dev server with its Web UI, worker, local
backend) and Debian's chromium driven by Playwright, for the Web UI tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Devenv, serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's chromium and Playwright, checked before anything starts.

    Fails (never skips) without either: the README promises both.
    """
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: the Web UI test drives Debian's chromium "
            "(apt-get install chromium); no browser is ever downloaded"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("Playwright is missing: pip install '.[test]' installs it (playwright>=1.40)")
    return CHROMIUM


@pytest.fixture(scope="module")
def devenv(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devenv]:
    if shutil.which("ssh") is None:
        pytest.fail("the OpenSSH client is required (apt-get install openssh-client)")
    with serving(Devenv(tmp_path_factory.mktemp("webui"))) as world:
        yield world


@pytest.fixture
def browser_page(chromium: Path, tmp_path: Path, devenv: Devenv) -> Iterator[Any]:
    """A page of a fresh headless chromium profile that reaches the devenv Web UI only."""
    from playwright.sync_api import Route, sync_playwright

    ui = f"http://127.0.0.1:{devenv.ui_port}/"
    blocked: list[str] = []

    def loopback_only(route: Route) -> None:
        # The UI fetches a news feed from the internet: tests talk to 127.0.0.1 only.
        if route.request.url.startswith(ui):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(chromium),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 1100},
            timezone_id="UTC",
        )
        try:
            context.set_default_timeout(30_000)
            context.route("**/*", loopback_only)
            yield context.new_page()
        finally:
            context.close()
    if blocked:
        print(f"blocked {len(blocked)} request(s) off 127.0.0.1: {sorted(set(blocked))}")
