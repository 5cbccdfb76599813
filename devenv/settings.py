"""Where devenv keeps its state and which Temporal it talks to.

Read from the environment on every call (not at import) so tests and users can
point one process at another ``DEVENV_HOME`` without restarting Python.
"""

from __future__ import annotations

import getpass
import os
import re
import secrets
import socket
from pathlib import Path

from pydantic import BaseModel, SecretStr

from devenv.errors import InvalidValueError

DEFAULT_ADDRESS = "127.0.0.1:7233"
DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8234
SEARCH_ATTRIBUTES = {
    "DevEnvStatus": "Keyword",
    "DevEnvBackend": "Keyword",
    "DevEnvName": "Keyword",
    "DevEnvDeadline": "Datetime",
    "DevEnvGroup": "Keyword",
}


def host_task_queue(host_id: str | None = None) -> str:
    """The queue of activities that must run on the host owning a local instance."""
    return f"devenv-host-{host_id or socket.gethostname()}"


def watch_task_queue() -> str:
    """A queue only this worker process polls: the monitors it runs (``lease``)."""
    return f"devenv-watch-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


def local_user() -> str:
    """The OS user running this process: the owner of what it starts without an owner,
    and the name of the local admin of the HTTP API."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (some containers)
        return f"uid-{os.getuid()}"


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
ADDRESS_PATTERN = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$")


class SettingsError(InvalidValueError):
    """A DEVENV_* variable with a value devenv cannot use (one line, exit code 2)."""


class Settings(BaseModel):
    home: Path
    address: str
    namespace: str
    api_key: SecretStr | None = None
    """A secret: SecretStr keeps it out of repr(), logs and model dumps."""
    tls: bool = False
    ui_port_override: int | None = None
    ssh_include: bool = True
    """Whether ``devenv start`` may add an Include of this home's ssh config to
    ~/.ssh/config: by default only for the default home (DEVENV_SSH_INCLUDE overrides),
    so test and scratch homes never pile up there."""
    internal_key_file: Path | None = None
    """DEVENV_INTERNAL_KEY_FILE: the control plane's key shared by every worker of a
    deployment (each must read every instance's presence); None: one under home."""
    api_port_override: int | None = None
    """DEVENV_API_PORT: the HTTP API's port for `devenv server` (0: no API); None: 8234."""
    server_url: str | None = None
    """DEVENV_SERVER_URL: a devenv server's HTTP API; set, the SDK and the CLI talk to it
    (remote mode) instead of to Temporal."""
    token: SecretStr | None = None
    """DEVENV_TOKEN: the bearer token for ``server_url``. A secret, like ``api_key``."""

    @classmethod
    def load(cls) -> Settings:
        """The settings from the environment; SettingsError names a bad variable."""
        default_home = Path.home() / ".devenv"
        home = Path(os.environ.get("DEVENV_HOME") or default_home).expanduser()
        api_key = os.environ.get("DEVENV_TEMPORAL_API_KEY") or None
        address = os.environ.get("DEVENV_TEMPORAL_ADDRESS") or DEFAULT_ADDRESS
        _check_address(address)
        namespace = os.environ.get("DEVENV_TEMPORAL_NAMESPACE") or "default"
        if not NAMESPACE_PATTERN.fullmatch(namespace):
            raise SettingsError(
                f"DEVENV_TEMPORAL_NAMESPACE: invalid value {namespace!r}: accepted: "
                "a Temporal namespace name (letters, digits, '.', '-', '_')"
            )
        return cls(
            home=home.absolute(),
            address=address,
            namespace=namespace,
            api_key=SecretStr(api_key) if api_key else None,
            tls=_tls(api_key is not None),
            ui_port_override=_port_variable("DEVENV_UI_PORT"),
            internal_key_file=_path_variable("DEVENV_INTERNAL_KEY_FILE"),
            ssh_include=ssh_include_for(home),
            api_port_override=_port_variable("DEVENV_API_PORT"),
            server_url=_url_variable("DEVENV_SERVER_URL"),
            token=_token_variable("DEVENV_TOKEN"),
        )

    @property
    def host(self) -> str:
        return self.address.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    @property
    def is_loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1", "[::1]")

    @property
    def ui_port(self) -> int:
        if self.ui_port_override is not None:
            return self.ui_port_override
        return self.port + 1000 if self.port + 1000 <= MAX_PORT else 0

    @property
    def api_port(self) -> int:
        """The HTTP API's port (0: disabled)."""
        return DEFAULT_API_PORT if self.api_port_override is None else self.api_port_override

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    # Files under home. Key material is 0600 in 0700 folders (see keys.py).
    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def internal_key(self) -> Path:
        """devenv's control-plane key: it can read presence and nothing else.

        Generated under home for a single worker; a deployment with several workers
        gives all of them the same file through DEVENV_INTERNAL_KEY_FILE.
        """
        return self.internal_key_file or self.keys_dir / "internal_ed25519"

    @property
    def ssh_dir(self) -> Path:
        return self.home / "ssh"

    @property
    def generated_user_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def ssh_config(self) -> Path:
        return self.ssh_dir / "config"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def envs_dir(self) -> Path:
        return self.home / "envs"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def server_db(self) -> Path:
        return self.home / "temporal.db"

    @property
    def server_pidfile(self) -> Path:
        return self.home / "server.pid"

    @property
    def users_file(self) -> Path:
        """The HTTP API's users: names, roles, public keys and token hashes (0600)."""
        return self.home / "users.json"

    @property
    def admin_token_file(self) -> Path:
        """The local admin's bearer token in clear (`devenv token` prints it), 0600."""
        return self.keys_dir / "api-token"


MAX_PORT = 65_535
NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def _check_address(address: str) -> None:
    match = ADDRESS_PATTERN.fullmatch(address)
    if match is None or not 0 < int(match.group(2)) <= MAX_PORT:
        raise SettingsError(
            f"DEVENV_TEMPORAL_ADDRESS: invalid value {_show(address)}: accepted: HOST:PORT "
            f"such as {DEFAULT_ADDRESS}"
        )


def _port_variable(name: str) -> int | None:
    raw = os.environ.get(name) or None
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) > MAX_PORT:
        raise SettingsError(
            f"{name}: invalid value {_show(raw)}: accepted: a port number 1-{MAX_PORT}, "
            "or 0 to disable"
        )
    return int(raw)


URL_PATTERN = re.compile(
    r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?(/[^\s?#]*)?$"
)
TOKEN_PATTERN = re.compile(r"^[\x21-\x7e]{1,512}$")


def _url_variable(name: str) -> str | None:
    """An http(s) base URL without query or fragment, its trailing slash removed."""
    raw = (os.environ.get(name) or "").strip() or None
    if raw is None:
        return None
    if URL_PATTERN.fullmatch(raw) is None:
        raise SettingsError(
            f"{name}: invalid value {_show(raw)}: accepted: the devenv server's URL, "
            "such as http://127.0.0.1:8234"
        )
    return raw.rstrip("/")


def _token_variable(name: str) -> SecretStr | None:
    """A bearer token; never shown, not even in the error about a malformed one."""
    raw = (os.environ.get(name) or "").strip() or None
    if raw is None:
        return None
    if TOKEN_PATTERN.fullmatch(raw) is None:
        raise SettingsError(
            f"{name}: invalid value (not shown): accepted: the token `devenv token` or "
            "`devenv users add` printed (printable characters, no spaces)"
        )
    return SecretStr(raw)


def _path_variable(name: str) -> Path | None:
    raw = os.environ.get(name) or None
    if raw is None:
        return None
    if "\n" in raw or "\x00" in raw:
        raise SettingsError(f"{name}: invalid value {_show(raw)}: accepted: a file path")
    return Path(raw).expanduser().absolute()


def ssh_include_for(home: Path) -> bool:
    """Whether ``home`` may add its Include to ~/.ssh/config: DEVENV_SSH_INCLUDE, or else
    only the default home (a test's or a script's own home must not touch it)."""
    default_home = (Path.home() / ".devenv").absolute()
    return _flag("DEVENV_SSH_INCLUDE", home.expanduser().absolute() == default_home)


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise SettingsError(
        f"{name}: invalid value {_show(raw)}: accepted: "
        f"{'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)}"
    )


def _tls(has_api_key: bool) -> bool:
    """DEVENV_TEMPORAL_TLS if given (true or false); otherwise on exactly with an API key.

    An explicit false allows an API key over plain gRPC (a TLS-terminating proxy on
    this machine, or a dev server in tests).
    """
    raw = os.environ.get("DEVENV_TEMPORAL_TLS", "").strip().lower()
    if not raw:
        return has_api_key
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise SettingsError(
        f"DEVENV_TEMPORAL_TLS: invalid value {_show(raw)}: accepted: "
        f"{'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)}"
    )


def _show(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
