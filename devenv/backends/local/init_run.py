"""``init`` on a local instance: each command a child of the worker, as the user, in the
workspace, with the environment a session gets; once per instance (``INIT_DONE_FILE``).

The children carry the instance's ``DEVENV_ENV`` marker, so whatever they leave running
ends with the instance, and a start cancelled mid-init kills them with everything else.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import fcntl
import os
import signal
from collections.abc import Mapping
from pathlib import Path

from devenv.backends import init_commands
from devenv.backends.init_commands import InitOutput
from devenv.backends.local.files import ENV_MARKER, INIT_DONE_FILE, local_username, login_shell
from devenv.backends.local.jobs import session_path

PASSED_WORKER_ENV = ("LANG", "TZ")
PASSED_WORKER_PREFIXES = ("LC_",)
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
INIT_LOCK_FILE = "init.lock"


def init_env(workspace: Path, instance_id: str, configured: Mapping[str, str]) -> dict[str, str]:
    """What a session gets (``sessions.child_env``), without what only SSH sets."""
    user = local_username()
    env = {
        "HOME": os.environ.get("HOME") or str(Path.home()),
        "USER": user,
        "LOGNAME": user,
        "SHELL": login_shell(),
        "PATH": session_path(os.environ.get("PATH") or DEFAULT_PATH, None),
        "PWD": str(workspace),
    }
    for name, value in os.environ.items():
        if name in PASSED_WORKER_ENV or name.startswith(PASSED_WORKER_PREFIXES):
            env[name] = value
    env.update(configured)
    env[ENV_MARKER] = instance_id
    return env


async def run_init(
    name: str,
    commands: list[str],
    workspace: Path,
    instance_dir: Path,
    configured: Mapping[str, str],
    hidden: list[str],
) -> None:
    """Run ``commands`` unless they already ran for this instance; ProvisioningError
    (with the last lines, masked) on the first that fails or on the time budget."""
    if not commands:
        return
    fd = os.open(instance_dir / INIT_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        if (instance_dir / INIT_DONE_FILE).exists():
            return
        env = init_env(workspace, instance_dir.name, configured)
        log_dir = workspace / init_commands.LOG_DIR
        log_dir.mkdir(mode=0o700, exist_ok=True)
        log_fd = os.open(
            log_dir / init_commands.LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600
        )
        # An fd already open: wrapping it does not block.
        with open(log_fd, "w", encoding="utf-8", errors="replace") as log:  # noqa: ASYNC230

            def sink(text: str) -> None:
                log.write(text)
                log.flush()

            output = InitOutput(name, len(commands), hidden, sink)
            try:
                async with asyncio.timeout(init_commands.BUDGET_SECONDS):
                    for index, command in enumerate(commands, 1):
                        output.begin(index, command)
                        code = await _run_one(command, workspace, env, output)
                        if code != 0:
                            raise output.failed(command, f"exited with status {code}")
            except TimeoutError:
                raise output.failed(
                    commands[output.index - 1],
                    f"did not finish within {init_commands.BUDGET_SECONDS:.0f}s (all commands)",
                ) from None
        (instance_dir / INIT_DONE_FILE).touch()
    finally:
        os.close(fd)


async def _run_one(command: str, workspace: Path, env: dict[str, str], output: InitOutput) -> int:
    proc = await asyncio.create_subprocess_exec(
        env["SHELL"],
        "-c",
        command,
        cwd=workspace,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        while chunk := await proc.stdout.read(65536):
            output.feed(decoder.decode(chunk))
        output.feed(decoder.decode(b"", final=True))
        output.finish()
        return await proc.wait()
    finally:
        if proc.returncode is None:  # cancelled or out of time: the whole group goes
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
