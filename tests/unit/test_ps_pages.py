"""`devenv ps` on a fleet: printed a page at a time, laid out and serialised as the whole
listing would be."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from rich.console import Console
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from devenv.cli.views import JsonRows, PsLines, ps_table, statuses_json
from devenv.client.listing import Visibility, list_statuses, sort_statuses, status_pages
from devenv.models.state import EnvSpec, EnvState, Status, Tuning
from devenv.models.status import EnvironmentStatus
from devenv.workflows.environment import DevEnvironmentWorkflow
from tests.workflow.fakes import TEST_KEY, FakeBackend, make_state, start, wait_for

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def row(name: str, *, idle_minutes: int | None = 5, reason: str | None = None) -> EnvironmentStatus:
    state = EnvState(
        spec=EnvSpec(name=name, inactivity_duration=7200, user_public_key=TEST_KEY),
        status=Status.RUNNING if reason is None else Status.TERMINATED,
        created_at=NOW - timedelta(hours=1),
        idle_since=None if idle_minutes is None else NOW - timedelta(minutes=idle_minutes),
        termination_reason=reason,
    )
    return EnvironmentStatus.from_state(state, NOW)


def printed(*renderables: object) -> list[str]:
    console = Console(width=300, record=True, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return [line.rstrip() for line in console.export_text().splitlines()]


def test_pages_line_up_as_the_whole_table_would() -> None:
    rows = [row(f"env-{i:02d}") for i in range(6)] + [row("a-much-longer-name-than-the-rest")]
    whole = printed(ps_table(rows))
    lines = PsLines()
    paged = printed(lines.page(rows[:3]), lines.page(rows[3:]))
    assert paged[0].split() == whole[0].split(), "one header, the same columns"
    assert paged.count(paged[0]) == 1
    # Every row shows the same cells; the first page's columns line up with the header.
    assert [line.split() for line in paged] == [line.split() for line in whole]
    assert paged[1].index("running") == paged[0].index("STATUS")
    assert paged[1].index("idle since") == paged[0].index("ACTIVITY")
    # A later, longer name widens NAME from there on; nothing is cut.
    assert "a-much-longer-name-than-the-rest" in paged[-1]


def test_paged_json_is_the_listing_json() -> None:
    rows = [row("a"), row("b", idle_minutes=None), row("c", reason="stopped_by_user")]
    written: list[str] = []
    writer = JsonRows(written.append)
    writer.add(rows[:2])
    writer.add([])
    writer.add(rows[2:])
    writer.close()
    assert "".join(written) == statuses_json(rows) + "\n"
    assert [item["name"] for item in json.loads("".join(written))] == ["a", "b", "c"]

    empty: list[str] = []
    nothing = JsonRows(empty.append)
    nothing.close()
    assert "".join(empty) == statuses_json([]) + "\n"


async def test_the_listing_comes_in_pages_that_add_up_to_the_whole(
    dev_server_env: WorkflowEnvironment,
) -> None:
    """What `ps` prints a page at a time is every environment once, each page sorted."""
    client: Client = dev_server_env.client
    fake = FakeBackend(task_queue=f"tq-{uuid.uuid4().hex[:10]}")
    async with Worker(
        client, task_queue=fake.task_queue, workflows=[DevEnvironmentWorkflow],
        activities=fake.activities(),
    ):  # fmt: skip
        handles = [
            await start(client, fake, make_state(tuning=Tuning(monitor=False))) for _ in range(5)
        ]
        for handle in handles:
            await wait_for(handle, lambda s: s.status == Status.RUNNING)
        whole, _ = await list_statuses(Visibility.of(client), include_ended=False)
        pages = [page async for page in status_pages(Visibility.of(client), False, 2, page_size=3)]
        for handle in handles:
            await handle.execute_update(DevEnvironmentWorkflow.request_stop, None)
            await handle.result()
    assert len(whole) >= 5 and len(pages[0]) == 2
    assert all(len(page) <= 3 for page in pages[1:])
    assert [page.last for page in pages] == [False] * (len(pages) - 1) + [True]
    names = [row.name for page in pages for row in page]
    assert sorted(names) == sorted(row.name for row in whole), "each environment once"
    assert all(list(page) == sort_statuses(list(page)) for page in pages)
    mine = {handle.id.removeprefix("devenv-") for handle in handles}
    assert mine <= set(names)
