"""The `devenv` command line: one command a function, `--json` for scripts."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import traceback
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from rich.console import Console
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from devenv.cli import sshconfig
from devenv.cli.config_file import load_config, shorten
from devenv.cli.environments import (
    UPDATE_TIMEOUT,
    Handle,
    candidate_ids,
    fetch_state,
    list_states,
    require_worker,
    resolve,
)
from devenv.cli.identity import user_key
from devenv.cli.names import generate_name
from devenv.cli.serverctl import ensure_server, stop_background
from devenv.cli.views import EnvRow, clock, describe_deadline, ps_table, rows_json
from devenv.errors import UserError
from devenv.settings import SHARED_TASK_QUEUE, Settings, host_task_queue
from devenv.worker.client import ServerNotAnsweringError, ServerUnreachableError, connect
from devenv.workflows.config import validate_name
from devenv.workflows.durations import DurationError, format_duration, parse_duration
from devenv.workflows.state import DeadlineAnswer, EnvSpec, EnvState, Status, workflow_id_for

app = typer.Typer(
    name="devenv",
    help="Durable, self-cleaning development environments: idle ones terminate themselves.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
server_app = typer.Typer(help="Run the embedded Temporal server and the devenv worker.")
app.add_typer(server_app, name="server")

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
T = TypeVar("T")
STOP_WAIT_TIMEOUT = 300.0
"""`stop --wait` gives up (the stop stays requested) when termination takes longer."""

IDE_LABELS = {"vscode": "VS Code", "cursor": "Cursor"}
DURATION_HELP = "A duration: 7200, 90s, 30m, 2h, 1d, 1w, 1h30m; off to disable."
NAME_ARG = Annotated[str, typer.Argument(help="Environment name, or its workflow id devenv-NAME.")]
JSON_OPT = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command body; known problems become one red line and exit code 2."""
    try:
        return asyncio.run(coro)
    except UserError as problem:
        err.print(f"[red]error:[/] {problem}")
        raise typer.Exit(problem.exit_code) from None
    except ServerUnreachableError as problem:
        err.print(f"[red]error:[/] {problem}; {problem.hint}")
        raise typer.Exit(2) from None
    except RPCError as problem:
        line = _rpc_problem(problem)
        if line is None:
            raise
        err.print(f"[red]error:[/] {line}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _rpc_problem(problem: RPCError) -> str | None:
    """One line for server answers the user can act on; None for anything else (a bug)."""
    settings = Settings.load()
    where = f"the Temporal server at {settings.address}"
    if problem.status == RPCStatusCode.NOT_FOUND and "amespace" in problem.message:
        return (
            f"namespace {settings.namespace!r} does not exist on {where}; "
            "check DEVENV_TEMPORAL_NAMESPACE"
        )
    if problem.status in (RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED):
        return (
            f"{where} refused devenv ({problem.message.splitlines()[0][:120]}); "
            "check DEVENV_TEMPORAL_API_KEY and DEVENV_TEMPORAL_NAMESPACE"
        )
    if problem.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return (
            f"{where} stopped answering ({problem.message.splitlines()[0][:120]}); "
            "is it running? (`devenv server`)"
        )
    return None


def _duration(option: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except DurationError as problem:
        raise UserError(f"{option}: {shorten(str(problem), value)}") from None
    except ValueError:  # e.g. int() of thousands of digits
        raise UserError(f"{option}: {shorten(repr(value), value)} is not a duration") from None


async def _client() -> Any:
    return await connect(Settings.load())


# -- start ---------------------------------------------------------------------------


@app.command()
def start(
    file: Annotated[
        Path, typer.Argument(help="The environment's YAML file (see examples/dev.yml).")
    ],
    name: Annotated[str | None, typer.Option(help="Name (overrides the file's name).")] = None,
    inactivity: Annotated[
        str | None, typer.Option(help=f"Inactivity threshold (overrides the file). {DURATION_HELP}")
    ] = None,
    max_duration: Annotated[
        str | None, typer.Option(help=f"Hard cap from start (overrides the file). {DURATION_HELP}")
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Return once started; do not wait for SSH.")
    ] = False,
    json_output: JSON_OPT = False,
) -> None:
    """Start an environment and wait until it accepts SSH."""
    _run(_start(file, name, inactivity, max_duration, detach, json_output))


async def _start(
    file: Path,
    name: str | None,
    inactivity: str | None,
    max_duration: str | None,
    detach: bool,
    json_output: bool,
) -> None:
    config = load_config(file)
    overrides: dict[str, Any] = {}
    if inactivity is not None:
        overrides["inactivity_duration"] = _duration("--inactivity", inactivity)
    if max_duration is not None:
        overrides["max_duration"] = _duration("--max-duration", max_duration)
    if name is not None:
        try:
            validate_name(name)
        except ValueError as problem:
            raise UserError(f"--name: {shorten(str(problem), name)}") from None
    env_name = name or config.name or generate_name()
    settings = Settings.load()
    await _refuse_silent_port(settings)
    key = user_key(settings)
    sshconfig.check_paths(settings, key.private_key)
    spec = EnvSpec(
        name=env_name,
        backend=config.backend,
        ide=config.ide,
        inactivity_duration=config.inactivity_duration,
        max_duration=config.max_duration,
        min_connection_duration=config.min_connection_duration or 0,
        resources=config.resources,
        user_public_key=key.public_key,
        host_task_queue=host_task_queue() if config.backend == "local" else None,
    ).model_copy(update=overrides)

    client = await ensure_server(settings, lambda text: err.print(f"[dim]{text}[/]"))
    workflow_id = workflow_id_for(env_name)
    try:
        handle: Handle = await client.start_workflow(
            "DevEnvironment",
            EnvState(spec=spec),
            id=workflow_id,
            task_queue=SHARED_TASK_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            result_type=EnvState,
            # A worker that dies holding a workflow task stalls it this long, not 10 s.
            task_timeout=timedelta(seconds=5),
            static_summary=f"devenv {env_name} ({spec.backend}, "
            f"inactivity {format_duration(spec.inactivity_duration)})",
        )
    except WorkflowAlreadyStartedError:
        raise UserError(
            f"an environment named {env_name!r} is already running; "
            f"stop it with `devenv stop {env_name}` or choose another --name"
        ) from None
    ui_link = f"{settings.ui_url}/namespaces/{settings.namespace}/workflows/{workflow_id}"
    if detach:
        if json_output:
            out.print_json(data={"name": env_name, "workflow_id": workflow_id, "web_ui": ui_link})
        else:
            err.print(f"Started {env_name}; follow it with `devenv ps {env_name}` or {ui_link}")
        return
    state = await _wait_provisioned(handle, env_name)
    if state.status != Status.RUNNING or state.instance is None:
        raise UserError(
            f"environment {env_name!r} could not start: {state.error or state.termination_reason} "
            f"(details: `devenv logs {env_name}`)"
        )
    config_path = sshconfig.write_entry(settings, env_name, state.instance, key.private_key)
    included = sshconfig.include_in_user_config(settings)
    if json_output:
        out.print(rows_json([EnvRow.from_state(state)]))
        return
    _print_ready(state, config_path, included, ui_link)


async def _refuse_silent_port(settings: Settings) -> None:
    """Fail in seconds when the Temporal port is held by something that never answers.

    Otherwise `ensure_server` would start a background server that cannot bind the
    port and then wait for it for minutes.
    """
    try:
        await connect(settings)
    except ServerNotAnsweringError:
        raise
    except ServerUnreachableError:
        pass  # nothing there: ensure_server starts the embedded server


async def _wait_provisioned(handle: Handle, name: str) -> EnvState:
    loop = asyncio.get_running_loop()
    began = loop.time()
    with err.status(f"Provisioning {name}…") as spinner:
        while True:
            state = await fetch_state(handle)
            if state.status != Status.PROVISIONING:
                return state
            spinner.update(f"Provisioning {name}… {loop.time() - began:.0f}s")
            await asyncio.sleep(0.2)


def _print_ready(state: EnvState, config: Path, included: bool, ui_link: str) -> None:
    spec = state.spec
    instance = state.instance
    assert instance is not None
    ssh_line = f"ssh {spec.name}" + ("" if included else f"   (or: ssh -F {config} {spec.name})")
    out.print(f"[green]✓[/] Environment [bold]{spec.name}[/] is running")
    out.print(f"  Connect:    {ssh_line}")
    out.print(f"              ssh -F {config} {spec.name}   ·   devenv ssh {spec.name}")
    if spec.ide in ("vscode", "cursor"):
        out.print(
            f"  {IDE_LABELS[spec.ide] + ':':11} {spec.ide}://vscode-remote/ssh-remote+{spec.name}"
            f"{instance.workspace or ''}"
        )
    if instance.workspace:
        out.print(f"  Workspace:  {instance.workspace}")
    inactivity = spec.inactivity_duration
    rule = (
        f"terminated after {format_duration(inactivity)} with nobody connected"
        if inactivity
        else "no inactivity rule (inactivity_duration is off)"
    )
    out.print(f"  Idle rule:  {rule}")
    if spec.max_duration:
        out.print(f"  Max life:   {format_duration(spec.max_duration)} from start")
    out.print(f"  Web UI:     {ui_link}")
    if included:
        out.print(f"  [dim](added `Include {config}` to ~/.ssh/config)[/]")


# -- ps --------------------------------------------------------------------------------


@app.command()
def ps(
    name: Annotated[str | None, typer.Argument(help="Only this environment.")] = None,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include ended environments.")] = False,
    json_output: JSON_OPT = False,
) -> None:
    """List environments: status, activity, threshold and deadline."""
    _run(_ps(name, all_, json_output))


async def _ps(name: str | None, include_ended: bool, json_output: bool) -> None:
    if name is not None:
        candidate_ids(name)
    client = await _client()
    silent: list[str] = []
    if name is not None:
        states = [await fetch_state(await resolve(client, name))]
    else:
        states, silent = await list_states(client, include_ended)
    if silent:
        err.print(
            f"[yellow]warning:[/] {len(silent)} environment(s) did not answer and are not "
            f"listed ({', '.join(silent[:5])}{', …' if len(silent) > 5 else ''}); "
            "is a devenv worker running? (`devenv server`)"
        )
    rows = [EnvRow.from_state(state) for state in states]
    if json_output:
        out.print(rows_json(rows))
    elif not rows and not silent:
        err.print(
            "No environments" + ("." if include_ended else " running (--all shows ended ones).")
        )
    else:
        out.print(ps_table(rows))


# -- signal ------------------------------------------------------------------------------


@app.command()
def signal(
    name: NAME_ARG,
    inactivity: Annotated[
        str | None, typer.Option(help=f"New inactivity threshold. {DURATION_HELP}")
    ] = None,
    max_duration: Annotated[
        str | None, typer.Option(help=f"New hard cap from start. {DURATION_HELP}")
    ] = None,
    json_output: JSON_OPT = False,
) -> None:
    """Change a running environment's thresholds; takes effect at once."""
    _run(_signal(name, inactivity, max_duration, json_output))


async def _signal(
    name: str, inactivity: str | None, max_duration: str | None, json_output: bool
) -> None:
    candidate_ids(name)
    if inactivity is None and max_duration is None:
        raise UserError("nothing to change: give --inactivity and/or --max-duration")
    changes: list[tuple[str, int | None]] = []
    if inactivity is not None:
        changes.append(("set_inactivity", _duration("--inactivity", inactivity)))
    if max_duration is not None:
        changes.append(("set_max_duration", _duration("--max-duration", max_duration)))
    client = await _client()
    handle = await resolve(client, name)
    await require_worker(client, handle)
    answer: DeadlineAnswer | None = None
    for update, seconds in changes:
        answer = await _update(handle, update, seconds)
    assert answer is not None
    if json_output:
        out.print(answer.model_dump_json(indent=2))
        return
    out.print(
        f"{handle.id}: inactivity {format_duration(answer.inactivity_duration)}, "
        f"max duration {format_duration(answer.max_duration)}"
    )
    if answer.terminating:
        out.print(f"  Already past the new threshold: terminating now ({answer.deadline_reason}).")
    else:
        out.print(f"  Deadline: {describe_deadline(answer.deadline, answer.deadline_reason)}")


async def _update(handle: Handle, update: str, arg: object) -> DeadlineAnswer:
    """Run a validated Update; rejections and ended environments become one clear line."""
    try:
        answer = await asyncio.wait_for(
            handle.execute_update(update, arg, result_type=DeadlineAnswer),
            UPDATE_TIMEOUT.total_seconds(),
        )
        return cast(DeadlineAnswer, answer)
    except TimeoutError:
        raise UserError(
            f"{handle.id}: no answer within {UPDATE_TIMEOUT.seconds}s; is a devenv worker "
            f"running? (`devenv server`); the change may still apply later: check with "
            f"`devenv ps {handle.id}`"
        ) from None
    except WorkflowUpdateFailedError as failure:
        cause = failure.cause
        reason = getattr(cause, "message", None) or str(cause)
        raise UserError(f"{handle.id}: {reason}; nothing changed") from None
    except RPCError as failure:
        if "already completed" not in failure.message:
            raise
    state = await fetch_state(handle)
    raise UserError(
        f"{handle.id}: environment is {state.status.value} "
        f"({state.termination_reason or 'ended'}); nothing changed"
    )


# -- stop -------------------------------------------------------------------------------


@app.command()
def stop(
    name: NAME_ARG,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it is terminated.")] = False,
    json_output: JSON_OPT = False,
) -> None:
    """Terminate an environment now (its workspace folder is kept)."""
    _run(_stop(name, wait, json_output))


async def _stop(name: str, wait: bool, json_output: bool) -> None:
    candidate_ids(name)
    client = await _client()
    handle = await resolve(client, name)
    await require_worker(client, handle)
    await _update(handle, "request_stop", "stopped with devenv stop")
    if not wait:
        err.print(f"Stopping {handle.id}; `devenv ps --all` shows when it has ended.")
        return
    with err.status(f"Terminating {handle.id}…"):
        try:
            state = await asyncio.wait_for(handle.result(), STOP_WAIT_TIMEOUT)
        except TimeoutError:
            raise UserError(
                f"{handle.id}: stop requested, but still not terminated after "
                f"{STOP_WAIT_TIMEOUT:.0f}s; see `devenv logs {handle.id}`"
            ) from None
    if json_output:
        out.print(rows_json([EnvRow.from_state(state)]))
    else:
        out.print(f"{handle.id}: {state.status.value} ({state.termination_reason})")
    sshconfig.remove_entry(Settings.load(), state.spec.name)


# -- ssh --------------------------------------------------------------------------------


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ssh(
    name: NAME_ARG,
    command: Annotated[
        list[str] | None, typer.Argument(help="Command to run instead of a shell (after --).")
    ] = None,
) -> None:
    """Open a shell in the environment (OpenSSH), or run COMMAND there."""
    config, host = _run(_ssh_target(name))
    binary = shutil.which("ssh")
    if binary is None:
        err.print("[red]error:[/] OpenSSH client `ssh` not found on PATH; install openssh-client")
        raise typer.Exit(2)
    os.execv(binary, ["ssh", "-F", str(config), host, *(command or [])])


async def _ssh_target(ref: str) -> tuple[Path, str]:
    """The ssh config (entry refreshed from the workflow's state) and the Host to use."""
    candidate_ids(ref)
    settings = Settings.load()
    state = await fetch_state(await resolve(await _client(), ref))
    if state.status != Status.RUNNING or state.instance is None:
        raise UserError(f"environment {state.spec.name!r} is {state.status.value}, not running")
    identity = user_key(settings).private_key
    return sshconfig.write_entry(
        settings, state.spec.name, state.instance, identity
    ), state.spec.name


# -- logs -------------------------------------------------------------------------------


@app.command()
def logs(name: NAME_ARG, json_output: JSON_OPT = False) -> None:
    """The environment's history of events, in plain words."""
    _run(_logs(name, json_output))


async def _logs(name: str, json_output: bool) -> None:
    candidate_ids(name)
    state = await fetch_state(await resolve(await _client(), name))
    if json_output:
        out.print_json(data=[event.model_dump(mode="json") for event in state.events])
        return
    for event in state.events:
        out.print(f"[dim]{clock(event.at)}[/]  {event.message}")
    if not state.events:
        err.print("No events yet.")


# -- server -----------------------------------------------------------------------------


@server_app.callback(invoke_without_command=True)
def server(
    ctx: typer.Context,
    temporal_port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="gRPC port of the embedded Temporal server (default 7233)."
        ),
    ] = None,
    ui_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Web UI port (default: Temporal port + 1000); 0 disables it."
        ),
    ] = None,
    worker_only: Annotated[
        bool,
        typer.Option(
            "--worker-only",
            help="Only the worker, against DEVENV_TEMPORAL_ADDRESS (a cluster or another server).",
        ),
    ] = False,
) -> None:
    """Run the embedded Temporal dev server and the worker in the foreground."""
    if ctx.invoked_subcommand is not None:
        return
    _run(_server(temporal_port, ui_port, worker_only))


async def _server(temporal_port: int | None, ui_port: int | None, worker_only: bool) -> None:
    from devenv.worker.serve import serve

    settings = Settings.load()
    if temporal_port is not None:
        settings = settings.model_copy(update={"address": f"{settings.host}:{temporal_port}"})
    await serve(settings, settings.ui_port if ui_port is None else ui_port, worker_only, err)


@server_app.command("stop")
def server_stop() -> None:
    """Stop the background devenv server (environments keep their state and timers)."""
    try:
        settings = Settings.load()
    except UserError as problem:
        err.print(f"[red]error:[/] {problem}")
        raise typer.Exit(problem.exit_code) from None
    pid = stop_background(settings)
    err.print(
        "No devenv server was running." if pid is None else f"Stopped devenv server (pid {pid})."
    )


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
    (temporalio/sdk-python#300), turning a finished command into a segfault."""
    code: int = 1
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
