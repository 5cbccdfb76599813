"""The stream's JSON lines, and the peers they name (from /proc/net/tcp or a session's
environment)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from .table import Connection

# timezone.utc (the same object), spelled so that pyupgrade rules for newer Pythons do not
# rewrite it to datetime.UTC, which Python 3.8 to 3.10 lack.
UTC_ZONE = timezone(timedelta(0))


def _address(hex_address: str) -> str:
    host_hex, port_hex = hex_address.split(":")
    raw = bytes.fromhex(host_hex)
    # /proc/net/tcp{,6} prints each 32-bit word of the address in host (little endian) order.
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    port = int(port_hex, 16)
    if len(raw) == 4:
        return f"{ipaddress.IPv4Address(raw)}:{port}"
    address = ipaddress.IPv6Address(raw)
    if address.ipv4_mapped is not None:
        return f"{address.ipv4_mapped}:{port}"
    return f"[{address}]:{port}"


def parse_net_tcp(text: str) -> dict[int, str]:
    """Socket inode -> remote ``ip:port``, from /proc/net/tcp or /proc/net/tcp6."""
    peers: dict[int, str] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            inode = int(fields[9])
            if inode:
                peers[inode] = _address(fields[2])
        except ValueError:
            continue
    return peers


def peer_from_environ(environ: bytes) -> str | None:
    """``ip:port`` of the client from SSH_CONNECTION in a /proc/PID/environ blob."""
    for entry in environ.split(b"\0"):
        if entry.startswith(b"SSH_CONNECTION="):
            parts = entry[len(b"SSH_CONNECTION=") :].decode(errors="replace").split()
            if len(parts) == 4:
                host, port = parts[0], parts[1]
                return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return None


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC_ZONE).isoformat(timespec="microseconds")


def report(
    connections: Sequence[Connection],
    peers: Mapping[int, str | None],
    boot_wall: float,
    last_change: str,
    jobs: int | None = None,
    inputs: Mapping[int, float] | None = None,
    busy_at: float | None = None,
    gpu: tuple[float | None, str | None] | None = None,
) -> dict[str, Any]:
    """One line of the stream; ``boot_wall`` is the wall-clock time of boot. ``jobs``
    (running devenv-keepalive jobs) is in every line the agent writes. ``inputs``: each
    connection's last terminal input (wall clock, by pid); ``busy_at``: when the account's
    processes last used the busy CPU share; ``gpu``: since when every GPU was under the
    minimum and the last sample's error, when GPUs are watched (all since agent 5)."""
    line: dict[str, Any] = {
        "connections": sum(1 for c in connections if c.counted),
        "waiting": sum(1 for c in connections if not c.counted),
        "last_change": last_change,
        "sessions": [_session(c, peers, boot_wall, inputs) for c in connections],
    }
    if jobs is not None:
        line["jobs"] = jobs
    typed = [moment for moment in (inputs or {}).values()]
    if typed:
        line["last_input"] = iso(max(typed))
    if busy_at is not None:
        line["busy_at"] = iso(busy_at)
    if gpu is not None:  # (quiet since, error) when the GPUs are watched
        if gpu[0] is not None:
            line["gpu_quiet_since"] = iso(gpu[0])
        if gpu[1] is not None:
            line["gpu_error"] = gpu[1]
    return line


def _session(
    c: Connection,
    peers: Mapping[int, str | None],
    boot_wall: float,
    inputs: Mapping[int, float] | None,
) -> dict[str, Any]:
    session: dict[str, Any] = {
        "pid": c.pid,
        "from": peers.get(c.pid),
        "since": iso(boot_wall + c.start),
        "kind": c.kind,
    }
    if inputs and c.pid in inputs:
        session["last_input"] = iso(inputs[c.pid])
    return session


def now_iso() -> str:
    return datetime.now(UTC_ZONE).isoformat(timespec="microseconds")
