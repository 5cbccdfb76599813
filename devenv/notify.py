"""Warnings to a webhook: the URL kept out of history, the POST the worker makes.

A webhook URL is a secret (Slack's and Mattermost's carry their token in the path), so
the SDK stores it under the devenv home (0600) and the workflow only carries its
reference; the worker that sends the warning reads it back from the same home.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from devenv.keys import private_dir, write_private_file
from devenv.settings import Settings

REF_PATTERN = re.compile(r"^wh-[0-9a-f]{24}$")
POST_TIMEOUT = 10.0


def _folder(settings: Settings) -> Path:
    return settings.home / "webhooks"


def store_webhook(settings: Settings, url: str) -> str:
    """Keep ``url`` under the home; its reference (the same URL, the same reference)."""
    ref = "wh-" + hashlib.sha256(url.encode()).hexdigest()[:24]
    write_private_file(private_dir(_folder(settings)) / ref, url.encode())
    return ref


def load_webhook(settings: Settings, ref: str) -> str:
    """The URL behind ``ref``; LookupError if this home does not have it."""
    if not REF_PATTERN.fullmatch(ref):
        raise LookupError(f"{ref!r} is not a webhook reference")
    try:
        return (_folder(settings) / ref).read_text().strip()
    except OSError:
        raise LookupError(
            f"webhook {ref} is not in {_folder(settings)} (the worker's DEVENV_HOME must be "
            "the one the environment was started from)"
        ) from None
