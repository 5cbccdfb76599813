"""The Temporal Web UI as a user reads it: one environment's page in headless chromium
(Debian's, driven by Playwright) shows its summary, current details and the timeline's
summaries, and the workflow list filters environments by devenv's search attributes."""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from tests.e2e.harness import Devenv, wait_for

pytestmark = pytest.mark.e2e

NAME = "webui-env"
WORKFLOW_ID = f"devenv-{NAME}"
CONFIG = f"""\
type: dev-environment
name: {NAME}
backend: local
inactivity_duration: 30m
max_duration: 1w
warn_before: off  # the one timer is the idle deadline itself, not the warning before it
"""


def web_ui_link(start_output: str) -> str:
    """The page `devenv start` prints as ``Web UI:``."""
    found = re.search(r"Web UI:\s+(\S+)", start_output)
    assert found, f"`devenv start` printed no Web UI link:\n{start_output}"
    return found.group(1)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clock_pattern(moment: datetime) -> str:
    """The workflow's ``clock()``: the time, with the date when it is not today."""
    return r"(\d{4}-\d\d-\d\d )?" + re.escape(moment.astimezone(UTC).strftime("%H:%M:%SZ"))


def listed(devenv: Devenv, query: str) -> list[str]:
    """Workflow ids the server's visibility store answers for ``query``.

    On a thread of its own: Playwright's sync API keeps an event loop running on this one.
    """

    async def ids() -> list[str]:
        client = await Client.connect(f"127.0.0.1:{devenv.temporal_port}")
        return [execution.id async for execution in client.list_workflows(query)]

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, ids()).result(timeout=30)


@contextmanager
def screenshot_on_failure(page: Any, path: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot of the failure: {path}")
        raise


def test_an_environment_page_shows_its_details_and_timer_summaries(
    devenv: Devenv, browser_page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    config = tmp_path / "dev.yml"
    config.write_text(CONFIG)
    url = web_ui_link(devenv.run("start", str(config)).stdout)
    assert url == f"http://127.0.0.1:{devenv.ui_port}/namespaces/default/workflows/{WORKFLOW_ID}"
    row = devenv.ps(NAME)
    assert (row["status"], row["activity"]) == ("running", "idle")
    deadline = datetime.fromisoformat(row["deadline"])
    at = clock_pattern(deadline)

    page = browser_page
    with screenshot_on_failure(page, tmp_path / "web-ui-failure.png"):
        page.goto(url)
        # The timeline: the timer and the activities say what they are, not `1 (30m)`.
        expect(
            page.get_by_text(re.compile(rf"idle deadline {at} \(30m after the last user left\)"))
        ).to_be_visible()
        expect(page.get_by_text("provision on local").first).to_be_visible()
        expect(page.get_by_text("monitor: who is present").first).to_be_visible()
        timeline = tmp_path / "web-ui-timeline.png"
        page.screenshot(path=str(timeline), full_page=True)

        # User Metadata: the summary and the current details (markdown, in iframes).
        page.get_by_role("tab", name="User Metadata").click()
        summary = page.frame_locator("#user-metadata-summary")
        expect(summary.get_by_text(f"devenv {NAME} (local, inactivity 30m)")).to_be_visible()
        details = page.frame_locator("#user-metadata-current-details")
        expect(details.get_by_text("running", exact=True)).to_be_visible()
        expect(
            details.get_by_text(re.compile(r"idle since \S+Z \(0 connections, 0 jobs\)"))
        ).to_be_visible()
        expect(
            details.get_by_text(
                re.compile(
                    rf"deadline {at}: inactivity_duration_exceeded, 30m after the last user left"
                )
            )
        ).to_be_visible()
        expect(details.get_by_text("inactivity 30m, max duration 1w")).to_be_visible()
        screenshot = tmp_path / "web-ui-details.png"
        page.screenshot(path=str(screenshot), full_page=True)
    print(f"Web UI screenshots: {screenshot} {timeline}")

    # The list, filtered as the README documents: running and terminating in the next hour.
    now = datetime.now(UTC)
    in_an_hour = rfc3339(now + timedelta(hours=1))
    next_hour = f'DevEnvStatus = "running" AND DevEnvDeadline < "{in_an_hour}"'
    wait_for(lambda: listed(devenv, next_hour) == [WORKFLOW_ID], 30, "the visibility store")
    list_url = (
        f"http://127.0.0.1:{devenv.ui_port}/namespaces/default/workflows?query="
        + urllib.parse.quote(next_hour)
    )
    with screenshot_on_failure(page, tmp_path / "web-ui-list-failure.png"):
        page.goto(list_url)
        expect(page.get_by_role("link", name=WORKFLOW_ID, exact=True)).to_be_visible()
        page.screenshot(path=str(tmp_path / "web-ui-list.png"), full_page=True)

    # The other attributes filter too; a deadline already past lists nothing.
    assert listed(devenv, f'DevEnvName = "{NAME}" AND DevEnvBackend = "local"') == [WORKFLOW_ID]
    assert listed(devenv, f'DevEnvName = "{NAME}" AND DevEnvDeadline < "{rfc3339(now)}"') == []
    assert listed(devenv, f'DevEnvName = "{NAME}" AND DevEnvStatus = "terminated"') == []
