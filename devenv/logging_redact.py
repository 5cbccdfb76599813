"""No secret in a log line: a filter on every handler of the processes devenv starts.

Libraries log what they hold: httpx logs each request's URL at INFO (a webhook URL is a
secret: its path is the credential), an exception may quote a URL or a header. Rather
than trusting each call site, every record is rewritten before any handler writes it:
URL paths and queries, bearer tokens, devenv tokens, ``password=...``-like pairs,
private key blocks, and the values of the secret variables in the environment.
Standard library only: the local instance server uses it too.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable

HIDDEN = "***"
MIN_SECRET_LENGTH = 8
"""A shorter value of a secret-named variable ("false", "1") is not worth hiding."""
SECRET_NAMES = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|CREDENTIAL", re.I)
QUIET_LOGGERS = ("httpx", "httpcore")
"""They log every request line (URL included) at INFO/DEBUG: warnings are enough."""

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
            re.S,
        ),
        "[private key]",
    ),
    # scheme://[user:pass@]host[:port]/path?query#frag -> scheme://host/***
    (
        re.compile(
            r"\b([a-z][a-z0-9+.-]*://)(?:[^@/\s\"'<>]*@)?([^/\s\"'<>?#]+)[/?#][^\s\"'<>]*",
            re.I,
        ),
        rf"\1\2/{HIDDEN}",
    ),
    # A credential, not prose ("no bearer token"): 16 characters or more.
    (re.compile(r"\b(bearer\s+)[A-Za-z0-9._~+/=-]{16,}", re.I), rf"\1{HIDDEN}"),
    (re.compile(r"\bdevenv_[A-Za-z0-9_-]{16,}"), f"devenv_{HIDDEN}"),
    (
        re.compile(
            r"\b((?:password|passwd|secret|token|api[_-]?key|authorization)[\"']?\s*[=:]\s*[\"']?)"
            r"[^\s\"',;&]+",
            re.I,
        ),
        rf"\1{HIDDEN}",
    ),
)


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of the variables whose names say they are secret (longest first)."""
    env = os.environ if environ is None else environ
    found = {
        value
        for name, value in env.items()
        if SECRET_NAMES.search(name) and len(value) >= MIN_SECRET_LENGTH
    }
    return sorted(found, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret it holds replaced by ``***``."""
    for value in secrets:
        if value in text:
            text = text.replace(value, HIDDEN)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and its traceback) before any handler formats it."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it, with our text
            message = str(record.msg)
        cleaned = redact(message, self.secrets)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


def install(logger: logging.Logger | None = None) -> RedactingFilter:
    """Put the filter on every handler of ``logger`` (the root by default: records of
    every library reach them), and quiet the loggers that print request URLs."""
    target = logging.getLogger() if logger is None else logger
    found = RedactingFilter(secret_values())
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(found)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return found
