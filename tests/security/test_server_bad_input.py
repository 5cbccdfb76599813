"""Bad input that needs a server to be seen: a workflow of another type under a devenv
id, no server at all, and a port that accepts connections but never answers.

Each command must end with one line saying what to do, exit code 2, within a bounded
time, and must not touch the foreign workflow or start anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from devenv.models.state import WORKFLOW_TYPE, EnvSpec, EnvState
from tests.e2e.harness import Devenv, free_port
from tests.security.conftest import CommandResult, error_line, run_devenv

pytestmark = pytest.mark.e2e

EXAMPLE = str(Path(__file__).parents[2] / "examples" / "dev.yml")
CONNECT_TIMEOUT = 5.0
"""devenv.worker.temporal_connection.connect's default: every command must give up after it."""
BOUND = CONNECT_TIMEOUT + 12.0
"""Generous headroom for Python start-up with several commands at once on 2 cores."""
QUERY_TIMEOUT = 10.0
"""devenv.client.lookup.QUERY_TIMEOUT: reads of an environment give up after it."""

COMMANDS_ON_AN_ENVIRONMENT = [
    ("ps", "{ref}"),
    ("ps", "{ref}", "--json"),
    ("signal", "{ref}", "--inactivity", "1h"),
    ("signal", "{ref}", "--max-duration", "off"),
    ("stop", "{ref}"),
    ("stop", "{ref}", "--wait"),
    ("logs", "{ref}"),
    ("ssh", "{ref}", "--", "true"),
]


def commands(ref: str, every_variant: bool = True) -> list[tuple[str, ...]]:
    """Each command on ``ref``; with ``every_variant=False`` one of each (fewer processes)."""
    chosen = COMMANDS_ON_AN_ENVIRONMENT
    if not every_variant:
        chosen = [cmd for i, cmd in enumerate(chosen) if i in (0, 2, 5, 6, 7)]
    return [tuple(part.format(ref=ref) for part in cmd) for cmd in chosen]


async def run_all(world: Devenv, argvs: list[tuple[str, ...]]) -> list[CommandResult]:
    return list(await asyncio.gather(*(run_devenv(world.env, *argv) for argv in argvs)))


@pytest.fixture
async def foreign(dev_server_env: WorkflowEnvironment) -> AsyncIterator[WorkflowEnvironment]:
    """A running workflow of another type, with the id an environment `foreign` would have.

    No worker polls its queue, so it simply stays running; it is terminated afterwards.
    """
    client = dev_server_env.client
    handle = await client.start_workflow(
        "SomebodyElsesWorkflow", "payload", id="devenv-foreign", task_queue="not-devenv"
    )
    try:
        yield dev_server_env
    finally:
        await handle.terminate("test over")


async def test_a_workflow_of_another_type_is_refused_and_left_alone(
    foreign: WorkflowEnvironment, tmp_path: Path
) -> None:
    port = int(foreign.client.service_client.config.target_host.rsplit(":", 1)[1])
    world = Devenv(tmp_path, temporal_port=port)
    argvs = [*commands("devenv-foreign"), ("ps", "foreign"), ("stop", "foreign", "--wait")]
    for result in await run_all(world, argvs):
        line = error_line(result)
        assert "is a workflow of type 'SomebodyElsesWorkflow', not a devenv environment" in line

    listed = await run_devenv(world.env, "ps", "--all", "--json")
    assert listed.returncode == 0 and "foreign" not in listed.stdout

    handle = foreign.client.get_workflow_handle("devenv-foreign")
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    events = [event.event_type async for event in handle.fetch_history_events()]
    touched = {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
    }
    assert not touched & set(events), events
    assert not world.home.exists(), "refusing must not create anything"


async def test_an_environment_whose_worker_is_gone_gets_bounded_answers(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """A DevEnvironment workflow nobody runs (the worker died): reads give up after the
    query timeout, and changes are refused at once instead of waiting forever (an Update
    no worker picks up never returns) or applying much later."""
    client = dev_server_env.client
    spec = EnvSpec(name="orphan", user_public_key="ssh-ed25519 AAAA")
    handle = await client.start_workflow(
        WORKFLOW_TYPE, EnvState(spec=spec), id="devenv-orphan", task_queue="nobody-polls"
    )
    try:
        port = int(client.service_client.config.target_host.rsplit(":", 1)[1])
        world = Devenv(tmp_path, temporal_port=port)
        argvs = [
            ("ps",),
            *commands("orphan", every_variant=False),
            ("signal", "orphan", "--max-duration", "1h"),
        ]
        results = await run_all(world, argvs)
        listed, *refused = results
        assert listed.returncode == 0 and "devenv-orphan" in listed.stderr
        assert "is a devenv worker running?" in listed.stderr
        for result in refused:
            line = error_line(result)
            assert result.seconds < QUERY_TIMEOUT + BOUND, result
            if result.args[0] in ("signal", "stop"):
                assert "no devenv worker is running" in line and "nothing was changed" in line
                assert result.seconds < BOUND, result
            else:
                assert "did not answer within 10s; is a devenv worker running?" in line
        events = [event.event_type async for event in handle.fetch_history_events()]
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED not in events
        assert not world.home.exists()
    finally:
        await handle.terminate("test over")


async def test_a_namespace_that_does_not_exist_is_named_as_such(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Not a traceback, and not 'no environment named ...' either."""
    port = int(dev_server_env.client.service_client.config.target_host.rsplit(":", 1)[1])
    world = Devenv(
        tmp_path, temporal_port=port, extra_env={"DEVENV_TEMPORAL_NAMESPACE": "no-such-ns"}
    )
    argvs = [("ps",), ("ps", "--all"), *commands("my-env", every_variant=False)]
    for result in await run_all(world, argvs):
        line = error_line(result)
        assert "namespace 'no-such-ns' does not exist" in line
        assert "check DEVENV_TEMPORAL_NAMESPACE" in line
    assert not world.home.exists()


async def test_no_server_says_what_to_run(tmp_path: Path) -> None:
    world = Devenv(tmp_path, temporal_port=free_port())  # nothing listens there
    argvs = [("ps",), *commands("my-env", every_variant=False)]
    for result in await run_all(world, argvs):
        line = error_line(result)
        assert f"no Temporal server answers at 127.0.0.1:{world.temporal_port}" in line
        assert "(connection refused)" in line
        assert "start it with `devenv server` (or `devenv start FILE`)" in line
    assert not world.home.exists()


async def test_a_silent_port_makes_every_command_give_up_in_bounded_time(
    tmp_path: Path,
) -> None:
    """A listener that accepts TCP connections and never says a word (a hung server,
    another program on the port): no command may hang, and `devenv start` must not
    launch a server that could never bind the port."""
    held: list[asyncio.StreamWriter] = []

    async def accept_and_ignore(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(accept_and_ignore, "127.0.0.1", 0)
    try:
        port = silent.sockets[0].getsockname()[1]
        world = Devenv(tmp_path, temporal_port=port)
        argvs = [
            ("ps",),
            *commands("my-env", every_variant=False),
            ("start", EXAMPLE, "--name", "never"),
            ("start", EXAMPLE, "--name", "never-detached", "--detach"),
        ]
        for result in await run_all(world, argvs):
            line = error_line(result)
            assert result.seconds < BOUND, result
            assert f"something at 127.0.0.1:{port} accepts connections" in line
            assert f"no Temporal answer within {CONNECT_TIMEOUT:g}s" in line
            assert "check DEVENV_TEMPORAL_ADDRESS" in line
        assert held, "the commands must really have reached the silent port"
        assert not world.home.exists(), "no key, no log, no background server"
    finally:
        silent.close()
        for writer in held:
            writer.close()
        await silent.wait_closed()
