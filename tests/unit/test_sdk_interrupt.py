"""Ctrl-C in a program blocked in a call of the blocking SDK cancels that call: it does
not go on changing things behind the program's back on the SDK's loop thread."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import asyncio, os, signal, threading
from devenv.client.sync import _loop

cancelled = threading.Event()

async def slow():
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        cancelled.set()
        raise

threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
try:
    _loop().run(slow())
except KeyboardInterrupt:
    print("interrupted")
print("cancelled" if cancelled.wait(5) else "still running")
"""


def test_ctrl_c_during_a_blocking_call_cancels_it() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["interrupted", "cancelled"], result.stderr
