"""The pidfile of the running `devenv server`, so `devenv start` and `server stop` find it."""

from __future__ import annotations

import os
from pathlib import Path

from devenv.keys import private_dir
from devenv.settings import Settings


def read_pid(settings: Settings) -> int | None:
    """The pid of a live `devenv server` recorded in the pidfile, or None."""
    try:
        pid = int(settings.server_pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if b"devenv" in cmdline and b"server" in cmdline else None


def write_pid(settings: Settings) -> None:
    private_dir(settings.home)
    settings.server_pidfile.write_text(f"{os.getpid()}\n")


def clear_pid(settings: Settings) -> None:
    if read_pid(settings) in (None, os.getpid()):
        settings.server_pidfile.unlink(missing_ok=True)
