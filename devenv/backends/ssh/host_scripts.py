"""The shell scripts devenv runs on ssh hosts, read from the package's ``scripts/*.sh``.

They live in files of their own so that shellcheck lints them (CI does) and a reader sees
shell, not Python strings. A file's first line (``#!/bin/sh``) is for editors and
shellcheck; what is sent is the rest, so the commands run on a host are the files' text.
"""

from __future__ import annotations

import functools
from importlib import resources

SCRIPTS = "devenv.backends.ssh"
"""The package whose ``scripts/`` folder holds them (shipped as package data)."""
PRELUDE = "prelude.sh"
"""Sent ahead of every host script: ``set -eu``, a fixed PATH, the shared functions."""


@functools.cache
def shipped_file(name: str) -> str:
    """``scripts/NAME`` as shipped, its ``#!`` line dropped."""
    text = resources.files(SCRIPTS).joinpath("scripts", name).read_text(encoding="utf-8")
    if text.startswith("#!"):
        text = text.partition("\n")[2]
    return text


def host_script(name: str, preludes: tuple[str, ...] = (PRELUDE,)) -> str:
    """The script ``scripts/NAME`` as run by ``sh -c`` on a host: its preludes, then it."""
    return "".join(shipped_file(part) for part in (*preludes, name))
