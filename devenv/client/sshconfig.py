"""The generated OpenSSH config: one Host entry per environment, host key pinned.

Each environment gets its own small file under ``ssh/hosts/`` (its config entry
and its known_hosts line), included from ``ssh/config``; adding or removing an
environment never rewrites another's entry.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from devenv import dead_peer
from devenv.errors import UserError
from devenv.keys import private_dir
from devenv.settings import Settings

SERVER_ALIVE_INTERVAL = dead_peer.INTERVAL_SECONDS
SERVER_ALIVE_COUNT_MAX = dead_peer.openssh_count_max()


def _hosts_dir(settings: Settings) -> Path:
    return settings.ssh_dir / "hosts"


def host_key_alias(name: str) -> str:
    return f"devenv-{name}"


class Reachable(Protocol):
    """What an entry needs: an ``InstanceInfo``, or the API's ``SshAccess`` (remote mode)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def username(self) -> str: ...
    @property
    def host_public_key(self) -> str: ...


def write_entry(settings: Settings, name: str, instance: Reachable, identity: Path) -> Path:
    """Write (or replace) the entry for ``name``; returns the config file to pass to ssh -F."""
    hosts = private_dir(_hosts_dir(settings))
    known_hosts = hosts / f"{name}.known_hosts"
    _atomic_write(known_hosts, f"{host_key_alias(name)} {instance.host_public_key}\n")
    entry = "\n".join(
        [
            f"Host {name}",
            f"    HostName {instance.host}",
            f"    Port {instance.port}",
            f"    User {instance.username}",
            f"    IdentityFile {quote_path(identity, tokens=True)}",
            "    IdentitiesOnly yes",
            f"    HostKeyAlias {host_key_alias(name)}",
            f"    UserKnownHostsFile {quote_path(known_hosts, tokens=True)}",
            "    StrictHostKeyChecking yes",
            f"    ServerAliveInterval {SERVER_ALIVE_INTERVAL}",
            f"    ServerAliveCountMax {SERVER_ALIVE_COUNT_MAX}",
            "",
        ]
    )
    _atomic_write(hosts / f"{name}.conf", entry)
    return ensure_main_config(settings)


def remove_entry(settings: Settings, name: str) -> None:
    for suffix in (".conf", ".known_hosts"):
        (_hosts_dir(settings) / f"{name}{suffix}").unlink(missing_ok=True)


def ensure_main_config(settings: Settings) -> Path:
    private_dir(_hosts_dir(settings))
    text = (
        "# Written by devenv; one file per environment.\n"
        f"Include {quote_path(_hosts_dir(settings) / '*.conf')}\n"
    )
    if not settings.ssh_config.exists() or settings.ssh_config.read_text() != text:
        _atomic_write(settings.ssh_config, text)
    return settings.ssh_config


def include_in_user_config(settings: Settings) -> bool:
    """Prepend ``Include`` of devenv's config to ~/.ssh/config (for `ssh NAME` and VS Code).

    Returns True when the line was added now. Include must come before any Host
    block to apply everywhere, hence prepended. Only for a home that may edit the
    user's config (``Settings.ssh_include``: the default home, or DEVENV_SSH_INCLUDE).
    """
    if not settings.ssh_include:
        return False
    user_dir = Path.home() / ".ssh"
    user_config = user_dir / "config"
    line = f"Include {quote_path(settings.ssh_config)}"
    existing = user_config.read_text() if user_config.exists() else ""
    if line in existing.splitlines():
        return False
    private_dir(user_dir)
    # Through a symlink (dotfiles), not over it.
    target = user_config.resolve() if user_config.is_symlink() else user_config
    _atomic_write(target, f"{line}\n\n{existing}" if existing else f"{line}\n")
    return True


def is_included(settings: Settings) -> bool:
    """Whether ~/.ssh/config already includes this home's config."""
    user_config = Path.home() / ".ssh" / "config"
    try:
        lines = user_config.read_text().splitlines()
    except OSError:
        return False
    return f"Include {quote_path(settings.ssh_config)}" in lines


def check_paths(settings: Settings, identity: Path) -> None:
    """Refuse, before anything starts, paths an OpenSSH config cannot express."""
    for path in (settings.ssh_config, identity):
        quote_path(path)


def quote_path(path: Path, *, tokens: bool = False) -> str:
    """``path`` as one OpenSSH config argument: quoted when it has spaces; ``%`` doubled
    for options that expand ``%`` tokens (IdentityFile, UserKnownHostsFile)."""
    text = str(path)
    if any(char in text for char in '"\n\r'):
        raise UserError(
            f"{text!r}: a path with quotes or line breaks cannot be written to an ssh config; "
            "choose another DEVENV_HOME (or HOME)"
        )
    if tokens:
        text = text.replace("%", "%%")
    return f'"{text}"' if any(char.isspace() for char in text) else text


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
