"""Fixtures of the aws backend's tests: the moto server over HTTP, a booting "machine".

* EC2 is the moto server (``python -m moto.server``) on a loopback port, reached over
  HTTP through ``AWS_ENDPOINT_URL`` exactly as the worker reaches AWS. Fake
  credentials, no config files, instance metadata disabled: nothing may look for
  real credentials or reach 169.254.169.254.
* The machine behind an instance is a real sshd on loopback: :class:`Booter` watches
  moto, and for each running devenv instance reads the user data devenv generated
  and starts an sshd with that host key and that admin key (as cloud-init would),
  listening on the port the test's ``ssh_endpoint`` names. When EC2 says the
  instance is terminated, the machine dies: its sshd, sessions and failsafe stop.
  When EC2 says it is stopped, the machine halts the same way (every process of its
  account ends too) but its disk stays: the host folder and the account's home are
  kept, and it boots again, with the same user data, once EC2 says running.
* The network rule is enforced, not trusted: :func:`loopback_only` makes every
  connection of this process to a non-loopback address fail the test.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from devenv.backends.ssh.host_setup import account_name
from tests.ssh.conftest import pids_of, remove_environment_account
from tests.support.sshd import (
    Sshd,
    check_prerequisites,
    free_port,
    make_root_dir,
    port_open,
    wait_until,
)

REGION = "eu-west-1"
_violations: list[str] = []


def moto_env(endpoint: str) -> dict[str, str]:
    """What the worker and the test's boto3 see: moto on loopback, fake keys, no files."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent/devenv-test-aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/devenv-test-aws-credentials",
    }


@dataclass
class MotoServer:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str = "ec2", region: str = REGION) -> Any:
        return boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
        ).client(service, endpoint_url=self.endpoint)

    def plant(self, token: str | None = None, name: str = "forgotten") -> str:
        """An instance as a crashed devenv would leave it (devenv's tags, no workflow), or
        with ``token`` None a stranger's instance without devenv's tags."""
        ec2 = self.client()
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        arguments: dict[str, Any] = {}
        if token is not None:
            tags = [
                {"Key": "devenv:token", "Value": token},
                {"Key": "devenv:name", "Value": name},
                {"Key": "devenv:workflow-id", "Value": f"devenv-{name}"},
            ]
            arguments["TagSpecifications"] = [{"ResourceType": "instance", "Tags": tags}]
        found = ec2.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro", **arguments
        )
        return str(found["Instances"][0]["InstanceId"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@contextlib.contextmanager
def running_moto(directory: Path, **env: str) -> Iterator[MotoServer]:
    """``python -m moto.server`` on 127.0.0.1 (its own process, stopped after)."""
    port = free_port()
    log = directory / f"moto-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
        )
    server = MotoServer(port, process, log)
    try:
        wait_until(lambda: process.poll() is None and port_open(port), 30, "moto to listen")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with running_moto(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="session")
def aws_env(moto: MotoServer) -> Iterator[dict[str, str]]:
    """This process's AWS variables point at moto for the whole session."""
    env = moto_env(moto.endpoint)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- the network rule --------------------------------------------------------------------


def _is_loopback(address: Any) -> bool:
    if not isinstance(address, tuple):
        return True  # AF_UNIX paths
    host = address[0]
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if not _is_loopback(address):
        _violations.append(repr(address))
        raise PermissionError(f"test network rule: connection to {address!r} refused")
    _original_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if not _is_loopback(address):
        _violations.append(repr(address))
        raise PermissionError(f"test network rule: connection to {address!r} refused")
    return _original_connect_ex(self, address)


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    """Fail the test if this process tried to connect anywhere but loopback."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    before = len(_violations)
    try:
        yield
    finally:
        socket.socket.connect = _original_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = _original_connect_ex  # type: ignore[method-assign]
    tried = _violations[before:]
    assert not tried, f"the test tried to leave loopback: {tried}"


# --- the machine behind an instance ----------------------------------------------------


@dataclass
class Machine:
    """One booted instance: its sshd (host key and admin key from the user data)."""

    instance_id: str
    sshd: Sshd
    root: Path
    user_data: dict[str, Any]
    name: str = ""
    boots: int = 1


@dataclass
class Booter:
    """Boots every running devenv instance in moto as a real sshd on ``port``.

    One machine at a time (they share the port the test's ``ssh_endpoint`` names);
    ``paused`` keeps instances unbooted (a machine that never becomes reachable).
    """

    moto: MotoServer
    host_dir: Path
    port: int = field(default_factory=free_port)
    paused: bool = False
    machines: dict[str, Machine] = field(default_factory=dict)
    dead: set[str] = field(default_factory=set)
    halted: dict[str, int] = field(default_factory=dict)
    """Stopped instances (their disk kept) and how many times each booted."""
    names: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="booter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ec2 = self.moto.client()
        while not self._stop.wait(0.1):
            try:
                self._tick(ec2)
            except Exception as problem:  # reported by the test, never silently lost
                self.errors.append(repr(problem))

    def _tick(self, ec2: Any) -> None:
        found = ec2.describe_instances(Filters=[{"Name": "tag-key", "Values": ["devenv:token"]}])
        for reservation in found["Reservations"]:
            for raw in reservation["Instances"]:
                instance_id, state = raw["InstanceId"], raw["State"]["Name"]
                if state in ("shutting-down", "terminated"):
                    if instance_id in self.machines:
                        self.kill(instance_id)
                elif state in ("stopping", "stopped"):
                    if instance_id in self.machines:
                        self.halt(instance_id)
                elif (
                    state == "running"
                    and not self.paused
                    and instance_id not in self.machines
                    and instance_id not in self.dead
                ):
                    self._boot(ec2, instance_id, raw)

    def _boot(self, ec2: Any, instance_id: str, raw: dict[str, Any]) -> None:
        import base64

        encoded = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        if "Value" not in encoded.get("UserData", {}):
            self.dead.add(instance_id)  # planted by a test, not by devenv: nothing boots
            return
        text = base64.b64decode(encoded["UserData"]["Value"]).decode()
        assert text.startswith("#cloud-config\n"), text[:40]
        data = yaml.safe_load(text)
        tags = {tag["Key"]: tag["Value"] for tag in raw.get("Tags", [])}
        self.names.add(tags.get("devenv:name", ""))
        root = make_root_dir("dvt-ec2-")
        key = root / "ssh_host_ed25519_key"
        key.write_text(data["ssh_keys"]["ed25519_private"])
        key.chmod(0o600)
        (root / "ssh_host_ed25519_key.pub").write_text(data["ssh_keys"]["ed25519_public"] + "\n")
        sshd = Sshd(root, port=self.port)
        sshd.authorize_root(*data["ssh_authorized_keys"])  # cloud-init: the admin's login
        sshd.start()
        boots = self.halted.pop(instance_id, 0) + 1
        name = tags.get("devenv:name", "")
        self.machines[instance_id] = Machine(instance_id, sshd, root, data, name, boots)

    def halt(self, instance_id: str) -> None:
        """The machine stops (StopInstances): sshd, sessions, the failsafe and every
        process of its account end; the host folder and the account's home stay."""
        machine = self.machines.pop(instance_id)
        machine.sshd.close()
        shutil.rmtree(machine.root, ignore_errors=True)
        self.stop_failsafes()
        if machine.name:
            account = account_name(machine.name)
            for _ in range(50):
                pids = pids_of(account)
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.05)
        # Last: a test that waits for the halt then finds nothing of the account running.
        self.halted[instance_id] = machine.boots

    def kill(self, instance_id: str) -> None:
        """The machine dies: sshd and every session, the failsafe, the account's processes."""
        machine = self.machines.pop(instance_id)
        self.dead.add(instance_id)
        machine.sshd.close()
        shutil.rmtree(machine.root, ignore_errors=True)
        self.stop_failsafes()

    def stop_failsafes(self) -> None:
        folder = self.host_dir / "failsafe"
        for pid_file in folder.glob("*.pid") if folder.exists() else []:
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
            pid_file.unlink(missing_ok=True)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for instance_id in list(self.machines):
            self.kill(instance_id)
        self.stop_failsafes()
        for name in self.names:
            if name:
                remove_environment_account(name)
        assert not self.errors, f"the booter failed: {self.errors}"


@contextlib.contextmanager
def booting(moto: MotoServer) -> Iterator[Booter]:
    check_prerequisites()
    host_dir = make_root_dir("dvt-ec2host-")
    booter = Booter(moto, host_dir)
    booter.start()
    try:
        yield booter
    finally:
        booter.close()
        shutil.rmtree(host_dir, ignore_errors=True)


def unique_name() -> str:
    return f"awsb-{secrets.token_hex(4)}"


def account_for(name: str) -> str:
    return account_name(name)
