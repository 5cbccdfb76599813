"""server.json and ready.json as the backend writes them and the instance server reads
them: one ``ServerConfig`` (a dataclass, standard library only, since the server runs
once per environment and never imports pydantic), checked by hand when it is read.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devenv.backends.local.files import (
    LOG_FILE,
    SERVER_MODULE,
    ReadyInfo,
    ServerConfig,
    ready_json,
)
from devenv.backends.local.server import BoundedLogHandler

REQUIRED: dict[str, Any] = {
    "instance_id": "t1",
    "workspace": "/srv/work space",
    "username": "someone",
    "user_public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG0 user",
    "internal_public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG1 devenv",
    "host_key": "/srv/host_ed25519",
}


def read(document: dict[str, Any]) -> ServerConfig | None:
    """What the server makes of one server.json (None: refused)."""
    try:
        return ServerConfig.from_json(json.dumps(document))
    except ValueError:
        return None


def test_what_the_backend_writes_the_server_reads_as_is() -> None:
    written = ServerConfig(
        instance_id="tok-1",
        workspace=Path("/home/u/envs/a/workspace"),
        username="u",
        user_public_key=REQUIRED["user_public_key"],
        internal_public_key=REQUIRED["internal_public_key"],
        host_key=Path("/home/u/envs/a/instances/tok-1/host_ed25519"),
        owner="alice",
        min_connection_duration=2.5,
        shell="/bin/bash",
        login_timeout=12,
        keepalive_interval=0.5,
        keepalive_count_max=7,
    )
    assert ServerConfig.from_json(written.to_json()) == written
    defaults = read(REQUIRED)
    assert defaults is not None and ServerConfig.from_json(defaults.to_json()) == defaults
    assert (defaults.owner, defaults.min_connection_duration, defaults.shell) == (
        None,
        0.0,
        "/bin/sh",
    )


@pytest.mark.parametrize(
    ("change", "accepted"),
    [
        ({}, True),
        ({"owner": None}, True),
        ({"owner": "bob"}, True),
        ({"min_connection_duration": 0}, True),
        ({"min_connection_duration": -0.1}, False),
        ({"login_timeout": 0}, False),
        ({"login_timeout": 0.01}, True),
        ({"login_timeout": -1}, False),
        ({"keepalive_interval": 0}, False),
        ({"keepalive_interval": 3}, True),
        ({"keepalive_count_max": 0}, False),
        ({"keepalive_count_max": 1}, True),
        ({"keepalive_count_max": 2.5}, False),
        ({"instance_id": 5}, False),
        ({"owner": 5}, False),
        ({"workspace": None}, False),
        ({"host_key": ["/a"]}, False),
        ({"shell": None}, False),
        ({"login_timeout": None}, False),
        ({"keepalive_count_max": None}, False),
        ({"unknown": "ignored"}, True),
    ],
)
def test_values_are_checked_when_the_server_reads_them(
    change: dict[str, Any], accepted: bool
) -> None:
    assert (read({**REQUIRED, **change}) is not None) == accepted


@pytest.mark.parametrize("missing", list(REQUIRED))
def test_a_missing_required_field_is_refused_naming_it(missing: str) -> None:
    document = dict(REQUIRED)
    del document[missing]
    with pytest.raises(ValueError, match=f"server.json: {missing} is missing"):
        ServerConfig.from_json(json.dumps(document))


@pytest.mark.parametrize("text", ["[]", "null", '"server"', "{"])
def test_not_an_object_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        ServerConfig.from_json(text)


def test_ready_json_is_what_the_backend_reads() -> None:
    ready = ReadyInfo.model_validate_json(ready_json(4321, 2222))
    assert (ready.pid, ready.port) == (4321, 2222)


def test_the_instance_server_loads_neither_pydantic_nor_the_workflows() -> None:
    """Every instance is one more server process: what it imports is paid per instance."""
    probe = (
        f"import sys, {SERVER_MODULE}; "
        "print(' '.join(sorted(name for name in sys.modules if name.startswith("
        "('pydantic', 'temporalio', 'devenv.models.state', 'devenv.config', 'yaml')))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.split() == []


def test_server_log_is_moved_aside_before_it_passes_its_bound(tmp_path: Path) -> None:
    path = tmp_path / LOG_FILE
    path.write_text("from the server's stderr\n")
    handler = BoundedLogHandler(path, max_bytes=200)
    logger = logging.Logger("bounded-test")
    logger.addHandler(handler)
    try:
        for index in range(40):
            logger.warning("line %02d %s", index, "x" * 20)
    finally:
        handler.close()
    current, backup = path.read_text(), Path(f"{path}.1").read_text()
    assert len(current) < 200 and len(backup) < 200
    assert current.endswith("line 39 " + "x" * 20 + "\n")
    assert sorted(tmp_path.iterdir()) == [path, Path(f"{path}.1")]
