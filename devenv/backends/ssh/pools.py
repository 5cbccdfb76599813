"""Host pools: the ssh hosts an admin registered on the server, named by users.

Which hosts exist, which admin key logs in to them and where their host keys are
pinned is the server admin's business; users only name a pool
(``ssh_config: {pool: gpu-boxes}``) and the worker resolves it here. The registry is
one 0600 JSON file under DEVENV_HOME, changed under a lock and written atomically
(as the users file); it holds paths, never key material.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from devenv.backends.ssh.config import CHECK_FILES, POOL_ACCEPTED, POOL_PATTERN, SshSection
from devenv.errors import InvalidValueError, UserError
from devenv.keys import file_lock, private_dir, write_private_file
from devenv.settings import Settings

POOLS_FILE = "host-pools.json"


class PoolError(UserError):
    """The registry cannot be read or changed, or names no such pool (one line)."""


class HostPool(BaseModel):
    """One registered pool: the ``ssh_config`` keys a user may not set, as the admin gave them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    hosts: list[str]
    port: int = 22
    user: str = "root"
    identity_file: str
    known_hosts: str
    price_per_hour: float = 0
    created_at: datetime

    def section(self, purge_workspace: bool = False) -> SshSection:
        """The ``ssh_config`` this pool stands for (files checked when used)."""
        return SshSection.model_validate(
            {
                "hosts": self.hosts,
                "port": self.port,
                "user": self.user,
                "identity_file": self.identity_file,
                "known_hosts": self.known_hosts,
                "price_per_hour": self.price_per_hour,
                "purge_workspace": purge_workspace,
            },
            context={CHECK_FILES: False},
        )


class PoolFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    pools: list[HostPool] = Field(default_factory=list)


def pools_file(settings: Settings) -> Path:
    return settings.home / POOLS_FILE


def check_pool_name(name: str) -> str:
    if not POOL_PATTERN.fullmatch(name):
        shown = repr(name) if len(name) <= 40 else repr(name[:37]) + "..."
        raise InvalidValueError(f"NAME: invalid value {shown}: accepted: {POOL_ACCEPTED}")
    return name


def load_pools(settings: Settings) -> list[HostPool]:
    """Every registered pool, by name (none when nothing was registered)."""
    path = pools_file(settings)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as problem:
        raise PoolError(f"{path}: cannot read the host pools ({problem.strerror})") from None
    try:
        data = PoolFile.model_validate_json(raw)
    except ValidationError:
        raise PoolError(
            f"{path}: not a devenv host pools file; restore it or move it away"
        ) from None
    return sorted(data.pools, key=lambda pool: pool.name)


def get_pool(settings: Settings, name: str) -> HostPool:
    """The pool ``name``; PoolError naming the registered ones otherwise."""
    pools = load_pools(settings)
    for pool in pools:
        if pool.name == name:
            return pool
    known = ", ".join(pool.name for pool in pools) or "none yet"
    raise PoolError(
        f"ssh_config.pool: no host pool named {name!r} on this server (registered: {known}); "
        "its admin adds one with `devenv hosts add`"
    )


def resolve(settings: Settings, section: SshSection) -> SshSection:
    """``section`` itself, or the pool it names as a full section (hosts, login, files)."""
    if section.pool is None:
        return section
    return get_pool(settings, section.pool).section(section.purge_workspace)


def add_pool(settings: Settings, pool: HostPool, *, replace: bool = False) -> None:
    """Register ``pool`` (already checked by the caller); a taken name needs ``replace``."""
    path = pools_file(settings)
    private_dir(path.parent)
    with file_lock(path):
        pools = load_pools(settings)
        if any(existing.name == pool.name for existing in pools) and not replace:
            raise PoolError(
                f"a host pool named {pool.name!r} exists already; `devenv hosts add "
                f"{pool.name} ... --replace` to change it"
            )
        _write(path, [existing for existing in pools if existing.name != pool.name] + [pool])


def remove_pool(settings: Settings, name: str) -> None:
    """Forget the pool ``name`` (environments running on its hosts keep running)."""
    path = pools_file(settings)
    private_dir(path.parent)
    with file_lock(path):
        pools = load_pools(settings)
        if not any(pool.name == name for pool in pools):
            known = ", ".join(pool.name for pool in pools) or "none"
            raise PoolError(f"NAME: no host pool named {name!r} (registered: {known})")
        _write(path, [pool for pool in pools if pool.name != name])


def new_pool(
    name: str,
    *,
    hosts: list[str],
    port: int,
    user: str,
    identity_file: Path,
    known_hosts: Path,
    price_per_hour: float,
) -> HostPool:
    """A pool validated as an ``ssh_config`` would be (files checked, paths absolute);
    InvalidValueError in one line naming the option otherwise."""
    check_pool_name(name)
    from devenv.models.problems import describe_validation_error

    try:
        section = SshSection.model_validate(
            {
                "hosts": hosts,
                "port": port,
                "user": user,
                "identity_file": str(identity_file),
                "known_hosts": str(known_hosts),
                "price_per_hour": price_per_hour,
            }
        )
    except ValidationError as problem:
        line = describe_validation_error(problem, SshSection)
        raise InvalidValueError(_as_options(line)) from None
    assert section.hosts is not None
    assert section.identity_file is not None and section.known_hosts is not None
    return HostPool(
        name=name,
        hosts=section.hosts,
        port=section.port,
        user=section.user,
        identity_file=str(section.identity_file),
        known_hosts=str(section.known_hosts),
        price_per_hour=section.price_per_hour,
        created_at=datetime.now(UTC),
    )


def _as_options(line: str) -> str:
    """'hosts: ...' as the command's option ('--host: ...')."""
    key, sep, rest = line.partition(":")
    key = key.split(".")[0]
    option = {"hosts": "--host"}.get(key, "--" + key.replace("_", "-"))
    return f"{option}:{rest}" if sep else line


def _write(path: Path, pools: list[HostPool]) -> None:
    body = PoolFile(pools=sorted(pools, key=lambda pool: pool.name)).model_dump(mode="json")
    write_private_file(path, (json.dumps(body, indent=2) + "\n").encode())
