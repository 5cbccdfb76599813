"""Every host this machine's workers provisioned on, so ``devenv gc`` knows where to look.

``DEVENV_HOME/ssh-hosts.json`` (0600): how to administer each host and devenv's folder
there. Paths only, never key material. Written before anything is created on a host.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ValidationError

from devenv.backends.ssh.admin import AdminAccess, Endpoint
from devenv.backends.ssh.host_setup import DEFAULT_HOST_DIR
from devenv.keys import file_lock, private_dir, write_private_file
from devenv.settings import Settings

HOSTS_FILE = "ssh-hosts.json"


class AdminTarget(BaseModel):
    """A host and how devenv administers it (the admin key stays a file on the worker)."""

    host: str
    port: int
    admin_user: str
    identity_file: str
    known_hosts: str
    host_dir: str = DEFAULT_HOST_DIR

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.host, self.port)

    @property
    def access(self) -> AdminAccess:
        return AdminAccess(self.admin_user, Path(self.identity_file), Path(self.known_hosts))


class UsedHost(AdminTarget):
    """One host in HOSTS_FILE."""

    @property
    def key(self) -> tuple[str, int, str]:
        return self.host, self.port, self.host_dir


def hosts_file(settings: Settings) -> Path:
    return settings.home / HOSTS_FILE


def used_hosts(settings: Settings) -> list[UsedHost]:
    """The hosts in HOSTS_FILE (none if it is missing; unreadable entries are skipped)."""
    try:
        raw = json.loads(hosts_file(settings).read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as problem:
        raise OSError(f"cannot read {hosts_file(settings)}: {problem}") from None
    hosts = []
    for item in raw.get("hosts", []) if isinstance(raw, dict) else []:
        try:
            hosts.append(UsedHost.model_validate(item))
        except ValidationError:
            continue
    return hosts


def remember_host(settings: Settings, entry: UsedHost) -> None:
    """Add or refresh ``entry`` in HOSTS_FILE (atomic, under an flock: many workers)."""
    path = hosts_file(settings)
    if entry in _readable_hosts(settings):
        return
    private_dir(path.parent)
    with file_lock(path):
        hosts = [host for host in _readable_hosts(settings) if host.key != entry.key]
        hosts.append(entry)
        body = json.dumps({"hosts": [host.model_dump() for host in hosts]}, indent=2) + "\n"
        write_private_file(path, body.encode())


def _readable_hosts(settings: Settings) -> list[UsedHost]:
    try:
        return used_hosts(settings)
    except OSError:
        return []  # rewritten whole: a damaged file must not stop provisioning
