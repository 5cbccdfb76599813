"""The `devenv` command line: presentation over the SDK, one module a command.

Each command module parses its arguments, calls ``devenv.client`` and prints; no
Temporal call lives here. Errors the SDK raises on purpose are one red line with
exit code 2; usage errors too.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer

from devenv import __version__
from devenv.cli import interrupt
from devenv.cli.gc import gc
from devenv.cli.hosts import hosts_app
from devenv.cli.jobs import jobs
from devenv.cli.logs import logs
from devenv.cli.output import err, out
from devenv.cli.policy import policy_app
from devenv.cli.ps import ps
from devenv.cli.report import report
from devenv.cli.run import run_job
from devenv.cli.server import server_app
from devenv.cli.share import share, unshare
from devenv.cli.signal import signal
from devenv.cli.ssh import ssh
from devenv.cli.start import start
from devenv.cli.stop import stop
from devenv.cli.suspend import resume, suspend
from devenv.cli.token import token
from devenv.cli.users import users_app

app = typer.Typer(
    name="devenv",
    help="Durable, self-cleaning development environments: idle ones terminate themselves.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"devenv {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Durable, self-cleaning development environments: idle ones terminate themselves."""


app.command()(start)
app.command()(ps)
app.command()(signal)
app.command()(stop)
app.command()(suspend)
app.command()(resume)
app.command()(share)
app.command()(unshare)
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(ssh)
app.command()(logs)
app.command(
    name="run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)(run_job)
app.command()(jobs)
app.command()(gc)
app.command()(report)
app.add_typer(server_app, name="server")
app.command()(token)
app.add_typer(users_app, name="users")
app.add_typer(hosts_app, name="hosts")
app.add_typer(policy_app, name="policy")


def run(args: list[str] | None = None) -> int:
    """Run one command and return its exit code; usage errors too are one line, code 2.

    Typer would print usage, a hint and a boxed message; scripts and people get
    ``error: <what>`` like every other user error instead.
    """
    try:
        result = app(args=args, prog_name="devenv", standalone_mode=False)
    except SystemExit as done:
        if isinstance(done.code, str):
            err.print(done.code)
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except Exception as problem:
        usage = _usage_error(problem)
        if usage is None:
            raise
        line, code = usage
        if line:
            err.print(f"[red]error:[/] {line}")
        return code
    return result if isinstance(result, int) else 0


def _usage_error(problem: Exception) -> tuple[str, int] | None:
    """(one line, exit code) for a command-line parsing error, None for anything else.

    Recognised by shape rather than class: the click exceptions typer raises moved
    from click into typer itself between versions.
    """
    format_message = getattr(problem, "format_message", None)
    exit_code = getattr(problem, "exit_code", None)
    if not callable(format_message) or not isinstance(exit_code, int):
        return None
    if type(problem).__name__ == "NoArgsIsHelpError":
        return "", exit_code  # the help has been printed already
    message = " ".join(str(format_message()).split())
    ctx = getattr(problem, "ctx", None)
    command = getattr(ctx, "command_path", None)
    hint = f" (see `{command} --help`)" if isinstance(command, str) and command else ""
    return f"{message}{hint}", exit_code


def main() -> None:
    """Entry point. Exits with ``os._exit`` once the command is done: the Temporal
    client's Rust threads can crash CPython's finalisation of a short-lived process
    (temporalio/sdk-python#300), turning a finished command into a segfault. Ctrl-C
    ends it at once with code 130 (``devenv.cli.interrupt``)."""
    code: int = 1
    interrupt.install()
    try:
        code = run()
    except BaseException:
        # A bug, not a user error: show it (os._exit below would swallow it) and fail.
        traceback.print_exc()
        err.print("[red]error:[/] internal error in devenv (traceback above)")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
