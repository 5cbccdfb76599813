"""What a user gets over SSH from a local instance, checked with the real OpenSSH tools."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import pty
import re
import socket
import struct
import termios
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from devenv.backends.local import proctools
from devenv.backends.local.files import ACTIVITY_SUBSYSTEM, ENV_MARKER
from devenv.backends.local.terminal import take_controlling_tty
from tests.local_backend.conftest import Instance, Lab, run, wait_until, write_ssh_config


async def test_exec_prints_output_and_propagates_the_exit_code(shared: Instance) -> None:
    result = await shared.ssh(shared.alias, 'echo hi; pwd; echo "$DEVENV_ENV"; exit 3')
    assert result.returncode == 3, result.err
    assert result.out.splitlines() == ["hi", str(shared.workspace), shared.token]


async def test_exec_reads_stdin(shared: Instance) -> None:
    result = await shared.ssh(shared.alias, "cat", input=b"data\n")
    assert (result.returncode, result.out) == (0, "data\n")


async def test_exec_streams_megabytes_both_ways(shared: Instance) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    upload = await shared.ssh(shared.alias, "sha256sum", input=payload)
    assert upload.out.split()[0] == hashlib.sha256(payload).hexdigest()
    download = await shared.ssh(shared.alias, "head -c 3000000 /dev/zero")
    assert download.stdout == bytes(3_000_000)


async def test_exec_with_a_pty_has_a_terminal(shared: Instance) -> None:
    result = await shared.ssh("-tt", shared.alias, 'tty; echo "term=$TERM"; exit 4')
    assert result.returncode == 4, result.err
    assert re.search(r"^/dev/pts/\d+\r?$", result.out, re.M), result.out
    assert "term=" in result.out and "term=\r" not in result.out


async def test_pty_output_is_complete_and_background_jobs_do_not_hold_the_session(
    shared: Instance,
) -> None:
    big = await shared.ssh("-tt", shared.alias, "head -c 2000000 /dev/zero | tr '\\0' a")
    assert big.returncode == 0, big.err
    assert big.stdout.count(b"a") == 2_000_000
    started = asyncio.get_running_loop().time()
    background = await shared.ssh("-tt", shared.alias, "sleep 30 & echo bg")
    assert background.returncode == 0 and "bg" in background.out
    assert asyncio.get_running_loop().time() - started < 5


class PtyClient:
    """``ssh -tt`` run in a terminal of its own, typed into like a user would."""

    def __init__(self, rows: int, cols: int) -> None:
        self.master, self.slave = pty.openpty()
        self.resize(rows, cols)
        self.buffer = b""
        self.proc: asyncio.subprocess.Process | None = None

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    async def start(self, argv: list[str]) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            start_new_session=True,
            preexec_fn=take_controlling_tty,  # so ssh gets SIGWINCH on resize
        )
        os.close(self.slave)
        os.set_blocking(self.master, False)

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    async def expect(self, pattern: str, timeout: float = 10.0) -> re.Match[bytes]:
        deadline = asyncio.get_running_loop().time() + timeout
        regex = re.compile(pattern.encode())
        while not (match := regex.search(self.buffer)):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{pattern!r} not seen in {self.buffer[-2000:]!r}")
            with contextlib.suppress(BlockingIOError, OSError):
                self.buffer += os.read(self.master, 65536)
            await asyncio.sleep(0.02)
        self.buffer = self.buffer[match.end() :]
        return match

    def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
        os.close(self.master)


async def until_size(terminal: PtyClient, size: bytes, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        terminal.type("echo SIZE=$(stty size)\n")
        seen = (await terminal.expect(r"SIZE=(\d+ \d+)\r?\n")).group(1)
        if seen == size:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the shell's terminal is {seen!r}, not {size!r}")
        await asyncio.sleep(0.05)


def foreground_sleep(token: str, seconds: str) -> bool:
    """``sleep SECONDS`` of instance ``token`` runs and owns its terminal's foreground."""
    for pid in proctools.processes_with_env(ENV_MARKER, token):
        if proctools.cmdline(pid) != ["sleep", seconds]:
            continue
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if fields[2] == fields[5]:  # process group == the tty's foreground group
                return True
    return False


@pytest.fixture
async def terminal() -> AsyncIterator[PtyClient]:
    client = PtyClient(rows=30, cols=100)
    try:
        yield client
    finally:
        client.close()


async def test_interactive_login_shell_with_job_control_and_resize(
    shared: Instance, terminal: PtyClient
) -> None:
    await terminal.start(shared.ssh_argv("-tt", shared.alias))
    terminal.type("stty size; echo READY$((40+2))\n")
    await terminal.expect(r"30 100\r?\n")
    await terminal.expect("READY42")

    # The window size follows the user's terminal (ssh forwards the change on SIGWINCH:
    # ask until the shell sees it, the first answer may predate it).
    terminal.resize(40, 120)
    await until_size(terminal, b"40 120")

    # The pty is the shell's controlling terminal: /dev/tty opens and ^C interrupts.
    terminal.type(": </dev/tty && echo CTTY$((1+1))\n")
    await terminal.expect("CTTY2")
    terminal.type("sleep 37\n")
    # ^C only reaches the sleep once it is the terminal's foreground job.
    await wait_until(lambda: foreground_sleep(shared.token, "37"))
    terminal.type("\x03")
    terminal.type("echo AFTER$((2+2))\n")
    await terminal.expect("AFTER4", timeout=5)

    terminal.type("exit 5\n")
    assert terminal.proc is not None
    assert await asyncio.wait_for(terminal.proc.wait(), 10) == 5


async def test_sftp_put_and_get_in_the_workspace(shared: Instance, tmp_path: Path) -> None:
    source = tmp_path / "up.bin"
    source.write_bytes(os.urandom(200_000))
    batch = tmp_path / "batch"
    batch.write_text(f"pwd\nput {source} sftp-up.bin\nget sftp-up.bin {tmp_path / 'down.bin'}\n")
    result = await run("sftp", "-F", shared.config, "-b", batch, shared.alias)
    assert result.returncode == 0, result.err
    assert str(shared.workspace) in result.out
    assert (shared.workspace / "sftp-up.bin").read_bytes() == source.read_bytes()
    assert (tmp_path / "down.bin").read_bytes() == source.read_bytes()


@pytest.mark.parametrize("protocol", ["-s", "-O"], ids=["sftp-protocol", "legacy-scp"])
async def test_scp_both_ways(shared: Instance, tmp_path: Path, protocol: str) -> None:
    source = tmp_path / "scp.txt"
    source.write_text(f"hello over scp {protocol}\n")
    remote = f"scp{protocol}.txt"
    up = await run("scp", protocol, "-F", shared.config, source, f"{shared.alias}:{remote}")
    assert up.returncode == 0, up.err
    assert (shared.workspace / remote).read_text() == source.read_text()
    back = tmp_path / "back.txt"
    down = await run("scp", protocol, "-F", shared.config, f"{shared.alias}:{remote}", back)
    assert down.returncode == 0, down.err
    assert back.read_text() == source.read_text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_local_port_forwarding_reaches_a_service_of_the_instance(shared: Instance) -> None:
    service = await asyncio.start_server(_echo, "127.0.0.1", 0)
    service_port = service.sockets[0].getsockname()[1]
    local_port = free_port()
    tunnel = await asyncio.create_subprocess_exec(
        *shared.ssh_argv(
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-L",
            f"127.0.0.1:{local_port}:127.0.0.1:{service_port}",
            shared.alias,
        ),
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        reader, writer = await _wait_for_port(local_port)
        writer.write(b"ping through the tunnel\n")
        assert await asyncio.wait_for(reader.readline(), 10) == b"ping through the tunnel\n"
        writer.close()
    finally:
        tunnel.terminate()
        await tunnel.wait()
        service.close()


async def _wait_for_port(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    for _ in range(200):
        try:
            return await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"port {port} never opened")


async def test_dynamic_forwarding_as_vscode_uses_it(shared: Instance) -> None:
    """VS Code Remote-SSH reaches its server through ``ssh -D`` (SOCKS, by host name)."""
    service = await asyncio.start_server(_echo, "127.0.0.1", 0)
    service_port = service.sockets[0].getsockname()[1]
    socks_port = free_port()
    tunnel = await asyncio.create_subprocess_exec(
        *shared.ssh_argv(
            "-N", "-o", "ExitOnForwardFailure=yes", "-D", str(socks_port), shared.alias
        ),
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        reader, writer = await _wait_for_port(socks_port)
        writer.write(b"\x05\x01\x00")  # SOCKS5, no authentication
        assert await reader.readexactly(2) == b"\x05\x00"
        host = b"localhost"
        writer.write(
            b"\x05\x01\x00\x03" + bytes([len(host)]) + host + service_port.to_bytes(2, "big")
        )
        reply = await asyncio.wait_for(reader.readexactly(10), 10)
        assert reply[1] == 0, reply
        writer.write(b"through socks\n")
        assert await asyncio.wait_for(reader.readline(), 10) == b"through socks\n"
        writer.close()
    finally:
        tunnel.terminate()
        await tunnel.wait()
        service.close()


def _listeners(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(port_hex, 16) == port:
                found.append(address)
    return found


async def test_listens_on_loopback_only(shared: Instance) -> None:
    assert _listeners(shared.info.port) == ["0100007F"]  # 127.0.0.1, nothing else


async def test_another_key_is_refused(shared: Instance, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    asyncssh_key = asyncssh.generate_private_key("ssh-ed25519")
    asyncssh_key.write_private_key(str(stranger))
    stranger.chmod(0o600)
    config = write_ssh_config(tmp_path, shared.alias, shared.info, stranger)
    result = await shared.ssh(shared.alias, "true", config=config)
    assert result.returncode == 255
    assert "Permission denied" in result.err


async def test_another_login_name_is_refused(shared: Instance) -> None:
    result = await shared.ssh("-l", "nobody-else", shared.alias, "true")
    assert result.returncode == 255
    assert "Permission denied" in result.err


async def test_passwords_are_refused(shared: Instance) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(
            shared.info.host,
            shared.info.port,
            username=shared.info.username,
            password="guess",
            client_keys=None,
            agent_path=None,
            known_hosts=([asyncssh.import_public_key(shared.info.host_public_key)], [], []),
            config=None,
        )


async def test_user_key_cannot_open_the_activity_subsystem(shared: Instance) -> None:
    result = await shared.ssh("-s", shared.alias, ACTIVITY_SUBSYSTEM)
    assert result.returncode != 0
    assert result.stdout == b""


async def test_internal_key_gets_nothing_but_the_activity_subsystem(
    shared: Instance, tmp_path: Path
) -> None:
    internal = write_ssh_config(tmp_path, shared.alias, shared.info, shared.settings.internal_key)
    shell = await shared.ssh(shared.alias, "echo should-not-run", config=internal)
    assert shell.returncode != 0 and b"should-not-run" not in shell.stdout
    sftp = await run("sftp", "-F", internal, "-b", "/dev/null", shared.alias)
    assert sftp.returncode != 0

    async with asyncssh.connect(
        shared.info.host,
        shared.info.port,
        username=shared.info.username,
        client_keys=[asyncssh.read_private_key(str(shared.settings.internal_key))],
        agent_path=None,
        known_hosts=([asyncssh.import_public_key(shared.info.host_public_key)], [], []),
        config=None,
    ) as conn:
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_connection("127.0.0.1", shared.info.port)
        async with conn.create_process(subsystem=ACTIVITY_SUBSYSTEM) as proc:
            first = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert '"connections"' in first


async def test_a_replaced_server_is_rejected(lab: Lab, shared: Instance, tmp_path: Path) -> None:
    """Same alias, same address, another host key: OpenSSH must refuse to talk to it."""
    impostor = await lab.provision("impostor")
    config = write_ssh_config(
        tmp_path, shared.alias, shared.info, shared.user_key, port=impostor.info.port
    )
    result = await shared.ssh(shared.alias, "echo should-not-run", config=config)
    assert result.returncode == 255
    assert b"should-not-run" not in result.stdout
    assert (
        "Host key verification failed" in result.err or "IDENTIFICATION HAS CHANGED" in result.err
    )
