"""How long a dead peer (network gone, TCP still open) may go unnoticed: one source.

Every SSH hop of devenv probes silent peers every ``INTERVAL_SECONDS`` and drops
them by ``DEAD_PEER_BOUND_SECONDS``: the local instance's server (a user who
vanished stops counting), the monitor's presence stream, and the ssh config
written for users. The two SSH stacks count differently, hence two helpers.
"""

from __future__ import annotations

INTERVAL_SECONDS = 15
DEAD_PEER_BOUND_SECONDS = 60


def asyncssh_count_max(interval: float = INTERVAL_SECONDS) -> int:
    """asyncssh drops the peer when the keepalive after ``count_max`` unanswered ones
    is due: interval x (count_max + 1) = the bound."""
    return max(1, round(DEAD_PEER_BOUND_SECONDS / interval) - 1)


def openssh_count_max(interval: float = INTERVAL_SECONDS) -> int:
    """OpenSSH's ServerAliveCountMax drops after that many unanswered: interval x count."""
    return max(1, round(DEAD_PEER_BOUND_SECONDS / interval))
