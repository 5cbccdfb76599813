"""How to reach an environment from this machine: what ``start`` and ``connect`` return."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SshEntry:
    """How to reach a running environment from this machine."""

    ssh_config: Path
    """The generated OpenSSH config with the environment's Host entry (``ssh -F``)."""
    included: bool
    """Whether ~/.ssh/config includes it, so that plain ``ssh NAME`` works."""
    included_now: bool
    """Whether this start added the Include line."""
    web_ui: str
    folder: str | None = None
    """Where a session starts (what VS Code opens)."""
    ide: str = "none"
