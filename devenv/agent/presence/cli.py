"""The command line: ``stream`` and ``probe`` (the account's), ``failsafe`` (root's)."""

from __future__ import annotations

import argparse
import os
import pwd
import signal
import sys
from collections.abc import Sequence

from . import AGENT_SCRIPT, AGENT_VERSION
from .account import (
    DEFAULT_BUSY_PERCENT,
    DEFAULT_INTERVAL,
    LOGINS_FOLDER,
    Agent,
    LoginRecords,
    probe,
    stream,
)
from .failsafe import FAILSAFE_INTERVAL, FailsafeWatcher, failsafe
from .signs import GPU_INTERVAL_SECONDS, GpuWatch


class _Stop(BaseException):
    """Raised by SIGTERM/SIGHUP/SIGINT: leave quietly with status 0."""


def _stop(signum: int, frame: object) -> None:
    raise _Stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=AGENT_SCRIPT, description="devenv presence agent: who is connected over SSH"
    )
    parser.add_argument("--version", action="version", version=AGENT_VERSION)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("stream", "a JSON line now, then one per change"),
        ("probe", "one JSON line, then exit"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--user", required=True, help="the account to watch")
        command.add_argument(
            "--min-connection-duration",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="connections younger than this are waiting, not counted",
        )
        command.add_argument(
            "--busy-cpu",
            type=float,
            default=DEFAULT_BUSY_PERCENT,
            metavar="PERCENT",
            help="the account's processes using this share of a core count as busy",
        )
        command.add_argument(
            "--gpu-min",
            type=float,
            default=None,
            metavar="PERCENT",
            help="sample every GPU (nvidia-smi); report since when all were under this",
        )
        command.add_argument(
            "--gpu-interval", type=float, default=GPU_INTERVAL_SECONDS, metavar="SECONDS"
        )
        if name == "stream":
            command.add_argument(
                "--interval", type=float, default=DEFAULT_INTERVAL, metavar="SECONDS"
            )
            command.add_argument(
                "--count-recorded-logins",
                action="store_true",
                help=f"count every session ~/.ssh/rc recorded in ~/{LOGINS_FOLDER}, "
                "however short (min_connection_duration 0)",
            )
    command = commands.add_parser(
        "failsafe", help="as root: run an action once the control plane is gone and idle"
    )
    command.add_argument("--user", required=True, help="the account to watch")
    command.add_argument("--policy", required=True, metavar="FILE", help="the policy JSON")
    actions = command.add_mutually_exclusive_group(required=True)
    actions.add_argument("--action", metavar="COMMAND", help="run with /bin/sh -c, once")
    actions.add_argument(
        "--action-file", metavar="FILE", help="read the action from FILE (at start)"
    )
    suspending = command.add_mutually_exclusive_group()
    suspending.add_argument(
        "--suspend-action", metavar="COMMAND", help="run instead when idleness suspends"
    )
    suspending.add_argument(
        "--suspend-action-file", metavar="FILE", help="read the suspend action from FILE"
    )
    command.add_argument("--interval", type=float, default=FAILSAFE_INTERVAL, metavar="SECONDS")
    command.add_argument(
        "--min-connection-duration",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="user connections younger than this do not renew the idle time",
    )
    return parser


def _read_action(given: str | None, path: str, what: str = "action") -> str | None:
    if given is not None:
        action: str = given
    else:
        try:
            with open(path, encoding="utf-8") as action_file:
                action = action_file.read(65536)
        except (OSError, UnicodeDecodeError) as error:
            print(f"{AGENT_SCRIPT}: cannot read {path}: {error}", file=sys.stderr)
            return None
    if not action.strip():
        print(f"{AGENT_SCRIPT}: the {what} is empty", file=sys.stderr)
        return None
    return action


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The file it runs as (python3 .../presence_agent-5.py: the zipapp): in the process
    # table, its own processes and its siblings' are the ones running that file.
    script = os.path.basename(sys.argv[0]) if argv is None else AGENT_SCRIPT
    script = script or AGENT_SCRIPT
    try:
        uid = pwd.getpwnam(args.user).pw_uid
    except KeyError:
        print(f"{AGENT_SCRIPT}: no such user: {args.user}", file=sys.stderr)
        return 2
    if (
        args.min_connection_duration < 0
        or getattr(args, "interval", 1.0) <= 0
        or getattr(args, "busy_cpu", 0.0) < 0
    ):
        print(f"{AGENT_SCRIPT}: durations must be positive", file=sys.stderr)
        return 2
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, _stop)
    if args.command == "failsafe":
        action = _read_action(args.action, args.action_file)
        if action is None:
            return 2
        suspend_action = None
        if args.suspend_action is not None or args.suspend_action_file is not None:
            suspend_action = _read_action(
                args.suspend_action, args.suspend_action_file, "suspend action"
            )
            if suspend_action is None:
                return 2
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # detached: a hang-up is no reason to stop
        try:
            watcher = FailsafeWatcher(args.user, uid, args.min_connection_duration, script)
            interval = max(0.01, args.interval)
            return failsafe(watcher, args.policy, action, interval, sys.stderr, suspend_action)
        except _Stop:
            return 0
    try:
        gpus = None
        if args.gpu_min is not None:
            gpus = GpuWatch(args.gpu_min, max(0.1, args.gpu_interval))
        agent = Agent(args.user, uid, args.min_connection_duration, script, args.busy_cpu, gpus)
        if args.command == "probe":
            status = probe(agent, sys.stdout)
        else:
            logins = None
            if args.count_recorded_logins:
                home = pwd.getpwnam(args.user).pw_dir
                logins = LoginRecords(os.path.join(home, LOGINS_FOLDER))
            status = stream(agent, sys.stdout, max(0.01, args.interval), logins)
    except _Stop:
        status = 0
    # Whatever is left in stdout's buffer has nowhere to go: do not let the flush at
    # exit complain about a closed pipe.
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ConnectionResetError, _Stop):
        pass
    finally:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return status
