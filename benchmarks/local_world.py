"""A private devenv world with its own `devenv server`, for the local benchmarks: started,
and on the way out (Ctrl-C and SIGTERM too) its environments, server and instances ended."""

from __future__ import annotations

import contextlib
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from tests.e2e.harness import Devenv, kill_instances


@contextlib.contextmanager
def served_world(prefix: str) -> Iterator[Devenv]:
    """A world under a fresh temp folder whose server runs until the block ends."""
    # SIGTERM unwinds like Ctrl-C, so the environments and the server are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        world = Devenv(Path(tmp))
        server: subprocess.Popen[bytes] | None = None
        try:
            server = world.start_server()
            yield world
        finally:
            try:
                world.cleanup()
            finally:
                if server is not None:
                    server.terminate()
                    try:
                        server.wait(30)
                    except subprocess.TimeoutExpired:
                        server.kill()
                        server.wait()
                kill_instances(world.home)


def spread(
    rounds: Iterable[Mapping[str, float]], keys: Iterable[str]
) -> dict[str, dict[str, float]]:
    """Median, min and max of each key over the rounds (seconds or MB, 3 decimals)."""
    measured = list(rounds)
    return {
        key: {
            "median": round(statistics.median(r[key] for r in measured), 3),
            "min": round(min(r[key] for r in measured), 3),
            "max": round(max(r[key] for r in measured), 3),
        }
        for key in keys
    }
