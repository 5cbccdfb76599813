"""devenv's errors as HTTP answers: ``{"error": "one line"}`` with the fitting status.

The class travels in a header (``X-Devenv-Error``), so that the remote SDK raises the
very class the direct SDK would have raised, with the server's line.
"""

from __future__ import annotations

from devenv.api.tokens import StoreError
from devenv.errors import (
    ChangeRejectedError,
    DevenvError,
    EnvironmentEndedError,
    EnvironmentExistsError,
    EnvironmentNotFoundError,
    InvalidValueError,
    NotAllowedError,
    NotAnsweringError,
    NoWorkerError,
    ProvisioningFailedError,
    ServerRefusedError,
    ServerUnreachableError,
    UserError,
)

MAX_LINE = 500

STATUS_OF: tuple[tuple[type[DevenvError], int], ...] = (
    # Most specific first: the first class the error is an instance of decides.
    (EnvironmentNotFoundError, 404),
    (NotAllowedError, 403),
    (EnvironmentEndedError, 409),
    (EnvironmentExistsError, 409),
    (ProvisioningFailedError, 502),
    (StoreError, 503),
    (NoWorkerError, 503),
    (NotAnsweringError, 503),
    (ServerUnreachableError, 503),
    (ServerRefusedError, 503),
    (InvalidValueError, 422),
    (ChangeRejectedError, 422),
    (UserError, 409),  # a name already taken, a workflow that is not an environment
    (DevenvError, 503),
)


class ApiError(Exception):
    """An answer decided by the API itself (authentication, body, size)."""

    def __init__(self, status: int, message: str, kind: type[DevenvError]) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def status_of(problem: DevenvError) -> int:
    return next(status for kind, status in STATUS_OF if isinstance(problem, kind))


def one_line(message: str) -> str:
    """The first line, bounded: an error answer is never a dump of anything."""
    line = message.strip().splitlines()[0] if message.strip() else "error"
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 3] + "..."
