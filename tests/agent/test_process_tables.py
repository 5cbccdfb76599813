"""The agent's pure functions against process tables of OpenSSH 8.2, 9.2 and 9.8 to 10.5.

``tables/openssh-9.2-debian12.json`` was recorded from a live sshd here (see
``record_table.py``; its ground truth comes from sshd's log, not from the agent).
The others are rebuilt from the setproctitle calls of those OpenSSH versions.
Each lists which session pid is which connection in ``connections``.
"""

from __future__ import annotations

import ast
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from devenv.agent import presence
from devenv.agent.presence import lines
from devenv.agent.presence import table as process_table
from devenv.agent.presence.table import Connection, Proc
from devenv.backends.ssh.agent_bundle import agent_zipapp

TABLES = Path(__file__).parent / "tables"
TABLE_NAMES = sorted(path.stem for path in TABLES.glob("*.json"))
KIND_OF = {"shell": "shell", "exec": "exec", "sftp": "sftp", "forward": "forward", "mux": "shell"}
"""Which connections count, and as what (the multiplexed one has a tty among its sessions)."""


def load(name: str) -> dict[str, Any]:
    table: dict[str, Any] = json.loads((TABLES / f"{name}.json").read_text())
    return table


def procs_of(table: dict[str, Any]) -> list[Proc]:
    return [
        Proc(p["pid"], p["ppid"], p["uid"], tuple(p["argv"]), p["start"])
        for p in table["processes"]
    ]


def own_ancestry(table: dict[str, Any]) -> list[int]:
    parents = {p["pid"]: p["ppid"] for p in table["processes"]}
    return process_table.ancestry(parents, table["agent_pid"])


def pid_of(table: dict[str, Any], label: str) -> int:
    [pid] = [int(pid) for pid, name in table["connections"].items() if name == label]
    return pid


def connections(
    table: dict[str, Any], min_duration: float = 0, **overrides: Any
) -> list[Connection]:
    arguments: dict[str, Any] = {
        "procs": procs_of(table),
        "user": table["user"],
        "uid": table["uid"],
        "own_ancestry": own_ancestry(table),
        "now": table["now"],
        "min_duration": min_duration,
    }
    arguments.update(overrides)
    return process_table.find_connections(**arguments)


def test_the_tables_cover_every_openssh_generation() -> None:
    assert TABLE_NAMES == [
        "openssh-10.5-postauth",
        "openssh-8.2-ubuntu20.04",
        "openssh-9.2-debian12",
        "openssh-9.8-10.4-sshd-session",
    ]
    assert load("openssh-9.2-debian12")["recorded"] is True


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_counts_the_accounts_authenticated_connections_and_their_kinds(name: str) -> None:
    table = load(name)
    found = {c.pid: c.kind for c in connections(table)}
    expected = {pid_of(table, label): kind for label, kind in KIND_OF.items()}
    assert found == expected
    assert all(c.counted for c in connections(table))


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_never_counts_preauth_monitors_or_lookalikes(name: str) -> None:
    table = load(name)
    counted = {c.pid for c in connections(table)}
    by_pid = {p.pid: p for p in procs_of(table)}
    for pid in counted:
        assert by_pid[pid].uid == table["uid"]
        assert by_pid[by_pid[pid].ppid].uid == 0
    titles = {by_pid[pid].title for pid in counted}
    assert not any(mark in title for title in titles for mark in ("[", "auth", "pts/9"))
    # Every bracketed process of the table exists and is left out.
    bracketed = [p for p in by_pid.values() if "[" in p.title]
    assert any("[net]" in p.title for p in bracketed)
    assert any("[accepted]" in p.title for p in bracketed)
    assert not counted & {p.pid for p in bracketed}


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_own_connection_excluded_by_ancestry_exactly(name: str) -> None:
    table = load(name)
    own = pid_of(table, "own-agent")
    sibling = pid_of(table, "sibling-agent")
    # With the sibling rule off (another script name), only the own connection goes.
    found = {c.pid for c in connections(table, script="another-name.py")}
    assert own not in found
    assert sibling in found
    # Seen from outside any connection (no ancestry), the agent connections are still
    # devenv's: each runs nothing but an agent.
    outside = {c.pid for c in connections(table, own_ancestry=[999999])}
    assert own not in outside and sibling not in outside
    # Without either rule both count, as exec connections.
    everything = {
        c.pid: c.kind for c in connections(table, own_ancestry=[], script="another-name.py")
    }
    assert everything[own] == everything[sibling] == "exec"


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_another_account_sees_only_its_own(name: str) -> None:
    table = load(name)
    [bob_session] = [p for p in procs_of(table) if "bob@pts/" in p.title]
    found = connections(table, user="bob", uid=bob_session.uid)
    assert [c.pid for c in found] == [bob_session.pid]
    assert found[0].kind == "shell"
    # A process of bob's titled like alice's session (under a real monitor) is nobody's.
    if "other-account-lookalike" in table["connections"].values():
        lookalike = pid_of(table, "other-account-lookalike")
        assert lookalike not in {c.pid for c in connections(table)}
        assert lookalike not in {c.pid for c in found}


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_min_connection_duration_waits_then_counts(name: str) -> None:
    table = load(name)
    starts = sorted(c.start for c in connections(table))
    middle = starts[len(starts) // 2]
    minimum = 10.0
    now = middle + minimum  # the middle connection reaches the minimum exactly now
    found = connections(table, min_duration=minimum, now=now)
    assert [c.counted for c in found] == [start <= middle for start in starts]
    waiting = [c for c in found if not c.counted]
    assert waiting
    assert (
        process_table.next_count_change(found, minimum) == min(c.start for c in waiting) + minimum
    )
    assert process_table.next_count_change(connections(table), 0) is None
    # Everything waits just after login.
    assert not any(c.counted for c in connections(table, min_duration=1e6))


def test_recorded_debian12_titles() -> None:
    """What Debian 12's sshd 9.2 really shows (a reminder for the quirks list)."""
    table = load("openssh-9.2-debian12")
    titles = {label: "" for label in table["connections"].values()}
    by_pid = {p.pid: p for p in procs_of(table)}
    for pid, label in table["connections"].items():
        titles[label] = by_pid[int(pid)].title.replace("alice", "U").replace("bob", "U")
    assert titles["forward"] == "sshd: U"  # no channel at all: no "@notty"
    assert titles["exec"] == "sshd: U@notty"
    assert titles["shell"].startswith("sshd: U@pts/")
    assert titles["sftp"] == "sshd: U@notty"


# --- titles and small cases ---------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "ttys"),
    [
        ("sshd: alice", ""),
        ("sshd: alice@notty", "notty"),
        ("sshd: alice@pts/0", "pts/0"),
        ("sshd: alice@pts/1,pts/2", "pts/1,pts/2"),
        ("sshd-session: alice@pts/3", "pts/3"),
        ("sshd-session: alice", ""),
        ("sshd: alice@internal-sftp", None),
        ("sshd-session: alice@internal-sftp", None),
        ("sshd: alice [priv]", None),
        ("sshd-session: alice [priv]", None),
        ("sshd-session: alice [postauth]", None),
        ("sshd: alice [preauth]", None),
        ("sshd: alice [net]", None),
        ("sshd-auth: alice [net]", None),
        ("sshd-auth: alice@notty", None),
        ("sshd: [accepted]", None),
        ("sshd: [net]", None),
        ("sshd-session: [net]", None),
        ("sshd: unknown [net]", None),
        ("sshd: bob@pts/0", None),
        ("sshd: alicex@notty", None),
        ("sshd: alice@notty extra", None),
        ("-bash", None),
        ("sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups", None),
    ],
)
def test_session_titles(title: str, ttys: str | None) -> None:
    assert process_table.session_ttys(title, "alice") == ttys


def monitor(pid: int, user: str = "alice", label: str = "[priv]") -> Proc:
    return Proc(pid, 100, 0, (f"sshd: {user} {label}",), 10.0)


def session(pid: int, ppid: int, title: str = "sshd: alice@notty", uid: int = 1001) -> Proc:
    return Proc(pid, ppid, uid, (title,), 11.0)


def test_a_session_child_between_fork_and_exec_is_not_a_connection() -> None:
    procs = [monitor(200), session(201, 200), session(202, 201)]  # 202: forked, not yet exec'd
    found = process_table.find_connections(procs, "alice", 1001, [], 20.0, 0)
    assert [(c.pid, c.kind) for c in found] == [(201, "exec")]


def test_internal_sftp_child() -> None:
    procs = [monitor(200), session(201, 200), session(202, 201, "sshd: alice@internal-sftp")]
    found = process_table.find_connections(procs, "alice", 1001, [], 20.0, 0)
    assert [(c.pid, c.kind) for c in found] == [(201, "sftp")]


def test_parent_hidden_by_hidepid_still_counts() -> None:
    found = process_table.find_connections([session(201, 200)], "alice", 1001, [], 20.0, 0)
    assert [(c.pid, c.kind) for c in found] == [(201, "master")]


def test_parent_must_be_the_accounts_root_monitor() -> None:
    for parent in (
        monitor(200, user="bob"),
        Proc(200, 1, 1001, ("sshd: alice [priv]",), 1.0),  # not root
        Proc(200, 0, 0, ("/sbin/init",), 0.1),
    ):
        assert (
            process_table.find_connections([parent, session(201, 200)], "alice", 1001, [], 20, 0)
            == []
        )
    assert (
        process_table.find_connections(
            [session(201, 200, uid=0), monitor(200)], "alice", 1001, [], 20, 0
        )
        == []
    )


def test_agent_process_recognition() -> None:
    stream = Proc(5, 4, 1001, ("/usr/bin/python3", "/x/presence_agent.py", "stream"), 1.0)
    probe = Proc(5, 4, 1001, ("python3", "presence_agent.py", "probe", "--user", "a"), 1.0)
    other = Proc(5, 4, 1001, ("python3", "/x/presence_agent.py", "--version"), 1.0)
    editor = Proc(5, 4, 1001, ("vim", "presence_agent.py"), 1.0)
    assert process_table.is_agent_process(stream) and process_table.is_agent_process(probe)
    assert not process_table.is_agent_process(other) and not process_table.is_agent_process(editor)
    wrapper = Proc(4, 3, 1001, ("bash", "-c", "python3 presence_agent.py stream"), 1.0)
    assert process_table.is_agent_connection("notty", [wrapper, stream._replace(ppid=4)])
    assert not process_table.is_agent_connection("notty", [stream, editor._replace(pid=6)])
    assert not process_table.is_agent_connection("pts/0", [stream])
    assert not process_table.is_agent_connection("notty", [])


# --- peers ------------------------------------------------------------------------------

NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:A549 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 15126 1
   1: 0100007F:A549 0100007F:D4A2 01 00000000:00000000 00:00000000 00000000     0        0 41234 1
   2: 0A00020F:0016 6401A8C0:C350 01 00000000:00000000 00:00000000 00000000     0        0 41235 1
"""
NET_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0016 00000000000000000000000001000000:E2D4 01 00000000:00000000 00:00000000 00000000     0        0 51000 1
   1: 0000000000000000FFFF00000100007F:0016 0000000000000000FFFF00000F02000A:C351 01 00000000:00000000 00:00000000 00000000     0        0 51001 1
"""  # noqa: E501


def test_parse_net_tcp() -> None:
    peers = lines.parse_net_tcp(NET_TCP)
    assert peers[41234] == "127.0.0.1:54434"
    assert peers[41235] == "192.168.1.100:50000"
    six = lines.parse_net_tcp(NET_TCP6)
    assert six[51000] == "[::1]:58068"
    assert six[51001] == "10.0.2.15:50001"


def test_peer_from_environ() -> None:
    environ = b"HOME=/home/a\0SSH_CONNECTION=127.0.0.1 51234 127.0.0.1 22\0PATH=/bin\0"
    assert lines.peer_from_environ(environ) == "127.0.0.1:51234"
    assert lines.peer_from_environ(b"SSH_CONNECTION=::1 4000 ::1 22\0") == "[::1]:4000"
    assert lines.peer_from_environ(b"HOME=/\0") is None


def test_report_line_shape() -> None:
    found = [Connection(201, 100.5, "shell", True), Connection(301, 150.25, "forward", False)]
    line = lines.report(
        found, {201: "127.0.0.1:5000"}, 1_700_000_000.0, "2026-11-30T20:31:28.123456+00:00"
    )
    assert list(line) == ["connections", "waiting", "last_change", "sessions"]
    assert line["connections"] == 1 and line["waiting"] == 1
    assert line["sessions"] == [
        {
            "pid": 201,
            "from": "127.0.0.1:5000",
            "since": "2023-11-14T22:15:00.500000+00:00",
            "kind": "shell",
        },
        {"pid": 301, "from": None, "since": "2023-11-14T22:15:50.250000+00:00", "kind": "forward"},
    ]
    json.dumps(line)


# --- the file that is shipped -----------------------------------------------------------

SHIPPED = agent_zipapp()
"""The one file hosts install: a zipapp of devenv.agent.presence."""
SOURCES = {
    name: zipfile.ZipFile(io.BytesIO(SHIPPED)).read(name).decode()
    for name in zipfile.ZipFile(io.BytesIO(SHIPPED)).namelist()
}


def test_the_zipapp_holds_every_module_of_the_agent() -> None:
    modules = sorted(path.name for path in Path(presence.__file__).parent.glob("*.py"))
    assert sorted(SOURCES) == ["__main__.py"] + [
        f"presence/{name}" for name in modules if name != "__main__.py"
    ]


def test_the_zipapp_is_the_same_bytes_on_every_build() -> None:
    """A host's copy is rewritten only when it differs: a rebuild (another process, other
    file times) must not differ."""
    build = "import sys; from devenv.backends.ssh.agent_bundle import agent_zipapp as z; "
    build += "sys.stdout.buffer.write(z())"
    for module in Path(presence.__file__).parent.glob("*.py"):
        module.touch()
    again = subprocess.run([sys.executable, "-c", build], capture_output=True, check=True)
    assert again.stdout == SHIPPED


def test_agent_parses_as_python_3_8() -> None:
    for name, source in SOURCES.items():
        tree = ast.parse(source, feature_version=(3, 8))
        if name.startswith("presence/") and name != "presence/__init__.py":
            first = next(node for node in tree.body if isinstance(node, ast.ImportFrom))
            assert first.module == "__future__" and first.names[0].name == "annotations", name


def test_agent_imports_only_the_standard_library() -> None:
    for name, source in SOURCES.items():
        tree = ast.parse(source)
        modules = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        modules |= {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
        }
        allowed = set(sys.stdlib_module_names) | {"presence"}
        assert modules - {"__future__"} <= allowed, (name, modules)


def test_agent_avoids_apis_newer_than_3_8() -> None:
    """Names the 3.8 parser accepts but a 3.8 interpreter lacks."""
    tree = ast.Module(
        body=[node for source in SOURCES.values() for node in ast.parse(source).body],
        type_ignores=[],
    )
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not attributes & {"removeprefix", "removesuffix", "UTC", "cache", "is_relative_to"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "zip":
            assert not node.keywords, "zip(strict=) is 3.10+"
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
            assert not isinstance(node.args[1], ast.BinOp), "isinstance(x, A | B) is 3.10+"
    # Its own environment (SSH_ORIGINAL_COMMAND included) is never read: only argv.
    assert not attributes & {"environ", "environb", "getenv"}


def interpreters() -> list[str]:
    """The host's Python, and any real Python 3.8 around (the oldest the agent promises)."""
    found = ["/usr/bin/python3"] if Path("/usr/bin/python3").exists() else [sys.executable]
    candidates = {
        shutil.which("python3.8"),
        *Path.home().glob(".pyenv/versions/3.8*/bin/python3.8"),
    }
    for candidate in sorted(str(c) for c in candidates if c):
        check = "import sys; print(sys.version_info[:2] == (3, 8))"
        try:
            is_38 = subprocess.run([candidate, "-c", check], capture_output=True, text=True)
        except OSError:
            continue
        if is_38.stdout.strip() == "True":  # pyenv shims may point nowhere
            found.append(candidate)
    return found


@pytest.fixture
def shipped(tmp_path: Path) -> str:
    """The zipapp where a host has it: a file named like a script."""
    path = tmp_path / "presence_agent-5.py"
    path.write_bytes(SHIPPED)
    return str(path)


@pytest.mark.parametrize("python", interpreters())
def test_agent_runs(python: str, shipped: str) -> None:
    version = subprocess.run(
        [python, shipped, "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == presence.AGENT_VERSION
    probe = subprocess.run(
        [python, shipped, "probe", "--user", "root"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    line = json.loads(probe.stdout)
    assert list(line) == ["connections", "waiting", "last_change", "sessions", "jobs"]


def test_agent_refuses_other_commands(shipped: str) -> None:
    for argv in (["cat", "/etc/passwd"], ["stream"], ["probe", "--user", "dvt-no-such-user"]):
        result = subprocess.run(
            [sys.executable, shipped, *argv], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 2, (argv, result)
        assert result.stdout == ""


# --- sessions ~/.ssh/rc recorded ----------------------------------------------------


def test_a_recorded_session_no_connection_accounts_for_is_short() -> None:
    """Boot at wall 1000: a connection that began at boot + 5 s is wall 1005."""
    counted = Connection(201, 5.0, "exec", True)
    waiting = Connection(202, 5.0, "exec", False)
    pending = {"a": 1005.02}
    assert process_table.settle_logins(pending, [], 1000.0) == ([1005.02], {})
    assert process_table.settle_logins(pending, [counted], 1000.0) == ([], {})
    assert process_table.settle_logins(pending, [waiting], 1000.0) == ([], {"a": 1005.02})
    # A connection that began after the session was recorded is another one.
    later = Connection(203, 6.0, "exec", True)
    assert process_table.settle_logins(pending, [later], 1000.0) == ([1005.02], {})
