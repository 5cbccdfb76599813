"""Errors the user can act on: one line, exit code 2, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or an environment problem the user can fix; printed as one line."""

    exit_code = 2
