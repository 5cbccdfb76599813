"""Groups (``group:``, ``keep_alive: group``, ``ps --group``): bad input is one line, exit
2, nothing created; and the pure rule of a group's presence (``devenv.models.group``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devenv.cli.app import app
from devenv.config.loader import load_config
from devenv.errors import UserError
from devenv.models.group import GroupInput, GroupPresence, presence_of, take
from devenv.models.state import EnvSpec, EnvState, Status
from devenv.models.status import EnvironmentStatus

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "devenv-home"
    monkeypatch.setenv("DEVENV_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("DEVENV_TEMPORAL_ADDRESS", "127.0.0.1:1")  # reaching it is a bug
    return home


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "group: GPU Work\n",
            "group: invalid value 'GPU Work': 'GPU Work' is not a valid name; accepted: 1 to 40",
        ),
        ("group: -x\n", "group: invalid value '-x'"),
        ("group: [a]\n", "group: invalid value"),
        (
            "group: gpu\nkeep_alive: always\n",
            "keep_alive: invalid value 'always': accepted: self or group",
        ),
        (
            "keep_alive: group\n",
            "keep_alive: 'group' set without group; accepted: keep_alive: group only together "
            "with group: NAME",
        ),
    ],
)
def test_bad_group_keys_are_one_line_naming_key_value_and_what_is_accepted(
    tmp_path: Path, isolated_home: Path, text: str, expected: str
) -> None:
    path = tmp_path / "dev.yml"
    path.write_text("type: dev-environment\nname: my-env\n" + text)
    with pytest.raises(UserError) as caught:
        load_config(path)
    assert expected in str(caught.value)
    result = CliRunner().invoke(app, ["start", str(path)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "my-env" not in lines[0], "a rule across keys must not show the file's content"
    assert not isolated_home.exists(), "nothing may be created for bad input"


def test_a_group_and_keep_alive_are_read(tmp_path: Path) -> None:
    path = tmp_path / "dev.yml"
    path.write_text("type: dev-environment\ngroup: gpu-work\nkeep_alive: group\n")
    config = load_config(path)
    assert (config.group, config.keep_alive) == ("gpu-work", "group")
    path.write_text("type: dev-environment\n")
    assert (load_config(path).group, load_config(path).keep_alive) == (None, "self")


@pytest.mark.parametrize("group", ["GPU", "a b", 'x" OR DevEnvName="y', ""])
def test_ps_refuses_a_bad_group_before_contacting_the_server(group: str) -> None:
    result = CliRunner().invoke(app, ["ps", "--group", group])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: group: "), result.output
    assert "accepted: 1 to 40 lowercase letters" in lines[0]


def row(
    name: str, *, owner: str = "alice", group: str | None = "gpu", **fields: object
) -> EnvironmentStatus:
    base: dict[str, object] = {
        "name": name,
        "workflow_id": f"devenv-{name}",
        "backend": "local",
        "status": Status.RUNNING,
        "activity": "idle",
        "connections": 0,
        "inactivity_duration": 3600,
        "max_duration": None,
        "idle_since": T0,
        "deadline": None,
        "termination_reason": None,
        "owner": owner,
        "group": group,
    }
    return EnvironmentStatus.model_validate(base | fields)


ASKER = GroupInput(workflow_id="devenv-gpu", owner="alice", group="gpu")


def test_presence_is_a_peer_in_use_else_the_latest_peer_idle_since() -> None:
    later = T0 + timedelta(minutes=5)
    rows = [
        row("gpu", activity="active", connections=1, idle_since=None),  # the asker itself
        row("cpu", idle_since=later),
        row("old", idle_since=T0),
        row("bobs", owner="bob", activity="active", connections=1, idle_since=None),
        row("other", group="web", activity="active", connections=1, idle_since=None),
        row("gone", status=Status.TERMINATED, activity=None, idle_since=None),
    ]
    assert presence_of(rows, ASKER) == GroupPresence(peer="cpu", idle_since=later, peers=2)
    rows.append(row("laptop", activity="active", connections=1, idle_since=None))
    assert presence_of(rows, ASKER) == GroupPresence(in_use="laptop", peers=3)
    assert presence_of([], ASKER) == GroupPresence()


def state(idle_since: datetime) -> EnvState:
    spec = EnvSpec(
        name="gpu",
        user_public_key="ssh-ed25519 AAAA",
        inactivity_duration=900,
        group="gpu",
        keep_alive="group",
    )
    return EnvState(spec=spec, status=Status.RUNNING, idle_since=idle_since, connections=0)


def clock(moment: datetime) -> str:
    return moment.strftime("%H:%M:%SZ")


def test_the_idle_clock_moves_to_the_groups_latest_presence_only_forwards() -> None:
    now = T0 + timedelta(minutes=15)
    s = state(T0)
    seen = GroupPresence(in_use="cpu", peers=1)
    assert take(s, seen, now, clock) == "kept alive by group gpu: cpu is in use"
    assert s.idle_since == now

    s = state(T0)
    seen = GroupPresence(peer="cpu", idle_since=T0 + timedelta(minutes=7), peers=1)
    told = take(s, seen, now, clock)
    assert told == "kept alive by group gpu: cpu was in use until 10:07:00Z"
    assert s.idle_since == T0 + timedelta(minutes=7)

    s = state(T0 + timedelta(minutes=8))  # this one was used later than the group
    assert take(s, seen, now, clock) is None and s.idle_since == T0 + timedelta(minutes=8)
    s = state(T0)  # the group too has been idle past the threshold: nothing kept
    long_ago = GroupPresence(peer="cpu", idle_since=T0 + timedelta(minutes=1), peers=1)
    assert take(s, long_ago, T0 + timedelta(minutes=30), clock) is None
    assert s.idle_since == T0
    assert take(state(T0), GroupPresence(), now, clock) is None
