"""The docs site: the configuration reference lists every key of every backend, as the
code accepts it, and the site builds with no broken link or anchor (``mkdocs --strict``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from devenv.backends import registry
from devenv.config import reference

ROOT = Path(__file__).parents[2]


def every_key(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str | None]]:
    """Each key (dotted), with its description; walks nested sections itself, not through
    the generator, so a key the generator skips is still found missing."""
    found: list[tuple[str, str | None]] = []
    for name, field in model.model_fields.items():
        found.append((f"{prefix}{name}", field.description))
        for candidate in [field.annotation, *getattr(field.annotation, "__args__", ())]:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                found.extend(every_key(candidate, f"{prefix}{name}."))
    return found


@pytest.mark.parametrize("backend", registry.names())
def test_every_key_of_every_backend_is_in_the_reference(backend: str) -> None:
    generated = reference.markdown()
    page = (ROOT / "docs" / "configuration.md").read_text()
    keys = every_key(registry.config_model(backend))
    assert any("." in key for key, _ in keys)  # nested sections are walked (notify.webhook)
    for key, description in keys:
        assert description, f"{backend}: {key} has no Field(description=...)"
        assert f"| `{key}` |" in generated, f"{backend}: {key} missing from the reference"
        assert f"| `{key}` |" in page, f"{backend}: {key} missing from docs/configuration.md"


def test_the_page_holds_the_reference_of_the_code() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert reference.refresh(page) == page, "run: python -m devenv.config.reference"


def test_the_site_builds_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    built = (tmp_path / "configuration" / "index.html").read_text()
    assert "ssh_config.identity_file" in built and "aws.failsafe_after" in built
