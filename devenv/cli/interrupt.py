"""Ctrl-C ends any command at once: exit code 130, no traceback, the terminal usable.

Python's default turns SIGINT into KeyboardInterrupt, and asyncio's runner turns the
first one into a cancellation of the command: a prompt read inside the event loop
(``typer.confirm``) then kept waiting, a cleanup kept awaiting the server, and only a
second Ctrl-C got through, as a traceback. The CLI does no work that a person
interrupting it wants finished, so the process simply ends: what had already been
sent to the server stands, nothing more is sent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

EXIT_CODE = 130
"""128 + SIGINT, as shells report a command ended by Ctrl-C."""
_SHOW_CURSOR = "\x1b[?25h"
"""A spinner hides the cursor while it runs; an interrupted one must not leave it hidden."""

_notes: list[str] = []


def install() -> None:
    """End the process at the first Ctrl-C (see the module's docstring); a SIGINT its
    parent ignores (``nohup``, a script's background job) stays ignored."""
    _set(_interrupted)


def default() -> None:
    """Back to KeyboardInterrupt, for a command that stops gracefully on Ctrl-C itself
    (``devenv server`` ends its worker and the Temporal server it runs)."""
    _set(signal.default_int_handler)


def _set(handler: Callable[[int, FrameType | None], Any]) -> None:
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, handler)


@contextlib.contextmanager
def noting(message: str) -> Iterator[None]:
    """Say ``message`` if Ctrl-C comes inside the block (what stands, what to do)."""
    _notes.append(message)
    try:
        yield
    finally:
        _notes.remove(message)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    text = "\n"
    if _notes:
        text += f"interrupted: {_notes[-1]}\n"
    if sys.stderr.isatty():
        text = _SHOW_CURSOR + text
    with contextlib.suppress(OSError):
        os.write(2, text.encode())
    os._exit(EXIT_CODE)
