"""What a signal or update of the environment workflow accepts, checked where it enters.

Any Temporal client can send anything: no input, ``null``, ``true``, a string, two
values, an object with unknown keys. The handlers take their inputs raw (``*args``)
and parse them here, so garbage becomes an ``InputError`` (a refused update, an
ignored signal) and never a workflow task that fails for ever.

``strict_*`` is the gate for new inputs: JSON types as written (a boolean is never a
number, ``"5"`` is not 5), no unknown keys, values in range. ``lenient_*`` is what the
SDK's converter made of an input before this gate existed (pydantic's lax mode); the
handlers of accepted updates, and signals of histories recorded before the gate, use
it so those histories replay unchanged.

Pure functions: imported by the workflow, they read no clock and do no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from pydantic import BaseModel, TypeAdapter, ValidationError

from devenv.models.messages import WatcherGone
from devenv.models.state import Change, PresenceReport

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
MAX_REASON = 500
"""Characters of a stop reason: it becomes an event line."""
_SHOWN = 60
"""Characters of a refused value quoted in its message."""


class InputError(ValueError):
    """An input a handler refuses; the message names it and what is accepted."""


def shown(value: object) -> str:
    """A refused value as JSON, cut short: enough to recognise it, never a wall of text."""
    try:
        text = json.dumps(value, default=str, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def one(args: Sequence[Any], what: str, *, optional: bool = False) -> Any:
    """The single input of a handler (None when ``optional`` and none was given)."""
    if len(args) == 1:
        return args[0]
    if not args:
        if optional:
            return None
        raise InputError(f"no input; {what}")
    raise InputError(f"{len(args)} inputs given, one expected; {what}")


def _whole_seconds(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def strict_threshold(field: str, args: Sequence[Any]) -> int | None:
    """Whole seconds of a threshold, or null (off); the workflow checks the range."""
    accepted = f"{field} must be whole seconds or null (off)"
    value = one(args, accepted)
    if value is not None and not _whole_seconds(value):
        raise InputError(f"{accepted}, got {shown(value)}")
    assert value is None or isinstance(value, int)
    return value


def strict_extend(args: Sequence[Any]) -> int:
    """Whole seconds; the workflow checks the range."""
    accepted = "extend must be whole seconds"
    value = one(args, accepted)
    if not _whole_seconds(value):
        raise InputError(f"{accepted}, got {shown(value)}")
    assert isinstance(value, int)
    return value


_STOP_AT = TypeAdapter(datetime | None)


def strict_stop_at(args: Sequence[Any]) -> datetime | None:
    """An ISO-8601 time with its zone, or null (remove the fixed end)."""
    accepted = "stop_at accepts an ISO-8601 time with its zone, or null (remove it)"
    value = one(args, accepted)
    if value is None:
        return None
    if not isinstance(value, str | datetime):
        raise InputError(f"{shown(value)} is not a time; {accepted}")
    try:
        at = _STOP_AT.validate_python(value)
    except ValidationError:
        raise InputError(f"{shown(value)} is not a time; {accepted}") from None
    if at is None or at.tzinfo is None:
        raise InputError(f"{shown(value)} has no time zone; {accepted}")
    return at


def strict_bool(name: str, args: Sequence[Any]) -> bool:
    """``true`` or ``false``, nothing that merely looks like one."""
    accepted = f"{name} accepts true or false"
    value = one(args, accepted)
    if not isinstance(value, bool):
        raise InputError(f"{shown(value)} is not a boolean; {accepted}")
    return value


def strict_reason(args: Sequence[Any], what: str = "a stop") -> str | None:
    """An optional reason: a string of at most ``MAX_REASON`` characters, or null."""
    accepted = f"{what} accepts no input, null, or a reason (text, at most {MAX_REASON} chars)"
    value = one(args, accepted, optional=True)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"{shown(value)} is not text; {accepted}")
    if len(value) > MAX_REASON:
        raise InputError(f"a reason of {len(value)} characters is too long; {accepted}")
    return value


def strict_model(
    model: type[M], args: Sequence[Any], what: str, *, unknown_keys: bool = False
) -> M:
    """``model`` from the one JSON object given: its types exactly, no unknown key
    (``unknown_keys``: ignored, for what devenv's own monitor sends, so a worker of a
    newer version adding a field never makes an older one drop a presence report)."""
    fields = ", ".join(model.model_fields)
    accepted = f"{what} accepts one object with the keys {fields}"
    value = one(args, accepted)
    if not isinstance(value, dict):
        raise InputError(f"{shown(value)} is not an object; {accepted}")
    try:
        # JSON mode: a time may be a string, a number may not be a boolean or a string.
        return model.model_validate_json(
            json.dumps(value, allow_nan=False),
            strict=True,
            extra="ignore" if unknown_keys else "forbid",
        )
    except (ValueError, TypeError) as problem:
        raise InputError(f"{_first_problem(problem)}; {accepted}") from None


def _first_problem(problem: BaseException) -> str:
    """One line for a refused object: where and what, in plain words."""
    if isinstance(problem, ValidationError):
        errors = problem.errors(include_url=False, include_context=False)
        parts = []
        for error in errors[:3]:
            where = ".".join(str(p) for p in error["loc"]) or "input"
            if error["type"] == "extra_forbidden":
                parts.append(f"{where}: unknown key")
            else:
                parts.append(f"{where}: {shown(error.get('input'))} refused ({error['type']})")
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        return "; ".join(parts) + more
    return "not plain JSON (NaN or infinity)"


def strict_change(args: Sequence[Any]) -> Change:
    return strict_model(Change, args, "change")


def strict_presence(args: Sequence[Any]) -> PresenceReport:
    return strict_model(PresenceReport, args, "record_activity", unknown_keys=True)


def strict_watcher_gone(args: Sequence[Any]) -> WatcherGone:
    return strict_model(WatcherGone, args, "watcher_gone", unknown_keys=True)


# ------------------------------------------------------- what the converter made of it

_LENIENT_SECONDS = TypeAdapter(int | None)
_LENIENT_INT = TypeAdapter(int)
_LENIENT_BOOL = TypeAdapter(bool)
_LENIENT_REASON = TypeAdapter(str | None)


def lenient_threshold(args: Sequence[Any]) -> int | None:
    """``int | None`` in pydantic's lax mode, as the SDK converted it before the gate."""
    (value,) = args
    result: int | None = _LENIENT_SECONDS.validate_python(value)
    return result


def lenient_extend(args: Sequence[Any]) -> int:
    (value,) = args
    result: int = _LENIENT_INT.validate_python(value)
    return result


def lenient_stop_at(args: Sequence[Any]) -> datetime | None:
    (value,) = args
    result: datetime | None = _STOP_AT.validate_python(value)
    return result


def lenient_bool(args: Sequence[Any]) -> bool:
    (value,) = args
    result: bool = _LENIENT_BOOL.validate_python(value)
    return result


def lenient_reason(args: Sequence[Any]) -> str | None:
    if not args:
        return None
    (value,) = args
    result: str | None = _LENIENT_REASON.validate_python(value)
    return result


def lenient_model(model: type[M], args: Sequence[Any]) -> M:
    (value,) = args
    return model.model_validate(value)


def signal_input(
    args: tuple[Any, ...],
    strict: Callable[[tuple[Any, ...]], T],
    lenient: Callable[[tuple[Any, ...]], T],
    recorded_before_gate: Callable[[], bool],
) -> tuple[bool, T, str | None]:
    """(True, the input, None) when a signal's input passes the gate; else (False, ...,
    why it is ignored). Never raises: a signal cannot be refused, and an exception in its
    handler would fail every workflow task from now on.

    An input the gate refuses but the old converter took is applied as it was when
    ``recorded_before_gate()`` (a history from before the gate); asked only then, since
    the workflow's answer is a patch marker."""
    try:
        return True, strict(args), None
    except Exception as problem:  # InputError, or anything else a parser met
        refused = (
            str(problem)
            if isinstance(problem, InputError)
            else f"unreadable input ({type(problem).__name__})"
        )
    try:
        old = lenient(args)
    except Exception:
        pass  # refused before the gate too (dropped, or a task failure)
    else:
        if recorded_before_gate():
            return True, old, None  # recorded before the gate: replay what it did then
    return False, cast(T, None), refused
