"""The start body's example and schema for the OpenAPI document; the wire's names and
the other bodies are ``devenv.wire``'s (the SDK's HTTP transport imports them too)."""

from __future__ import annotations

from typing import Any

CONFIG_EXAMPLE: dict[str, Any] = {
    "type": "dev-environment",
    "name": "my-env",
    "backend": "local",
    "inactivity_duration": "2h",
    "max_duration": "1d",
}
CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "The environment's configuration: the keys of its YAML file, as JSON "
        "(type, name, ide, backend, inactivity_duration, max_duration, "
        "min_connection_duration, resources, init, env and the backend's own section). "
        "Validated by the SDK, as `devenv start` validates the file. Beside them, "
        "`caller_env`: the values of env's bare KEYs (a secret each, kept out of history; "
        "the server never reads its own environment for them)."
    ),
    "additionalProperties": True,
}
