"""Where devenv keeps its state and which Temporal it talks to.

Read from the environment on every call (not at import) so tests and users can
point one process at another ``DEVENV_HOME`` without restarting Python.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import BaseModel

SHARED_TASK_QUEUE = "devenv"
DEFAULT_ADDRESS = "127.0.0.1:7233"
SEARCH_ATTRIBUTES = {
    "DevEnvStatus": "Keyword",
    "DevEnvBackend": "Keyword",
    "DevEnvName": "Keyword",
    "DevEnvDeadline": "Datetime",
}


def host_task_queue(host_id: str | None = None) -> str:
    """The queue of activities that must run on the host owning a local instance."""
    return f"devenv-host-{host_id or socket.gethostname()}"


class Settings(BaseModel):
    home: Path
    address: str
    namespace: str
    api_key: str | None = None
    tls: bool = False

    @classmethod
    def load(cls) -> Settings:
        home = Path(os.environ.get("DEVENV_HOME") or Path.home() / ".devenv").expanduser()
        api_key = os.environ.get("DEVENV_TEMPORAL_API_KEY") or None
        tls_env = os.environ.get("DEVENV_TEMPORAL_TLS", "").lower() in ("1", "true", "yes")
        return cls(
            home=home,
            address=os.environ.get("DEVENV_TEMPORAL_ADDRESS") or DEFAULT_ADDRESS,
            namespace=os.environ.get("DEVENV_TEMPORAL_NAMESPACE") or "default",
            api_key=api_key,
            tls=tls_env or api_key is not None,
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
        return int(os.environ.get("DEVENV_UI_PORT") or self.port + 1000)

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    # Files under home. Key material is 0600 in 0700 folders (see keys.py).
    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def internal_key(self) -> Path:
        """devenv's control-plane key: the only key the activity subsystem accepts."""
        return self.keys_dir / "internal_ed25519"

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
