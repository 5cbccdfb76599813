"""A shell's environment is built from an allow-list, never from the worker's environment.

Whatever the shell that started ``devenv server`` had (an SSH agent, cloud
credentials, tokens) must not reach the environments it provisions.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from devenv.backends.local.files import ENV_MARKER, local_username, login_shell
from tests.local_backend.conftest import SSH_TIMEOUT, Instance, Lab

SECRETS = {
    "SSH_AUTH_SOCK": "/tmp/devenv-test-agent.sock",
    "AWS_SECRET_ACCESS_KEY": "devenv-test-secret",
    "AWS_ACCESS_KEY_ID": "devenv-test-key-id",
    "GITHUB_TOKEN": "devenv-test-token",
    "SOME_RANDOM_VAR": "devenv-test-random",
}


def parse_env(output: str) -> dict[str, str]:
    env = {}
    for line in output.replace("\r", "").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.isidentifier():
            env[name] = value
    return env


@pytest.fixture(scope="module")
async def leaky(lab: Lab) -> tuple[Instance, str]:
    """An instance provisioned by a process whose environment holds secrets."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in SECRETS.items():
            mp.setenv(name, value)
        mp.setenv("LC_TIME", "C.UTF-8")  # locale settings of the host do pass
        path = os.environ.get("PATH", "")
        instance = await lab.provision("leaky")
    return instance, path


def assert_no_secrets(env: dict[str, str], output: str) -> None:
    for name, value in SECRETS.items():
        assert name not in env, f"{name} leaked into the environment"
        assert value not in output, f"the value of {name} leaked"


async def test_exec_gets_only_allowed_variables(leaky: tuple[Instance, str]) -> None:
    instance, path = leaky
    result = await instance.ssh(instance.alias, "env")
    assert result.returncode == 0, result.err
    env = parse_env(result.out)
    assert_no_secrets(env, result.out)
    assert env["HOME"] == os.environ["HOME"]
    assert env["USER"] == env["LOGNAME"] == local_username()
    assert env["SHELL"] == login_shell()
    assert env[ENV_MARKER] == instance.token

    # Exactly what the shell was started with, before its rc files (bash run by ssh
    # reads ~/.bashrc, which may extend PATH): the allow-list and nothing else.
    initial = await instance.ssh(instance.alias, "tr '\\0' '\\n' </proc/$$/environ")
    assert initial.returncode == 0, initial.err
    env = parse_env(initial.out)
    assert_no_secrets(env, initial.out)
    assert env["PATH"] == path
    assert env["LC_TIME"] == "C.UTF-8"
    assert env["PWD"] == str(instance.workspace)
    assert env["SSH_CONNECTION"].split()[2:] == ["127.0.0.1", str(instance.info.port)]
    assert env["SSH_CLIENT"].split()[2] == str(instance.info.port)
    assert "SSH_TTY" not in env and "TERM" not in env  # no PTY requested
    allowed = {
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "PATH",
        "PWD",
        "LANG",
        "TZ",
        "SSH_CLIENT",
        "SSH_CONNECTION",
        ENV_MARKER,
    }
    assert {name for name in env if not name.startswith("LC_")} - allowed == set(), initial.out


async def test_a_pty_login_shell_gets_only_allowed_variables(
    leaky: tuple[Instance, str],
) -> None:
    instance, _ = leaky
    proc = await asyncio.create_subprocess_exec(
        *instance.ssh_argv("-tt", instance.alias),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TERM": "xterm-256color"},
    )
    out, err = await asyncio.wait_for(
        proc.communicate(b"echo BEGIN; env; echo END; exit\n"), SSH_TIMEOUT
    )
    output = out.decode(errors="replace").replace("\r", "")
    assert proc.returncode == 0, err
    # The echoed input line holds "echo END" too: take what is between the last markers.
    body = output[output.rindex("BEGIN\n") + len("BEGIN\n") : output.rindex("\nEND\n")]
    env = parse_env(body)
    assert_no_secrets(env, output)
    assert env["HOME"] == os.environ["HOME"]
    assert env["USER"] == local_username()
    assert env["SHELL"] == login_shell()
    assert env["TERM"] == "xterm-256color"
    assert env["SSH_TTY"].startswith("/dev/pts/")
    assert env[ENV_MARKER] == instance.token
