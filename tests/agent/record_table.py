"""Records a real process table of this host's sshd for the agent's table tests.

Starts the harness sshd, opens one connection of every kind for an account
(``alice`` in the file) plus another account's shell (``bob``), pre-authentication
connections and a look-alike process, then writes what /proc shows, with the ground
truth taken from sshd's own log ("User child is on pid N"), not from the agent.

Run as root from the repository root:
    python -m tests.agent.record_table tests/agent/tables/openssh-9.2-debian12.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devenv.agent.presence import procfs as agent
from devenv.backends.ssh.agent_bundle import agent_zipapp
from tests.support.sshd import (
    Account,
    KeyPair,
    Sshd,
    descendants,
    free_port,
    make_keypair,
    running_sshd,
    unix_account,
    wait_until,
)


def install_agent(server: Sshd) -> Path:
    """A copy every account can read: 0755 folder, 0644 file (the venv is under /root)."""
    folder = server.root / "agent"
    folder.mkdir(mode=0o755, exist_ok=True)
    target = folder / "presence_agent.py"
    target.write_bytes(agent_zipapp())
    target.chmod(0o644)
    return target


def forced_command(agent_path: Path, user: str, min_duration: float) -> str:
    return (
        f'restrict,command="/usr/bin/python3 {agent_path} stream --user {user} '
        f'--min-connection-duration {min_duration:g}"'
    )


def read_table() -> list[dict[str, Any]]:
    """Every process, as the agent's reader would record it (this runs as root)."""
    rows = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            comm, ppid, start = agent._read_stat(pid)
            uid = agent._read_real_uid(pid)
            argv = agent._read_argv(pid)
        except (OSError, ValueError, IndexError):
            continue
        ticks = os.sysconf("SC_CLK_TCK")
        rows.append(
            {
                "pid": pid,
                "ppid": ppid,
                "uid": uid,
                "comm": comm,
                "argv": argv,
                "start": start / ticks,
            }
        )
    return rows


def main(out: Path) -> None:
    with running_sshd() as server, unix_account() as alice, unix_account() as bob:
        agent_path = install_agent(server)
        user_key = make_keypair(server.root / "user_key")
        internal_key = make_keypair(server.root / "internal_key")
        alice.authorize(
            user_key.line, f"{forced_command(agent_path, alice.name, 0)} {internal_key.line}"
        )
        bob.authorize(user_key.line)
        clients: list[subprocess.Popen[bytes]] = []
        truth: dict[int, str] = {}
        raw: list[socket.socket] = []

        def children_logged() -> list[int]:
            return [int(pid) for pid in re.findall(r"User child is on pid (\d+)", server.log())]

        def connect(label: str, start: Callable[[], subprocess.Popen[bytes]]) -> int:
            before = len(children_logged())
            clients.append(start())
            pid = wait_until(lambda: children_logged()[before:], 15, f"the session of {label}")[0]
            truth[pid] = label
            return pid

        def ssh(
            account: Account, key: KeyPair, *command: str, options: tuple[str, ...] = ()
        ) -> Callable[[], subprocess.Popen[bytes]]:
            return lambda: server.popen_ssh(
                account.name, key, *command, options=options, stdin=subprocess.PIPE
            )

        own = connect("own-agent", ssh(alice, internal_key, "cat", "/etc/passwd"))
        connect("sibling-agent", ssh(alice, internal_key))
        connect("shell", ssh(alice, user_key, options=("-tt",)))
        connect("exec", ssh(alice, user_key, "sleep", "602"))
        connect(
            "sftp",
            lambda: subprocess.Popen(server.sftp_argv(alice.name, user_key), stdin=subprocess.PIPE),
        )
        forward = ("-N", "-L", f"{free_port()}:127.0.0.1:{server.port}")
        connect("forward", ssh(alice, user_key, options=forward))
        control = ("-o", f"ControlPath={server.root}/cm", "-o", "ControlPersist=no")
        connect("mux", ssh(alice, user_key, options=("-N", "-o", "ControlMaster=yes", *control)))
        for command, extra in ((("sleep", "603"), ("-tt",)), (("sleep", "604"), ())):
            clients.append(
                server.popen_ssh(alice.name, user_key, *command, options=(*control, *extra))
            )
        connect("other-account", ssh(bob, user_key, options=("-tt",)))
        # A process of alice's titled like a session, but reparented to init.
        lookalike = f"perl -e '$0 = \"sshd: {alice.name}\\@pts/9\"; sleep 605'"
        server.ssh(alice.name, user_key, f"setsid -f {lookalike} </dev/null >/dev/null 2>&1")
        # A login stuck in authentication: the key needs a passphrase that never comes.
        locked = server.root / "locked_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(locked)], check=True
        )
        alice.authorize(
            user_key.line,
            f"{forced_command(agent_path, alice.name, 0)} {internal_key.line}",
            KeyPair(locked).line,
        )
        askpass = server.root / "askpass"
        askpass.write_text("#!/bin/sh\nsleep 60\n")
        askpass.chmod(0o755)
        argv = server.ssh_argv(alice.name, locked, "true")
        argv[argv.index("BatchMode=yes")] = "BatchMode=no"
        env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
        stuck = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        for greeting in (b"", b"SSH-2.0-recorder\r\n"):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(greeting)
            raw.append(sock)
        failing = make_keypair(server.root / "unknown_key")
        for _ in range(3):  # leaves nothing behind, but exercises the log
            server.ssh(alice.name, failing, "true")
        time.sleep(2)  # a recording, not a test: let every session settle
        agent_pid = next(
            p for p in descendants(own) if "stream" in Path(f"/proc/{p}/cmdline").read_text()
        )
        rows = read_table()
        now = agent.boot_clock()
        uids = {alice.uid, bob.uid}
        keep = {r["pid"] for r in rows if r["comm"].startswith("sshd") or r["uid"] in uids}
        keep |= {r["ppid"] for r in rows if r["pid"] in keep}
        names = {
            alice.name: "alice",
            bob.name: "bob",
            str(server.root): "/srv/devenv",
            str(server.port): "2222",
        }

        def scrub(text: str) -> str:
            for real, shown in names.items():
                text = text.replace(real, shown)
            return text

        table: dict[str, Any] = {
            "openssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip(),
            "recorded": True,
            "source": "recorded by tests/agent/record_table.py on a live sshd",
            "user": "alice",
            "uid": 1001,
            "now": now,
            "agent_pid": agent_pid,
            "connections": {str(pid): label for pid, label in sorted(truth.items())},
            "processes": [
                {
                    "pid": r["pid"],
                    "ppid": r["ppid"],
                    "uid": {alice.uid: 1001, bob.uid: 1002}.get(r["uid"], r["uid"]),
                    "argv": ["/sbin/init"] if r["pid"] == 1 else [scrub(a) for a in r["argv"]],
                    "start": r["start"],
                }
                for r in rows
                if r["pid"] in keep
            ],
        }
        os.killpg(stuck.pid, signal.SIGKILL)  # with its askpass
        stuck.wait()
        for client in clients:
            client.kill()
            client.wait()
        for sock in raw:
            sock.close()
    out.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {out}: {len(table['processes'])} processes", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    main(parser.parse_args().out)
