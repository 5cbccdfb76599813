"""Jobs: commands that keep an environment in use while they run.

``env.run(["make", "build"])`` starts a command in the environment as a job (through
OpenSSH and the environment's ``devenv-keepalive``, exactly as ``devenv ssh NAME --
CMD`` reaches it); while any job runs the environment is in use, and its idle clock
starts when the last job and the last connection have ended. Each job keeps a record
and a log in the workspace (``.devenv/jobs/ID.json`` and ``ID.log``), which
``env.jobs()`` and ``env.job_log(ID)`` read back. A job never outlives its
environment: ``max_duration`` and terminate end it with everything else.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shlex
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal, Protocol

from pydantic import BaseModel, Field, ValidationError

from devenv.errors import InvalidValueError, NotAnsweringError, UserError
from devenv.models.ssh_entry import SshEntry

KEEPALIVE = "devenv-keepalive"
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SSH_TIMEOUT = 60.0
"""How long a listing, a log or a detached start may take over SSH."""


class Reachable(Protocol):
    """What jobs need of an environment (an ``AsyncEnvironment``): its name, and its
    ssh config entry refreshed."""

    name: str

    async def ssh_config(self) -> SshEntry: ...


class JobError(UserError):
    """A job could not be started or read (the environment said why)."""


class Job(BaseModel):
    """One job of an environment, as ``devenv jobs --json`` shows it."""

    id: str = Field(description="The job's id (`devenv logs NAME --job ID`).")
    command: list[str] = Field(description="What it runs (argv).")
    state: Literal["running", "exited", "lost"] = Field(
        description="running; exited (with exit_code); lost: killed without a word (kill -9)."
    )
    exit_code: int | None = Field(
        default=None, description="Once exited: its status (128+N when signal N ended it)."
    )
    started: datetime | None = Field(default=None, description="When it started (UTC).")
    ended: datetime | None = Field(default=None, description="When it ended (UTC).")
    log: str | None = Field(default=None, description="Its log file in the environment.")
    pid: int | None = Field(default=None, description="Its devenv-keepalive process.")
    child_pid: int | None = Field(default=None, description="Its command's process.")
    cwd: str | None = Field(default=None, description="Where it runs, in the environment.")


def new_job_id() -> str:
    return datetime.now(UTC).strftime("%m%d") + "-" + secrets.token_hex(3)


def check_job_id(job_id: str) -> str:
    if not JOB_ID.fullmatch(job_id):
        raise InvalidValueError(
            f"job id: invalid value {job_id!r}; accepted: letters, digits, '.', '_', '-' "
            f"(at most 64, starting with a letter or digit), as `devenv jobs` lists them"
        )
    return job_id


def command_argv(command: Sequence[str]) -> list[str]:
    """The job's argv: the words as given; one word holding spaces is a shell command
    line (``devenv run env -- 'make && make test'``), run with ``sh -c``."""
    words = list(command)
    if not words or not words[0]:
        raise InvalidValueError("no command to run: give it after --, e.g. `-- make build`")
    if len(words) == 1 and any(char.isspace() for char in words[0]):
        return ["sh", "-c", words[0]]
    return words


def keepalive_command(job_id: str, command: Sequence[str], *, detach: bool) -> str:
    """The remote command line starting the job (logged to the workspace)."""
    words = [KEEPALIVE, "--id", check_job_id(job_id), "--log"]
    if detach:
        words.append("--detach")
    return shlex.join([*words, "--", *command_argv(command)])


def ssh_binary() -> str:
    binary = shutil.which("ssh")
    if binary is None:
        raise UserError("OpenSSH client `ssh` not found on PATH; install openssh-client")
    return binary


async def ssh_argv(env: Reachable, remote: str, *, tty: bool = False) -> list[str]:
    """``ssh -F CONFIG [-t] NAME REMOTE``: the environment's entry refreshed first."""
    connection = await env.ssh_config()
    return [
        ssh_binary(),
        "-F",
        str(connection.ssh_config),
        *(["-t"] if tty else []),
        env.name,
        remote,
    ]


async def _capture(env: Reachable, remote: str) -> tuple[int, bytes, str]:
    argv = await ssh_argv(env, remote)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), SSH_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise NotAnsweringError(
            f"environment {env.name!r} did not answer over SSH within {SSH_TIMEOUT:.0f}s"
        ) from None
    assert proc.returncode is not None
    problem = " ".join(err.decode(errors="replace").split())
    if proc.returncode == 255:
        raise NotAnsweringError(f"environment {env.name!r}: ssh failed: {problem[:300]}")
    if proc.returncode == 127 and KEEPALIVE in problem:
        raise JobError(
            f"environment {env.name!r} has no {KEEPALIVE} (started before jobs existed?): "
            f"{problem[:200]}"
        )
    return proc.returncode, out, problem


async def list_jobs(env: Reachable) -> list[Job]:
    """The environment's jobs, oldest first."""
    code, out, problem = await _capture(env, f"{KEEPALIVE} --jobs")
    lines = [line for line in out.decode(errors="replace").splitlines() if line.startswith("[")]
    if code != 0 or not lines:
        raise JobError(f"environment {env.name!r}: listing jobs failed: {problem[:300]}")
    try:
        records = json.loads(lines[-1])
        return [Job.model_validate(record) for record in records]
    except (ValueError, ValidationError) as error:
        raise JobError(f"environment {env.name!r}: unreadable job records: {error}") from None


async def start_job(env: Reachable, command: Sequence[str], job_id: str | None) -> str:
    """Start ``command`` detached; its id once it runs."""
    job_id = check_job_id(job_id) if job_id is not None else new_job_id()
    code, out, problem = await _capture(env, keepalive_command(job_id, command, detach=True))
    if code != 0 or job_id not in out.decode(errors="replace").split():
        raise JobError(f"environment {env.name!r}: the job did not start: {problem[:300]}")
    return job_id


async def job_log(env: Reachable, job_id: str) -> bytes:
    """What the job wrote (stdout and stderr) so far."""
    check_job_id(job_id)
    code, out, problem = await _capture(env, shlex.join([KEEPALIVE, "--job-log", job_id]))
    if code != 0:
        message = problem.removeprefix(f"{KEEPALIVE}: ")
        raise JobError(f"environment {env.name!r}: {message[:300]}")
    return out
