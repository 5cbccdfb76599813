"""The ``init`` commands of a first start: their output, progress and failure, per backend.

Each backend runs the commands its own way (a child process on ``local``, the account's
shell over the admin connection on ``ssh``/``aws``) and hands their output here: it goes
to the workspace's ``.devenv/init.log`` (``devenv logs NAME --init``), the last line to
the start's progress, and a failure becomes a ``ProvisioningError`` carrying the last
lines. Whatever reaches the log, progress or the error (the last two land in workflow history)
has every secret value of ``env`` masked.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from devenv.backends import progress
from devenv.backends.base import ProvisioningError
from devenv.env_secrets import mask

LOG_DIR = ".devenv"
LOG_NAME = "init.log"
LOG_PATH = f"{LOG_DIR}/{LOG_NAME}"
"""Relative to the workspace, where a session starts (``cat .devenv/init.log``)."""
TAIL_LINES = 20
MAX_LINE = 300
BUDGET_SECONDS = 480.0
"""All commands together: under the provision's 10-minute timeout, so that a slow init
fails the start with its last lines rather than being cut and retried."""


class InitOutput:
    """The last lines of the running command, masked, and the progress they show."""

    def __init__(
        self, name: str, total: int, hidden: list[str], sink: Callable[[str], None]
    ) -> None:
        self.name = name
        self.sink = sink
        """Where the log goes (masked lines, each ending with a newline)."""
        self.total = total
        self.hidden = hidden
        self.index = 0
        self.lines: deque[str] = deque(maxlen=TAIL_LINES)
        self._partial = ""

    def begin(self, index: int, command: str) -> None:
        """Command ``index`` (from 1) starts: a fresh tail, its first line in progress."""
        self.index = index
        self.lines.clear()
        self._partial = ""
        self.sink(header(command))
        progress.report(f"init {index}/{self.total}: {first_line(command)}")

    def feed(self, text: str) -> None:
        """Output of the running command, as it comes."""
        parts = (self._partial + text).split("\n")
        self._partial = parts.pop()
        for line in parts:
            self._line(line)

    def finish(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = ""

    def _line(self, line: str) -> None:
        shown = mask(line.rstrip("\r"), self.hidden)
        self.sink(shown + "\n")
        shown = shown if len(shown) <= MAX_LINE else shown[: MAX_LINE - 3] + "..."
        self.lines.append(shown)
        if shown.strip():
            progress.report(f"init {self.index}/{self.total}: {shown[:120]}")

    def failed(self, command: str, why: str) -> ProvisioningError:
        """The start's failure: which command, why, and its last lines (masked)."""
        self.finish()
        tail = "\n".join(f"  {line}" for line in self.lines) or "  (no output)"
        return ProvisioningError(
            f"init command {self.index}/{self.total} ({first_line(command)}) {why}; "
            f"its last lines:\n{tail}"
        )


def first_line(command: str) -> str:
    """A command as named in progress and errors: its first line, at most 80 chars."""
    line = command.strip().splitlines()[0] if command.strip() else ""
    return line if len(line) <= 80 else line[:77] + "..."


def header(command: str) -> str:
    """What the log shows before each command's output."""
    return "".join(f"$ {line}\n" for line in command.strip().splitlines())
