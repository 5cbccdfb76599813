"""Drives devenv as a user does: the installed `devenv` command, `ssh`, in a private home."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

DEVENV = str(Path(sys.executable).parent / "devenv")
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], T], timeout: float, what: str, every: float = 0.1) -> T:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    give_up = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Devenv:
    """One user's world: DEVENV_HOME, HOME and a Temporal address of its own."""

    root: Path
    temporal_port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    """More variables for every command (and so for the server `devenv start` launches)."""

    @property
    def home(self) -> Path:
        return self.root / "devenv-home"

    @property
    def user_home(self) -> Path:
        return self.root / "user"

    @property
    def ssh_config(self) -> Path:
        return self.home / "ssh" / "config"

    @property
    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("DEVENV_")}
        env.update(
            DEVENV_HOME=str(self.home),
            HOME=str(self.user_home),
            DEVENV_TEMPORAL_ADDRESS=f"127.0.0.1:{self.temporal_port}",
            DEVENV_UI_PORT=str(self.ui_port),
            # A test home is not the default one: let it edit the (test) user's ~/.ssh/config.
            DEVENV_SSH_INCLUDE="1",
            COLUMNS="200",
        )
        env.update(self.extra_env)
        return env

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [DEVENV, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"devenv {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def ps(self, name: str) -> dict[str, Any]:
        rows = json.loads(self.run("ps", name, "--json").stdout)
        assert len(rows) == 1
        return dict(rows[0])

    def ssh(self, name: str, *command: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", name, *command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            **kwargs,
        )

    def open_session(self, name: str) -> Session:
        """A user's interactive session (a shell on a PTY) that stays open until closed."""
        return Session(
            subprocess.Popen(
                ["ssh", "-F", str(self.ssh_config), "-tt", name],
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )

    def instance_port(self, name: str) -> int:
        """The port of ``name``'s SSH server, from the ssh config devenv generated."""
        entry = (self.home / "ssh" / "hosts" / f"{name}.conf").read_text()
        return int(entry.split("Port ", 1)[1].split()[0])

    def start_server(self) -> subprocess.Popen[bytes]:
        self.home.mkdir(parents=True, exist_ok=True)
        log = (self.root / "server.out").open("ab")
        process = subprocess.Popen([DEVENV, "server"], env=self.env, stdout=log, stderr=log)
        wait_for(lambda: self.run("ps", check=False).returncode == 0, 60, "devenv server")
        return process

    def cleanup(self) -> None:
        """Stop every environment still running, then the server: no process may leak."""
        result = self.run("ps", "--json", check=False, timeout=30)
        if result.returncode == 0:
            for row in json.loads(result.stdout):
                self.run("stop", row["name"], "--wait", check=False, timeout=60)
        self.run("server", "stop", check=False, timeout=30)
        kill_instances(self.home)


@contextlib.contextmanager
def serving(world: Devenv) -> Iterator[Devenv]:
    """``world`` with its server running; every environment stopped and the server ended
    after, even when the test failed."""
    server = world.start_server()
    try:
        yield world
    finally:
        world.cleanup()
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


class Session:
    """An interactive ssh client whose output is collected by a thread."""

    def __init__(self, process: subprocess.Popen[str]):
        self.process = process
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def expect(self, text: str, timeout: float = 15) -> None:
        wait_for(lambda: text in "".join(self.output), timeout, f"{text!r} in the session")

    def close(self) -> int:
        self.send("exit\n")
        return self.process.wait(15)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def expect_terminal_warning(self, name: str, timeout: float) -> str:
        """Wait for the warning devenv writes into open terminals before a fixed end;
        everything the session printed so far."""
        self.expect(f"*** devenv: {name} terminates at", timeout=timeout)
        self.expect(f"to keep it: devenv signal {name} --extend 1h ***")
        return "".join(self.output)


def kill_instances(home: Path) -> None:
    """Last resort: kill any local instance server left under ``home``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"devenv.backends.local.server" in cmdline and str(home).encode() in cmdline:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except ProcessLookupError:
                pass
