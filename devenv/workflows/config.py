"""The configuration users write (``dev.yml``), validated before anything starts."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from devenv.workflows.durations import parse_duration

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$|^[a-z]$")
NAME_ACCEPTED = (
    "1 to 40 lowercase letters, digits and hyphens, starting with a letter "
    "and not ending with a hyphen"
)
MEMORY_PATTERN = re.compile(r"^\d+(\.\d+)?\s*(MB|GB|TB|MiB|GiB|TiB)$", re.IGNORECASE)

Duration = Annotated[int | None, BeforeValidator(parse_duration)]
"""Seconds, or ``None`` for off."""


def validate_name(value: str) -> str:
    """Names become workflow ids, ssh host aliases and folder names: keep them tame."""
    if not NAME_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid name; accepted: {NAME_ACCEPTED}")
    return value


class Resources(BaseModel):
    """What the instance should have; the local backend shares the host and ignores it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: Annotated[int, Field(ge=1, le=1024)] | None = None
    memory: str | None = None
    disk: str | None = None
    gpu: int | str | None = None

    @field_validator("memory", "disk", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        if value is not None and not MEMORY_PATTERN.fullmatch(str(value).strip()):
            raise ValueError(f"{value!r} is not a size; accepted: a number with MB, GB or TB")
        return value


class DevEnvConfig(BaseModel):
    """One dev environment, as in ``examples/dev.yml`` (the dstack file shape)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["dev-environment"]
    name: str | None = None
    ide: Literal["vscode", "cursor", "none"] = "none"
    backend: Literal["local"] = "local"
    inactivity_duration: Duration = None
    max_duration: Duration = None
    min_connection_duration: Duration = None
    resources: Resources = Resources()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else validate_name(value)
