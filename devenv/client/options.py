"""What the SDK's calls take: the ``UNSET`` sentinel, the input types, the progress
callback and the defaults shared by the client, its environments and both transports.

The bottom of ``devenv.client``: it imports nothing of the package but ``models``.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from devenv.models.config import EnvironmentConfig


class Unset(enum.Enum):
    """The type of ``UNSET``: a keyword the caller did not give (``None`` means "off" or
    "nobody" for some of them, so it cannot mean "not given")."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET

ConfigSource = str | Path | Mapping[str, Any] | EnvironmentConfig
"""A YAML file's path, the configuration's keys, or the validated model."""
Duration = int | float | str | bool
"""A duration as in the YAML: seconds, ``"2h"``, ``"1h30m"``, ``"off"`` (also ``False``)."""
StopAt = str | datetime | None
"""A fixed end: ``"18:30"`` (local), an ISO-8601 time, a datetime; ``None``/``"off"``: none."""
Progress = Callable[[str, bool], None]
"""``progress(message, transient)``: transient messages replace each other (a spinner)."""

STOP_WAIT_TIMEOUT = 300.0
"""``stop(wait=True)``: seconds to wait for the environment to be terminated."""

log = logging.getLogger("devenv")


def quiet(message: str, transient: bool) -> None:
    """The default progress: notes (a server started in the background) go to the
    ``devenv`` logger; the ticking of a wait goes nowhere."""
    if not transient:
        log.info("%s", message)
