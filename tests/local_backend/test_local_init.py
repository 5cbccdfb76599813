"""``init`` and ``env`` on a local instance: init runs once per instance (a retried
provision does not run it again), env values (literal and secret) reach sessions, and
the copy of the values the instance keeps is gone after terminate."""

from __future__ import annotations

import pytest

from devenv.backends.base import ProvisioningError
from devenv.backends.local.files import SESSION_ENV_FILE
from devenv.env_secrets import store_env_secrets
from tests.local_backend.conftest import Lab


async def test_a_retried_provision_does_not_run_init_again(lab: Lab) -> None:
    request = lab.request("init-once", init=["echo ran >> count.txt"])
    first = await lab.backend.provision(request)
    again = await lab.backend.provision(request)  # the retry of a lost attempt
    assert first.instance_id == again.instance_id
    instance = await lab.provision("init-once", request.instance_token, init=request.spec.init)
    assert (instance.workspace / "count.txt").read_text() == "ran\n"


async def test_env_values_reach_a_session_and_their_copy_ends_with_the_instance(
    lab: Lab,
) -> None:
    ref = store_env_secrets(lab.settings, {"API_TOKEN": "tok-123"})
    instance = await lab.provision("env-vars", env={"GREETING": "hi there"}, env_secrets=ref)
    done = await instance.ssh(instance.alias, 'echo "$GREETING|$API_TOKEN|$HOME"')
    assert done.returncode == 0, done.err
    greeting, token, home = done.out.strip().split("|")
    assert (greeting, token) == ("hi there", "tok-123")
    assert home and home != "hi there"
    env_file = next(lab.settings.envs_dir.glob(f"env-vars/instances/*/{SESSION_ENV_FILE}"))
    assert env_file.stat().st_mode & 0o777 == 0o600
    await lab.backend.terminate(instance.terminate_request())
    assert not env_file.exists()


async def test_a_secret_an_init_command_prints_is_masked_in_its_error(lab: Lab) -> None:
    ref = store_env_secrets(lab.settings, {"API_TOKEN": "tok-456"})
    with pytest.raises(ProvisioningError) as caught:
        await lab.provision("init-fails", env_secrets=ref, init=['echo "t=$API_TOKEN"; false'])
    assert "t=***" in str(caught.value)
    assert "tok-456" not in str(caught.value)
    assert "init command 1/1" in str(caught.value)
