"""``backend: ssh``: the ``ssh_config`` section (dstack's shape), validated before anything starts.

Light on purpose: the CLI and the SDK import it to validate a file, so no asyncssh
here. The key files are checked for existence when a configuration is read (so
``devenv start`` fails in one line); the worker re-reads the section without that
check (``CHECK_FILES``) and reports unreadable files itself, naming the key.

On a team server the hosts and the admin's files are the admin's: a registered pool
(``ssh_config: {pool: NAME}``, resolved by the worker through ``pools``) stands for the
keys marked admin-only here, which API users who are not admins may not send.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from devenv.models.config import ADMIN_ONLY, EnvironmentConfig

DEFAULT_PORT = 22
MAX_HOSTS = 100
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
POOL_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$|^[a-z]$")
POOL_ACCEPTED = "1 to 40 lowercase letters, digits and hyphens, starting with a letter"
CHECK_FILES = "check_files"
"""Validation context key: False skips the file checks (the worker, reading history)."""

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_BRACKETED = re.compile(r"^\[([0-9A-Fa-f:.]+)\](?::([0-9]{1,5}))?$")
_HOST_PORT = re.compile(r"^([^:\[\]]+):([0-9]{1,5})$")
USER_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
HOST_ACCEPTED = (
    "accepted: a host name or IP address, optionally with :PORT "
    "(gpu-1.lan, 10.0.0.7:2222, [2001:db8::7]:22)"
)
_PUBLIC_KEY_PREFIXES = (b"ssh-", b"ecdsa-", b"sk-")


def parse_host(text: str) -> tuple[str, int | None]:
    """``host`` / ``host:port`` / ``[v6]:port`` -> (host, port or None); ValueError otherwise.

    The host ends up in ssh commands and the user's ssh config: only names and
    addresses pass, never spaces, options (a leading ``-``) or shell characters.
    """
    bracketed = _BRACKETED.fullmatch(text)
    if bracketed:
        host, port_text = bracketed.group(1), bracketed.group(2)
        _ip(host, 6, text)
    elif text.count(":") > 1:
        host, port_text = text, None
        _ip(host, 6, text)
    else:
        host_port = _HOST_PORT.fullmatch(text)
        host, port_text = (host_port.group(1), host_port.group(2)) if host_port else (text, None)
        if not _HOSTNAME.fullmatch(host):
            raise ValueError(f"{text!r} is not a host; {HOST_ACCEPTED}")
    if port_text is None:
        return host, None
    port = int(port_text)
    if not 0 < port <= 65_535:
        raise ValueError(f"{text!r} has no valid port (1-65535); {HOST_ACCEPTED}")
    return host, port


def _ip(host: str, version: int, text: str) -> None:
    try:
        if ipaddress.ip_address(host).version == version:
            return
    except ValueError:
        pass
    raise ValueError(f"{text!r} is not a host; {HOST_ACCEPTED}")


def _host(text: str) -> str:
    parse_host(text)
    return text


def _one_or_many(value: object) -> object:
    """``hosts: gpu-1.lan`` reads as a list of one."""
    return [value] if isinstance(value, str) else value


def _check_file(path: Path, info: ValidationInfo, what: str, missing_hint: str) -> None:
    if info.context is not None and not info.context.get(CHECK_FILES, True):
        return
    if not path.exists():
        raise ValueError(f"no such file ({path}); {missing_hint}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file; accepted: {what}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{path} is not readable by this user; accepted: {what}")


class SshSection(BaseModel):
    """Which hosts devenv may create environments on, and how it logs in to administer them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pool: str | None = Field(
        default=None,
        description="A host pool the server's admin registered (`devenv hosts add`): its "
        "hosts, admin login, key and known_hosts. Instead of the admin-only keys below, which "
        "are then refused.",
        exclude_if=lambda pool: pool is None,
    )
    hosts: Annotated[
        list[Annotated[str, AfterValidator(_host)]] | None, BeforeValidator(_one_or_many)
    ] = Field(
        default=None,
        validate_default=True,
        min_length=1,
        max_length=MAX_HOSTS,
        description="Hosts to choose from, a list or one (`host`, `host:port`, "
        "`[v6addr]:port`: names and addresses only); devenv picks the least loaded one that "
        "answers. Required without `pool`. Admin-only.",
        json_schema_extra={ADMIN_ONLY: True},
        exclude_if=lambda hosts: hosts is None,
    )
    port: int = Field(
        default=DEFAULT_PORT,
        description="SSH port (1-65535) of hosts given without one. Admin-only.",
        json_schema_extra={ADMIN_ONLY: True},
    )
    user: str = Field(
        default="root",
        description="The admin login: root, or an account with passwordless sudo. Admin-only.",
        json_schema_extra={ADMIN_ONLY: True},
    )
    identity_file: Path | None = Field(
        default=None,
        validate_default=True,
        description="The admin's private key (unencrypted; must exist); read by the devenv "
        "worker. Required without `pool`. Admin-only.",
        json_schema_extra={ADMIN_ONLY: True},
        exclude_if=lambda path: path is None,
    )
    known_hosts: Path | None = Field(
        default=DEFAULT_KNOWN_HOSTS,
        validate_default=True,
        description="An OpenSSH known_hosts file (must exist) where the hosts' keys are "
        "pinned; a host not in it is refused (never trusted on first use). Admin-only.",
        json_schema_extra={ADMIN_ONLY: True},
        exclude_if=lambda path: path is None,
    )
    purge_workspace: bool = Field(
        default=False,
        description="Delete the account and its home at termination (kept by default).",
    )
    price_per_hour: float = Field(
        default=0,
        ge=0,
        description="USD per hour an environment on these hosts costs, for `devenv ps`'s "
        "COST column (0: free). Admin-only.",
        json_schema_extra={ADMIN_ONLY: True},
        # Absent at 0: the section a configuration without it carries stays as it was.
        exclude_if=lambda price: price == 0,
    )

    @field_validator("pool")
    @classmethod
    def _pool(cls, value: str | None) -> str | None:
        if value is not None and not POOL_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a host pool name; accepted: {POOL_ACCEPTED}")
        return value

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            _required_without_pool(info)
            return None
        seen: set[tuple[str, int | None]] = set()
        for text in value:
            parsed = parse_host(text)
            if parsed in seen:
                raise ValueError(f"{text!r} is listed twice; list each host once")
            seen.add(parsed)
        return value

    @field_validator("port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 0 < value <= 65_535:
            raise ValueError("accepted: a port number 1-65535")
        return value

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not USER_PATTERN.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a user name; accepted: root, or a login name "
                "(letters, digits, '_', '.', '-'; at most 32)"
            )
        return value

    @field_validator("identity_file")
    @classmethod
    def _identity_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            _required_without_pool(info)
            return None
        path = _expanded(value)
        what = "the admin's private key file (e.g. ~/.ssh/id_ed25519)"
        _check_file(path, info, what, f"accepted: {what}")
        if info.context is None or info.context.get(CHECK_FILES, True):
            with path.open("rb") as handle:
                if handle.read(16).startswith(_PUBLIC_KEY_PREFIXES):
                    raise ValueError(
                        f"{path} is a public key; accepted: the private key "
                        f"(e.g. {path.with_suffix('') if path.suffix == '.pub' else path})"
                    )
        return path

    @field_validator("known_hosts")
    @classmethod
    def _known_hosts(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None or info.data.get("pool") is not None:
            return None  # a pool's pins are the admin's (given with the key, refused above)
        path = _expanded(value)
        hint = (
            "create it with each host's key after checking its fingerprint: "
            f"ssh-keyscan -p PORT HOST >> {path}"
        )
        _check_file(path, info, "an OpenSSH known_hosts file", hint)
        return path

    @model_validator(mode="after")
    def _pool_alone(self) -> SshSection:
        """A pool names the hosts and the admin login: the keys that would too are refused."""
        if self.pool is not None:
            given = [key for key in self.model_fields_set if key in admin_only_keys(SshSection)]
            if given:
                listed = ", ".join(sorted(given))
                raise ValueError(
                    f"pool {self.pool!r} names the hosts and the admin login already; "
                    f"accepted: either pool, or {listed} (not both)"
                )
        return self

    def endpoints(self) -> list[tuple[str, int]]:
        """(host, port) of every host, in the order given (none for a pool: resolve it)."""
        found = []
        for text in self.hosts or []:
            host, port = parse_host(text)
            found.append((host, port or self.port))
        return found


def _required_without_pool(info: ValidationInfo) -> None:
    """hosts and identity_file are required unless a pool gives them; said as for any
    missing key ('required key is missing')."""
    if info.data.get("pool") is None:
        raise PydanticCustomError("missing", "Field required")


def admin_only_keys(model: type[BaseModel]) -> list[str]:
    """The keys of ``model`` that name the server's hosts or files: only an admin (or the
    server's own OS user) may set them; API users name a pool instead."""
    return [
        name
        for name, field in model.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get(ADMIN_ONLY)
    ]


def _expanded(value: Path) -> Path:
    text = str(value)
    if not text or any(char in text for char in "\n\r\x00"):
        raise ValueError("accepted: a file path")
    return Path(text).expanduser().absolute()


class SshConfig(EnvironmentConfig):
    """Environments as Unix accounts on existing hosts, administered over SSH."""

    backend: Literal["ssh"] = Field(
        default="ssh", description="A Unix account per environment on an existing sshd host."
    )
    ssh_config: SshSection = Field(description="The hosts and the admin login.")

    suspendable: ClassVar[bool] = True
    """``on_idle: suspend`` works: the account is locked with its home kept."""

    def activity_task_queue(self) -> str | None:
        """The shared queue: any worker with the admin key can reach the hosts."""
        return None

    def backend_section(self) -> dict[str, Any]:
        """The section as JSON (paths expanded); paths only, never key material. A pool
        travels as its name: the worker resolves it (``pools``) from the server's registry."""
        section = self.ssh_config
        if section.pool is not None:
            return {"pool": section.pool, "purge_workspace": section.purge_workspace}
        return section.model_dump(mode="json")
