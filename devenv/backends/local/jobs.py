"""Jobs of a local instance: ``devenv-keepalive`` processes that keep it in use.

The instance server listens on an abstract Unix socket named after its instance id
(``DEVENV_ENV``, set in every process of the instance). A keepalive connects, reads
the workspace (where job records live) and, when it runs a job, says ``job``; the job
counts from then until its connection closes, which the kernel does however the
process ends (``kill -9`` included). Event driven like the connection count: nothing
polls /proc. Only processes of the server's own user are answered.

The worker says ``tell`` on the same socket, then one JSON line ``{"text": ...}``: the
server writes the text into every open terminal of the instance and answers
``{"told": N}`` (the warning before a fixed end).

Sessions find ``devenv-keepalive`` on their PATH: the package's console script when the
worker's PATH has it, else a small wrapper in the instance folder, appended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import shutil
import socket
import struct
import sys
from collections.abc import Callable
from pathlib import Path

from devenv.agent import keepalive
from devenv.backends.local.counter import ConnectionCounter

log = logging.getLogger(__name__)

TOOLS_DIR = "bin"
KEEPALIVE_COMMAND = "devenv-keepalive"
MAX_HELLO = 64
TELL_HELLO = b"tell\n"
"""What the worker says before a message for the instance's terminals."""
MAX_TELL = 8192

Teller = Callable[[str], int]
"""Writes a message into every open terminal; answers how many."""


def socket_name(instance_id: str) -> str:
    return keepalive.SOCKET_PREFIX + instance_id


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _, uid, _ = struct.unpack("3i", creds)
    return int(uid)


async def _serve_one(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    workspace: Path,
    counter: ConnectionCounter,
    tell: Teller | None,
) -> None:
    job: object | None = None
    try:
        if _peer_uid(writer) != os.getuid():
            log.warning("jobs socket: refused a process of another user")
            return
        writer.write((json.dumps({"workspace": str(workspace)}) + "\n").encode())
        await writer.drain()
        hello = await reader.readline()
        if hello == TELL_HELLO and tell is not None:
            await _tell(reader, writer, tell)
            return
        if hello != keepalive.JOB_HELLO:
            return  # a listing: it only wanted the workspace
        job = object()
        counter.job_started(job)
        log.info("job started (%d running)", counter.snapshot.jobs)
        while await reader.read(MAX_HELLO):
            pass  # a job says nothing more; its end is the end of the connection
    except (ConnectionError, OSError):
        pass
    finally:
        if job is not None:
            counter.job_ended(job)
            log.info("job ended (%d running)", counter.snapshot.jobs)
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def _tell(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tell: Teller) -> None:
    line = await reader.readline()
    try:
        text = json.loads(line[:MAX_TELL])["text"]
    except (ValueError, KeyError, TypeError):
        log.warning("jobs socket: a tell without text")
        return
    if not isinstance(text, str):
        return
    told = tell(text)
    log.info("told %d terminal(s)", told)
    writer.write((json.dumps({"told": told}) + "\n").encode())
    await writer.drain()


async def serve_jobs(
    instance_id: str, workspace: Path, counter: ConnectionCounter, tell: Teller | None = None
) -> asyncio.AbstractServer:
    """Count the instance's jobs in ``counter`` while the returned server listens, and
    pass the worker's messages for terminals to ``tell``."""
    return await asyncio.start_unix_server(
        lambda reader, writer: _serve_one(reader, writer, workspace, counter, tell),
        path=socket_name(instance_id),
    )


async def tell_instance(instance_id: str, text: str, timeout: float = 10.0) -> int:
    """The worker's side: ask the instance server to write ``text`` into its terminals."""

    async def exchange() -> int:
        reader, writer = await asyncio.open_unix_connection(socket_name(instance_id))
        try:
            await reader.readline()  # the workspace, for keepalives
            writer.write(TELL_HELLO + (json.dumps({"text": text}) + "\n").encode())
            await writer.drain()
            answer = json.loads(await reader.readline())
            return int(answer["told"])
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    return await asyncio.wait_for(exchange(), timeout)


def install_tools(instance_dir: Path) -> Path:
    """``INSTANCE_DIR/bin/devenv-keepalive``: runs this package's keepalive with this
    interpreter (for sessions whose PATH has no console script)."""
    tools = instance_dir / TOOLS_DIR
    tools.mkdir(mode=0o700, exist_ok=True)
    script = Path(keepalive.__file__).resolve()
    wrapper = tools / KEEPALIVE_COMMAND
    text = f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(script))} "$@"\n'
    tmp = tools / f".{KEEPALIVE_COMMAND}.tmp"
    tmp.write_text(text)
    tmp.chmod(0o755)
    os.replace(tmp, wrapper)
    return tools


def session_path(path: str, tools: Path | None) -> str:
    """``path`` as it is when it finds devenv-keepalive already, else with ``tools`` last."""
    if tools is None or shutil.which(KEEPALIVE_COMMAND, path=path) is not None:
        return path
    return f"{path}:{tools}" if path else str(tools)
