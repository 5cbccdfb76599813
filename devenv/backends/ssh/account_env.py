"""``env`` and ``init`` on an ssh (or aws) host: the account's ``~/.devenv/env.sh`` and
its init commands, run over the admin connection as the account.

The values go on stdin (never in a command line, so never in ``ps`` on the host), into a
0600 file of the account that its ``~/.profile`` and ``~/.bashrc`` source first: login
shells, commands run over ssh and jobs get them. Terminate removes the file.

Init runs once per instance: ``~/.devenv/init-done`` holds the token whose commands ran,
so a retried provision skips them and a new environment reusing the home runs its own.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Mapping

from devenv.backends import init_commands
from devenv.backends.base import ProvisioningError
from devenv.backends.init_commands import InitOutput
from devenv.backends.ssh.admin import AdminConnection, AdminError, HostCommandError
from devenv.backends.ssh.host_scripts import host_script

WRITE_ENV = host_script("write_env.sh")
RUN_INIT = host_script("run_init.sh")


def env_script(values: Mapping[str, str]) -> str:
    """``export NAME='value'`` lines (names are checked POSIX names; values quoted)."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())


async def write_account_env(
    admin: AdminConnection, account: str, values: Mapping[str, str]
) -> None:
    """The account's env.sh (empty when there are none: a reused home forgets old ones)."""
    result = await admin.run(WRITE_ENV, account, stdin=env_script(values))
    if result.status != 0 or result.fields().get("result") != "ok":
        raise HostCommandError(
            f"{admin.endpoint}: writing the environment of {account} failed: {result.describe()}"
        )


async def run_account_init(
    admin: AdminConnection,
    account: str,
    token: str,
    name: str,
    commands: list[str],
    hidden: list[str],
) -> None:
    """Run ``commands`` as the account unless ``token``'s already ran; ProvisioningError
    with the last lines (masked) on the first that fails or on the time budget."""
    if not commands:
        return
    done = await admin.run(RUN_INIT, account, "done", token)
    if done.fields().get("result") == "done":
        return
    if done.status != 0:
        raise HostCommandError(f"{admin.endpoint}: init of {account}: {done.describe()}")
    log: list[str] = []
    output = InitOutput(name, len(commands), hidden, log.append)
    budget = init_commands.BUDGET_SECONDS
    deadline = time.monotonic() + budget
    try:
        for index, command in enumerate(commands, 1):
            output.begin(index, command)
            left = max(1.0, deadline - time.monotonic())
            try:
                ran = await admin.run(RUN_INIT, account, "run", stdin=command, timeout=left)
            except HostCommandError:
                raise output.failed(
                    command, f"did not finish within {budget:.0f}s (all commands)"
                ) from None
            output.feed(ran.stdout)
            output.finish()
            if ran.status != 0:
                raise output.failed(command, f"exited with status {ran.status}")
    finally:
        with contextlib.suppress(AdminError):  # the log is for people; the outcome stands
            await admin.run(RUN_INIT, account, "log", "new", stdin="".join(log))
    marked = await admin.run(RUN_INIT, account, "mark", token)
    if marked.status != 0:
        raise ProvisioningError(f"{admin.endpoint}: init of {account}: {marked.describe()}")
