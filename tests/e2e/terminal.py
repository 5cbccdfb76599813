"""A command run on a real pseudo-terminal, as a person runs it: Ctrl-C is the
terminal's, sent to the foreground process group by the kernel's line discipline."""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import termios
import time
from typing import Any

from tests.e2e.harness import DEVENV, wait_for

CTRL_C = b"\x03"


def _controlling_terminal() -> None:
    """In the child, after setsid: make its stdin (the pty) its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """``devenv ARGS`` with a pty as stdin, stdout and stderr, its output collected."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self._master, slave = os.openpty()
        self.process = subprocess.Popen(
            [DEVENV, *args],
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=_controlling_terminal,
        )
        os.close(slave)
        self._output = b""

    @property
    def output(self) -> str:
        self._read()
        return self._output.decode(errors="replace")

    def _read(self) -> None:
        while select.select([self._master], [], [], 0)[0]:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: the child closed its end
                return
            if not chunk:
                return
            self._output += chunk

    def expect(self, text: str, timeout: float = 30) -> None:
        # Polled often: a test presses a key the moment the text shows.
        wait_for(lambda: text in self.output, timeout, f"{text!r} on the terminal", every=0.01)

    def press(self, keys: bytes) -> float:
        """Type ``keys``; when they were typed (monotonic)."""
        os.write(self._master, keys)
        return time.monotonic()

    def wait(self, timeout: float) -> int:
        """The exit code, or an AssertionError with what it printed if it runs on."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"still running {timeout}s after Ctrl-C; it printed: {self.output!r}"
            ) from None
        self._read()
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        os.close(self._master)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
