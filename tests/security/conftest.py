"""A real devenv world for the security tests: `devenv start` launches the server itself
(so its logs land under DEVENV_HOME/logs as for users), with secrets in its environment
that must never reach an environment, a log or the workflow history.

Everything started here is stopped at teardown, even when a test fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import DEVENV, Devenv, kill_instances

pytestmark = pytest.mark.e2e

SECRETS = {
    # An API key only makes sense with TLS; DEVENV_TEMPORAL_TLS=false lets it travel to the
    # local dev server (which ignores it) so that the worker really holds it.
    "DEVENV_TEMPORAL_API_KEY": f"devenv-api-key-{uuid.uuid4().hex}",
    "DEVENV_TEMPORAL_TLS": "false",
    "TEMPORAL_API_KEY": f"temporal-api-key-{uuid.uuid4().hex}",
    "DEVENV_SOME_TOKEN": f"devenv-token-{uuid.uuid4().hex}",
}
SECRET_VALUES = [value for value in SECRETS.values() if value != "false"]
MAIN = "sec-main"


@dataclass
class CommandResult:
    """One `devenv` run as a test sees it, with how long it took."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


async def run_devenv(env: dict[str, str], *args: str, timeout: float = 60) -> CommandResult:
    """`devenv ARGS` as a subprocess without blocking the loop (so many run at once)."""
    began = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        DEVENV,
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"devenv {' '.join(args)} still running after {timeout}s") from None
    assert proc.returncode is not None
    return CommandResult(
        args, proc.returncode, out.decode(), err.decode(), time.monotonic() - began
    )


def error_line(result: CommandResult) -> str:
    """The single `error: ...` line a failed command must print, and nothing else."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result
    assert len(lines) == 1 and lines[0].startswith("error: "), result
    assert result.stdout == "", result
    return lines[0]


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devenv]:
    """A user's world with secrets in the environment of the CLI and of the server."""
    if shutil.which("ssh") is None:
        pytest.fail("the OpenSSH client is required (apt-get install openssh-client)")
    devenv = Devenv(tmp_path_factory.mktemp("security"), extra_env=dict(SECRETS))
    try:
        yield devenv
    finally:
        devenv.cleanup()
        kill_instances(devenv.home)


@pytest.fixture(scope="session")
def main_env(world: Devenv) -> str:
    """One running environment, started the way users start one (server launched by it)."""
    example = Path(__file__).parents[2] / "examples" / "dev.yml"
    started = world.run("start", str(example), "--name", MAIN, "--inactivity", "1h")
    assert "started one in the background" in started.stderr
    return MAIN


def instance_dirs(world: Devenv, name: str) -> list[Path]:
    return sorted((world.home / "envs" / name / "instances").iterdir())


def mode(path: Path) -> int:
    return os.lstat(path).st_mode & 0o777
