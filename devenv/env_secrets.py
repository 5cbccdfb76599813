"""Values of ``env`` passed by name (a bare ``KEY``): kept out of history, as webhook URLs.

The SDK reads them from the caller's environment at start and stores them under the
devenv home (0600 in a 0700 folder); the workflow's spec carries only the reference, and
the worker that provisions the instance (same home, as for webhooks) reads them back and
hands them to the backend. The terminate activity removes the file.

The reference is random, not a digest: a short secret's digest could be guessed back.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from devenv.keys import private_dir, write_private_file
from devenv.models.state import EnvSpec
from devenv.settings import Settings

REF_PATTERN = re.compile(r"^es-[0-9a-f]{24}$")


def _folder(settings: Settings) -> Path:
    return settings.home / "env-secrets"


def store_env_secrets(settings: Settings, values: Mapping[str, str]) -> str:
    """Keep ``values`` under the home; their reference (for ``EnvSpec.env_secrets``)."""
    ref = "es-" + secrets.token_hex(12)
    write_private_file(private_dir(_folder(settings)) / ref, json.dumps(dict(values)).encode())
    return ref


def load_env_secrets(settings: Settings, ref: str) -> dict[str, str]:
    """The values behind ``ref``; LookupError (naming no value) if this home lacks them."""
    if not REF_PATTERN.fullmatch(ref):
        raise LookupError(f"{ref!r} is not a reference to env values")
    try:
        data = json.loads((_folder(settings) / ref).read_text())
    except (OSError, ValueError):
        raise LookupError(
            f"the env values {ref} are not in {_folder(settings)} (the worker's DEVENV_HOME "
            "must be the one the environment was started from)"
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise LookupError(f"the env values {ref} are not a mapping of names to strings")
    return data


def remove_env_secrets(settings: Settings, ref: str) -> None:
    """Forget them (the environment ended); nothing if already gone."""
    if REF_PATTERN.fullmatch(ref):
        with contextlib.suppress(FileNotFoundError):
            (_folder(settings) / ref).unlink()


def session_env(settings: Settings, spec: EnvSpec) -> tuple[dict[str, str], list[str]]:
    """Every variable a session of ``spec`` gets (literal and secret), and the secret
    values (to be masked in anything shown: an init command's last lines)."""
    env = dict(spec.env)
    hidden: list[str] = []
    if spec.env_secrets is not None:
        secret = load_env_secrets(settings, spec.env_secrets)
        env.update(secret)
        hidden = [value for value in secret.values() if value]
    return env, hidden


def mask(text: str, hidden: list[str]) -> str:
    """``text`` with every secret value replaced by ``***`` (longest first)."""
    for value in sorted(hidden, key=len, reverse=True):
        text = text.replace(value, "***")
    return text
