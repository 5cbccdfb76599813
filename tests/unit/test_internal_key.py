"""The control plane's key: one file every worker of a deployment shares, never generated
over, refused when unreadable or readable by others; only its public half travels."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devenv.keys import ensure_internal_key, internal_public_key
from devenv.settings import Settings, SettingsError


def shared_key(tmp_path: Path) -> Path:
    path = tmp_path / "internal_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "devenv-internal", "-f", str(path)],
        check=True,
    )
    return path


def test_every_worker_uses_the_operators_shared_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = shared_key(tmp_path)
    public = path.with_suffix(".pub").read_text().split()[:2]
    for worker in ("a", "b"):  # two workers, two homes, one key
        monkeypatch.setenv("DEVENV_HOME", str(tmp_path / worker))
        monkeypatch.setenv("DEVENV_INTERNAL_KEY_FILE", str(path))
        settings = Settings.load()
        assert settings.internal_key == path
        assert internal_public_key(settings).split()[:2] == public
        assert not (tmp_path / worker / "keys").exists(), "nothing generated beside it"


def test_without_the_variable_one_key_is_generated_under_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVENV_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DEVENV_INTERNAL_KEY_FILE", raising=False)
    settings = Settings.load()
    first = internal_public_key(settings)
    assert internal_public_key(settings) == first
    assert settings.internal_key == tmp_path / "home" / "keys" / "internal_ed25519"
    assert settings.internal_key.stat().st_mode & 0o777 == 0o600


def test_a_missing_or_exposed_shared_key_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVENV_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DEVENV_INTERNAL_KEY_FILE", str(tmp_path / "nope"))
    with pytest.raises(SettingsError) as missing:
        ensure_internal_key(Settings.load())
    assert str(missing.value).startswith("DEVENV_INTERNAL_KEY_FILE: cannot use ")
    assert not (tmp_path / "nope").exists(), "a typo must not create a new key"
    path = shared_key(tmp_path)
    path.chmod(0o644)
    monkeypatch.setenv("DEVENV_INTERNAL_KEY_FILE", str(path))
    with pytest.raises(SettingsError, match=r"readable by others \(mode 0644\)"):
        ensure_internal_key(Settings.load())
