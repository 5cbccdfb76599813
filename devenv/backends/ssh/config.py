"""``backend: ssh``: the ``ssh_config`` section (dstack's shape), validated before anything starts.

Light on purpose: the CLI and the SDK import it to validate a file, so no asyncssh
here. The key files are checked for existence when a configuration is read (so
``devenv start`` fails in one line); the worker re-reads the section without that
check (``CHECK_FILES``) and reports unreadable files itself, naming the key.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from devenv.config.common import EnvironmentConfig

DEFAULT_PORT = 22
MAX_HOSTS = 100
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

    hosts: Annotated[list[Annotated[str, AfterValidator(_host)]], BeforeValidator(_one_or_many)] = (
        Field(
            min_length=1,
            max_length=MAX_HOSTS,
            description="Hosts to choose from (`host` or `host:port`); devenv picks the least "
            "loaded one that answers.",
        )
    )
    port: int = Field(default=DEFAULT_PORT, description="SSH port of hosts given without one.")
    user: str = Field(
        default="root",
        description="The admin login: root, or an account with passwordless sudo.",
    )
    identity_file: Path = Field(
        description="The admin's private key (unencrypted); read by the devenv worker.",
    )
    known_hosts: Path = Field(
        default="~/.ssh/known_hosts",
        validate_default=True,
        description="Where the hosts' keys are pinned; a host not in it is refused "
        "(never trusted on first use).",
    )
    purge_workspace: bool = Field(
        default=False,
        description="Delete the account and its home at termination (kept by default).",
    )
    price_per_hour: float = Field(
        default=0,
        ge=0,
        description="USD per hour an environment on these hosts costs, for `devenv ps`'s "
        "COST column (0: free).",
        # Absent at 0: the section a configuration without it carries stays as it was.
        exclude_if=lambda price: price == 0,
    )

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
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
    def _identity_file(cls, value: Path, info: ValidationInfo) -> Path:
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
    def _known_hosts(cls, value: Path, info: ValidationInfo) -> Path:
        path = _expanded(value)
        hint = (
            "create it with each host's key after checking its fingerprint: "
            f"ssh-keyscan -p PORT HOST >> {path}"
        )
        _check_file(path, info, "an OpenSSH known_hosts file", hint)
        return path

    def endpoints(self) -> list[tuple[str, int]]:
        """(host, port) of every host, in the order given."""
        found = []
        for text in self.hosts:
            host, port = parse_host(text)
            found.append((host, port or self.port))
        return found


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

    def activity_task_queue(self) -> str | None:
        """The shared queue: any worker with the admin key can reach the hosts."""
        return None

    def backend_section(self) -> dict[str, Any]:
        """The section as JSON (paths expanded); paths only, never key material."""
        return self.ssh_config.model_dump(mode="json")
