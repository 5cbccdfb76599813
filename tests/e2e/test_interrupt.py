"""Ctrl-C on a real terminal ends any devenv command at once: exit 130, no traceback,
nothing changed that the command had not already done."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from tests.e2e.harness import Devenv, wait_for
from tests.e2e.terminal import CTRL_C, Terminal

pytestmark = pytest.mark.e2e

AT_ONCE = 3.0
"""Seconds from Ctrl-C to the exit that still count as at once (a loaded CI machine)."""


def idle_for(devenv: Devenv, name: str, seconds: float) -> bool:
    row = devenv.ps(name)
    since = row["idle_since"]
    return (
        since is not None
        and (datetime.now(UTC) - datetime.fromisoformat(since)).total_seconds() > seconds
    )


def test_ctrl_c_at_the_confirmation_prompt_ends_signal_at_once_and_changes_nothing(
    devenv: Devenv, example: Path
) -> None:
    devenv.run("start", str(example), "--name", "e2e-ctrlc", "--inactivity", "1h")
    try:
        wait_for(lambda: idle_for(devenv, "e2e-ctrlc", 2), 15, "2s of idleness")
        with Terminal(["signal", "e2e-ctrlc", "--inactivity", "1s"], devenv.env) as term:
            term.expect("Go on? [y/N]")
            pressed = term.press(CTRL_C)
            code = term.wait(AT_ONCE)
            took = time.monotonic() - pressed
            shown = term.output
        assert code == 130, shown
        assert took < AT_ONCE
        assert "Traceback" not in shown and "Aborted" not in shown, shown
        assert "nothing changed" in shown
        row = devenv.ps("e2e-ctrlc")
        assert (row["status"], row["inactivity_duration"]) == ("running", 3600)
    finally:
        devenv.run("stop", "e2e-ctrlc", "--wait", check=False)


def test_ctrl_d_at_the_confirmation_prompt_is_a_no(devenv: Devenv, example: Path) -> None:
    devenv.run("start", str(example), "--name", "e2e-ctrld", "--inactivity", "1h")
    try:
        wait_for(lambda: idle_for(devenv, "e2e-ctrld", 2), 15, "2s of idleness")
        with Terminal(["signal", "e2e-ctrld", "--inactivity", "1s"], devenv.env) as term:
            term.expect("Go on? [y/N]")
            term.press(b"\x04")
            code = term.wait(AT_ONCE)
            shown = term.output
        assert code == 1, shown
        assert "Traceback" not in shown and "internal error" not in shown, shown
        assert shown.rstrip().endswith("Nothing changed."), shown
        assert devenv.ps("e2e-ctrld")["inactivity_duration"] == 3600
    finally:
        devenv.run("stop", "e2e-ctrld", "--wait", check=False)


def started(world: Devenv, workflow_id: str) -> bool:
    """Whether the Temporal server has the workflow (started, whatever its worker does)."""

    async def describe() -> bool:
        client = await Client.connect(f"127.0.0.1:{world.temporal_port}")
        try:
            await client.get_workflow_handle(workflow_id).describe()
        except RPCError:
            return False
        return True

    return asyncio.run(describe())


def test_ctrl_c_while_start_waits_for_the_instance_ends_it_and_says_what_stands(
    tmp_path: Path, example: Path
) -> None:
    world = Devenv(tmp_path)
    server = world.start_server()
    try:
        # Its worker frozen, the workflow starts but the instance can never get ready: the
        # Ctrl-C lands while `devenv start` waits for it, however slow this machine is.
        server.send_signal(signal.SIGSTOP)
        with Terminal(["start", str(example), "--name", "e2e-ctrlc-start"], world.env) as term:
            term.expect("Started e2e-ctrlc-start; waiting for its instance")
            assert started(world, "devenv-e2e-ctrlc-start")
            pressed = term.press(CTRL_C)
            code = term.wait(AT_ONCE)
            took = time.monotonic() - pressed
            shown = term.output
        server.send_signal(signal.SIGCONT)
        assert code == 130, shown
        assert took < AT_ONCE
        assert "Traceback" not in shown, shown
        assert "\x1b[?25h" in shown, "the spinner's hidden cursor is shown again"
        assert (
            "interrupted: e2e-ctrlc-start was started and goes on; "
            "`devenv stop e2e-ctrlc-start` ends it" in shown
        ), shown
        ready = world.ps("e2e-ctrlc-start")
        assert ready["status"] in ("provisioning", "running"), "it goes on, as it said"
    finally:
        server.send_signal(signal.SIGCONT)
        world.cleanup()
        server.terminate()
        server.wait(30)


class SilentServer:
    """A port that accepts TCP and never answers: a command waits on it (and would give
    up after 5 s); ``accepted`` counts the connections it took."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.mark.parametrize(
    "args",
    [["ps"], ["ps", "some-env"], ["logs", "some-env"], ["signal", "some-env", "--extend", "1m"]],
    ids=lambda args: " ".join(args),
)
def test_ctrl_c_while_a_command_waits_for_the_server_ends_it_at_once(
    tmp_path: Path, silent_server: SilentServer, args: list[str]
) -> None:
    world = Devenv(tmp_path, temporal_port=silent_server.port)
    with Terminal(args, world.env) as term:
        wait_for(lambda: silent_server.held, 10, "the command to connect")
        assert term.process.poll() is None, term.output
        pressed = term.press(CTRL_C)
        code = term.wait(AT_ONCE)
        took = time.monotonic() - pressed
        shown = term.output
    assert code == 130, shown
    assert took < 1.5
    assert "Traceback" not in shown and "error" not in shown, shown
