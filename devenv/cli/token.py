"""`devenv token`: the local admin's token of the HTTP API, alone on stdout.

So that ``TOKEN=$(devenv token)`` works; words for people go to stderr.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from devenv.cli.output import err, fail
from devenv.errors import DevenvError


def token(
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Replace it: the old token stops working at once.")
    ] = False,
) -> None:
    """Print the local admin's token of the HTTP API (created on first use, 0600)."""
    from devenv.client.tokens import UserStore
    from devenv.settings import Settings

    try:
        settings = Settings.load()
        value, created = UserStore(settings).local_admin_token(rotate=rotate)
    except DevenvError as problem:
        raise fail(problem) from None
    if rotate:
        err.print("Replaced the local admin token; the old one no longer works.")
    elif created:
        err.print(f"Created the local admin token ({settings.admin_token_file}); keep it secret.")
    sys.stdout.write(value + "\n")
