"""The API's settings and the SDK's choice of mode; no server needed."""

from __future__ import annotations

import pytest

import devenv
from devenv.client.transports.direct import DirectTransport
from devenv.client.transports.http import HttpTransport
from devenv.errors import InvalidValueError, ServerUnreachableError
from devenv.settings import Settings, SettingsError
from tests.e2e.harness import free_port

SECRET = "devenv_s3cr3t-value-that-must-never-show"


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in ("DEVENV_SERVER_URL", "DEVENV_TOKEN", "DEVENV_API_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEVENV_HOME", str(tmp_path))


def test_the_token_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVENV_TOKEN", SECRET)
    settings = Settings.load()
    assert settings.token is not None and settings.token.get_secret_value() == SECRET
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert SECRET not in shown
    monkeypatch.setenv("DEVENV_TOKEN", f"{SECRET} with spaces")
    with pytest.raises(SettingsError) as raised:
        Settings.load()
    assert "DEVENV_TOKEN" in str(raised.value) and SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEVENV_SERVER_URL", "ftp://127.0.0.1:8234"),
        ("DEVENV_SERVER_URL", "http://127.0.0.1:8234/?token=x"),
        ("DEVENV_API_PORT", "http"),
        ("DEVENV_API_PORT", "70000"),
    ],
)
def test_bad_values_are_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        Settings.load()
    line = str(raised.value)
    assert line.startswith(f"{variable}: invalid value") and "\n" not in line


def test_api_port_default_disabled_and_server_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.load().api_port == 8234
    monkeypatch.setenv("DEVENV_API_PORT", "0")
    assert Settings.load().api_port == 0
    monkeypatch.setenv("DEVENV_SERVER_URL", "http://127.0.0.1:8234/")
    assert Settings.load().server_url == "http://127.0.0.1:8234"


async def test_the_sdk_is_remote_exactly_when_a_server_url_is_set_and_nothing_else_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert isinstance(devenv.AsyncClient().transport, DirectTransport)
    port = free_port()  # nothing listens there
    monkeypatch.setenv("DEVENV_SERVER_URL", f"http://127.0.0.1:{port}")
    remote = devenv.AsyncClient()
    assert isinstance(remote.transport, HttpTransport)
    assert isinstance(devenv.AsyncClient(address="127.0.0.1:7233").transport, DirectTransport)
    assert isinstance(devenv.Client().aio.transport, HttpTransport)
    with pytest.raises(InvalidValueError, match="DEVENV_TOKEN is not set"):
        await remote.list()
    monkeypatch.setenv("DEVENV_TOKEN", SECRET)
    with pytest.raises(ServerUnreachableError) as raised:
        await devenv.AsyncClient().list()
    assert SECRET not in str(raised.value) and "DEVENV_SERVER_URL" in raised.value.hint
    with pytest.raises(InvalidValueError):
        await remote.start({"type": "dev-environment"}, owner="mallory")
    env_error = devenv.AsyncClient(token=SECRET)
    with pytest.raises(InvalidValueError) as bad:
        await env_error.start({"type": "dev-environment", "inactivity_duration": "1x"})
    assert str(bad.value).startswith("config: inactivity_duration: invalid value '1x'")


async def test_a_transport_given_is_the_one_used_and_nothing_else_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``AsyncClient(transport=...)`` (httpx-style): the same client over the transport
    given, whatever DEVENV_SERVER_URL says; other arguments beside it are refused."""
    monkeypatch.delenv("DEVENV_SERVER_URL", raising=False)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    transport = HttpTransport(Settings.load(), server_url=url, token=SECRET)
    client = devenv.AsyncClient(transport=transport)
    assert client.transport is transport and client.settings is transport.settings
    with pytest.raises(ServerUnreachableError, match=f"no devenv server answers at {url}"):
        await client.list()
    with pytest.raises(InvalidValueError, match="transport"):
        devenv.AsyncClient(transport=transport, address="127.0.0.1:7233")
    direct = devenv.AsyncClient(transport=DirectTransport(Settings.load()))
    assert isinstance(direct.transport, DirectTransport)
    with pytest.raises(InvalidValueError, match="not to Temporal"):
        devenv.AsyncClient(server_url=url, address="127.0.0.1:7233")
