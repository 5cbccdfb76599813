"""What a NAME on the command line or in the SDK may mean, checked before anything is
sent: cheap to import (no Temporal, no HTTP), so every command and remote mode use it."""

from __future__ import annotations

from devenv.errors import InvalidValueError
from devenv.models.config import NAME_ACCEPTED, NAME_PATTERN
from devenv.models.state import WORKFLOW_ID_PREFIX, workflow_id_for


def candidate_ids(ref: str) -> list[str]:
    """Workflow ids ``ref`` may mean; checked before any server is contacted.

    Only ids devenv itself could have made (``devenv-`` + a valid name) are ever
    sent to the server, so no odd string from a command line reaches it.
    """
    candidates = []
    if NAME_PATTERN.fullmatch(ref):
        candidates.append(workflow_id_for(ref))
    if ref.startswith(WORKFLOW_ID_PREFIX) and NAME_PATTERN.fullmatch(
        ref.removeprefix(WORKFLOW_ID_PREFIX)
    ):
        candidates.append(ref)
    if not candidates:
        raise InvalidValueError(
            f"NAME: invalid value {_show(ref)}: expected an environment name "
            f"({NAME_ACCEPTED}) or its workflow id '{WORKFLOW_ID_PREFIX}NAME' "
            "(see `devenv ps --all`)"
        )
    return candidates


def _show(ref: str) -> str:
    """The value as typed, shortened: a 10 kB argument must not become a 10 kB error."""
    text = repr(ref)
    return text if len(text) <= 60 else text[:57] + "..."
