"""One keepalive bound everywhere: the instance server, the monitor's stream and the ssh
config written for users all drop a silent peer after the same time."""

from __future__ import annotations

import dataclasses

from devenv import dead_peer
from devenv.backends.local.backend import LocalBackend
from devenv.backends.local.files import ServerConfig
from devenv.client import sshconfig
from devenv.settings import Settings


def test_every_hop_drops_a_silent_peer_after_the_same_bound() -> None:
    bound = dead_peer.DEAD_PEER_BOUND_SECONDS
    assert bound == 60
    # OpenSSH (the user's ssh config): ServerAliveInterval x ServerAliveCountMax.
    assert sshconfig.SERVER_ALIVE_INTERVAL * sshconfig.SERVER_ALIVE_COUNT_MAX == bound
    # asyncssh (the local server, the monitor's stream): interval x (count_max + 1).
    backend = LocalBackend(Settings(home="/nonexistent", address="127.0.0.1:1", namespace="n"))
    assert backend.keepalive_interval * (backend.keepalive_count_max + 1) == bound
    fields = {spec.name: spec.default for spec in dataclasses.fields(ServerConfig)}
    interval = fields["keepalive_interval"]
    assert isinstance(interval, float) and isinstance(fields["keepalive_count_max"], int)
    assert interval * (fields["keepalive_count_max"] + 1) == bound
    assert dead_peer.INTERVAL_SECONDS * (dead_peer.asyncssh_count_max() + 1) == bound
