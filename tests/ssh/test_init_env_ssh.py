"""``init`` and ``env`` on an ssh host (Debian's sshd on loopback, the real OpenSSH
client): env reaches commands run over ssh and login shells, init runs once per
instance as the account in its home, a failing one names its last lines (secrets
masked), and terminate removes the env values from the kept home."""

from __future__ import annotations

import pytest

from devenv.backends.base import ProvisioningError
from devenv.client import sshconfig
from devenv.env_secrets import store_env_secrets
from tests.ssh.conftest import Env, Lab, run, unique_name


async def test_env_reaches_commands_and_login_shells_init_runs_once(lab: Lab) -> None:
    ref = store_env_secrets(lab.settings, {"API_TOKEN": "tok 'quoted' $x"})
    request = lab.request(
        env={"GREETING": "hello world"},
        env_secrets=ref,
        init=["echo ran >> count.txt", 'echo "greeting=$GREETING token=$API_TOKEN"'],
    )
    await lab.backend.provision(request)
    info = await lab.backend.provision(request)  # a retry: init does not run again
    config = sshconfig.write_entry(lab.settings, request.spec.name, info, lab.user_key)
    env = Env(request.spec.name, info, request, config)

    echoed = await env.ssh('echo "$GREETING|$API_TOKEN"')
    assert echoed.returncode == 0, echoed.stderr
    assert echoed.stdout.decode() == "hello world|tok 'quoted' $x\n"
    shell = await run(*env.ssh_argv("-tt", env.name), input=b'echo "g=$GREETING"\nexit\n')
    assert b"g=hello world" in shell.stdout

    assert (env.home / "count.txt").read_text() == "ran\n"
    log = (env.home / ".devenv" / "init.log").read_text()
    assert "greeting=hello world token=***" in log
    assert "tok 'quoted'" not in log
    env_file = env.home / ".devenv" / "env.sh"
    assert env_file.stat().st_mode & 0o777 == 0o600

    await lab.backend.terminate(env.terminate_request())
    assert not env_file.exists(), "the values end with the environment"
    assert (env.home / "count.txt").exists(), "the home is kept"


async def test_a_failing_init_fails_the_provision_with_its_last_lines_masked(lab: Lab) -> None:
    ref = store_env_secrets(lab.settings, {"API_TOKEN": "tok-789"})
    request = lab.request(
        unique_name(),
        env_secrets=ref,
        init=['for i in $(seq 1 25); do echo "l$i"; done; echo "t=$API_TOKEN"; exit 4'],
    )
    with pytest.raises(ProvisioningError) as caught:
        await lab.backend.provision(request)
    said = str(caught.value)
    assert "init command 1/1" in said and "exited with status 4" in said
    assert "t=***" in said and "tok-789" not in said
    assert "l25" in said and "  l6\n" not in said and len(said.splitlines()) <= 21
