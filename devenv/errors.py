"""Everything devenv raises on purpose: one line a person can act on.

Every class is a ``DevenvError``; the CLI prints its message as one line with exit
code 2, scripts catch the class they care about. ``ValueError`` subclasses mean bad
input and that nothing changed.
"""

from __future__ import annotations


class DevenvError(Exception):
    """Base of every error devenv raises on purpose; ``str()`` is one line."""

    exit_code = 2


class UserError(DevenvError):
    """Bad input or an environment problem the user can fix (the CLI's general case)."""


class InvalidValueError(UserError, ValueError):
    """A value devenv does not accept (a duration, a name, a configuration key).

    Raised before anything is sent: nothing was created or changed."""


class ConfigError(InvalidValueError):
    """A configuration file or mapping that is not a valid environment."""


class EnvironmentNotFoundError(UserError, LookupError):
    """No environment has that name (or workflow id)."""


class EnvironmentExistsError(UserError):
    """An environment of that name is already running: stop it or choose another name."""


class EnvironmentEndedError(UserError):
    """The environment has ended (or is ending), so it cannot be changed."""


class ChangeRejectedError(UserError):
    """The environment refused a change (its validator said why); nothing changed."""


class NotAllowedError(UserError, PermissionError):
    """The caller may see the environment but not do this (a member stopping a shared one)."""


class ProvisioningFailedError(UserError):
    """The environment could not start; its events (``devenv logs``) say why."""


class NoWorkerError(UserError):
    """No devenv worker serves the environment, so nothing could apply a change now."""


class NotAnsweringError(UserError, TimeoutError):
    """The environment or the server did not answer in time."""


class ServerUnreachableError(DevenvError, ConnectionError):
    """No Temporal server answers at the configured address."""

    hint = "start it with `devenv server` (or `devenv start FILE`)"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.hint = type(self).hint


class ServerRefusedError(DevenvError):
    """The Temporal server refused devenv (credentials, a namespace that does not exist)."""


class ServerNotAnsweringError(ServerUnreachableError):
    """Something accepts TCP connections at the address but does not speak Temporal.

    Starting a server there cannot help (the port is taken), so the hint differs.
    """

    hint = "check DEVENV_TEMPORAL_ADDRESS, or stop what listens there and run `devenv server`"
