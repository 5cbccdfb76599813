"""The root side: ``failsafe`` (as root, one per account) is the machine's own end when
its control plane is gone: it re-reads a policy file, watches the account's users and
whether a control plane still reads the stream, and runs an action (``shutdown -h now``)
once nobody has read the stream for ``failsafe_after_seconds`` and the policy's idle or
maximum duration has passed. A policy it cannot read never acts.

With ``on_idle: suspend`` in the policy, idleness suspends rather than ends: the
failsafe runs its suspend action when it has one (``--suspend-action-file``), else its
action (on EC2 the same ``shutdown -h now``, which the instance's shutdown behaviour
``stop`` makes a suspension). A maximum duration reached always runs the action.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from . import AGENT_SCRIPT
from .account import Agent
from .lines import UTC_ZONE, iso, now_iso
from .procfs import boot_clock
from .table import control_plane_present, count_jobs, find_connections

FAILSAFE_INTERVAL = 5.0
_ACTION_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class FailsafePolicy(NamedTuple):
    """The policy file (devenv.models.messages.FailsafePolicy), in seconds."""

    inactivity: float | None
    max_duration: float | None
    started_at: float
    """Wall-clock (epoch) seconds."""
    failsafe_after: float
    on_idle: str = "terminate"
    """``terminate`` or ``suspend``: what idleness does."""


ON_IDLE = ("terminate", "suspend")


class FailsafeSeen(NamedTuple):
    """Monotonic seconds when a control plane, and a user, were last seen (the failsafe's
    own start until then: never earlier)."""

    control: float
    user: float


def _policy_seconds(data: Mapping[str, Any], key: str, nullable: bool) -> float | None:
    if key not in data:
        raise ValueError(f"{key} is missing")
    value = data[key]
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number of seconds{' or null' if nullable else ''}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{key} must be finite and not negative")
    return float(value)


def parse_timestamp(text: str) -> float:
    """Epoch seconds of an ISO-8601 time; ``Z`` and naive times are UTC."""
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC_ZONE)
    return moment.timestamp()


def parse_policy(text: str) -> FailsafePolicy:
    """The policy in ``text``, or ValueError saying what is wrong with it."""
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ValueError(f"not JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    started = data.get("started_at")
    if not isinstance(started, str):
        raise ValueError("started_at must be an ISO-8601 time")
    try:
        started_at = parse_timestamp(started)
    except (ValueError, OverflowError):
        raise ValueError(f"started_at {started!r} is not an ISO-8601 time") from None
    after = _policy_seconds(data, "failsafe_after_seconds", nullable=False)
    assert after is not None
    on_idle = data.get("on_idle", "terminate")
    if on_idle not in ON_IDLE:
        raise ValueError(f"on_idle must be one of {', '.join(ON_IDLE)}")
    return FailsafePolicy(
        inactivity=_policy_seconds(data, "inactivity_seconds", nullable=True),
        max_duration=_policy_seconds(data, "max_duration_seconds", nullable=True),
        started_at=started_at,
        failsafe_after=after,
        on_idle=on_idle,
    )


def suspends(policy: FailsafePolicy, reason: str) -> bool:
    """Whether acting for ``reason`` (from ``failsafe_reason``) suspends: idleness under
    ``on_idle: suspend``; a maximum duration reached always ends."""
    return policy.on_idle == "suspend" and reason.startswith("inactivity")


def failsafe_seen(seen: FailsafeSeen, now: float, control: bool, users: int) -> FailsafeSeen:
    """``seen`` after an observation at ``now``: a control plane reading, ``users`` counted."""
    return FailsafeSeen(now if control else seen.control, now if users > 0 else seen.user)


def failsafe_reason(
    policy: FailsafePolicy | None,
    seen: FailsafeSeen,
    now: float,
    wall: float,
    users: int,
    control: bool,
) -> str | None:
    """Why the machine must end now, or None (the common answer).

    ``now`` is monotonic like ``seen``; ``wall`` is epoch seconds (for ``started_at``);
    ``users`` the account's user connections now, waiting ones included; ``control``
    whether a control plane reads the stream now. Without a policy, or while a control
    plane reads, or before none has for ``failsafe_after``: never.
    """
    if policy is None or control:
        return None
    unread = now - seen.control
    if unread < policy.failsafe_after:
        return None
    why = f"no control plane for {unread:.0f}s (failsafe_after {policy.failsafe_after:g}s)"
    if policy.max_duration is not None and wall >= policy.started_at + policy.max_duration:
        return (
            f"max_duration {policy.max_duration:g}s reached (started {iso(policy.started_at)}), "
            f"{why}"
        )
    if policy.inactivity is not None and users == 0:
        idle = now - seen.user
        if idle >= policy.inactivity:
            return (
                f"inactivity: nobody connected for {idle:.0f}s (inactivity "
                f"{policy.inactivity:g}s), {why}"
            )
    return None


class FailsafeWatcher:
    """What the failsafe sees of one account: (user connections, counted ones, control).

    The agent's own view of the account (its reader, its ancestry), without peers."""

    def __init__(
        self, user: str, uid: int, min_duration: float, script: str = AGENT_SCRIPT
    ) -> None:
        self.agent = Agent(user, uid, min_duration, script)

    def observe(self) -> tuple[int, int, bool]:
        """(user connections and jobs, the counted ones, whether a control plane reads):
        a running job keeps the machine in use like a connected user."""
        agent = self.agent
        procs = agent.reader.read()
        connections = find_connections(
            procs,
            agent.user,
            agent.uid,
            agent.own_ancestry,
            boot_clock(),
            agent.min_duration,
            agent.script,
        )
        counted = sum(1 for connection in connections if connection.counted)
        control = control_plane_present(procs, agent.user, agent.uid, agent.script)
        jobs = count_jobs(procs, agent.uid)
        return len(connections) + jobs, counted + jobs, control


def load_policy(path: str) -> tuple[FailsafePolicy | None, str]:
    """(the policy, "") or (None, why it cannot be used)."""
    try:
        with open(path, encoding="utf-8") as policy_file:
            text = policy_file.read(65536)
    except (OSError, UnicodeDecodeError) as error:
        return None, f"cannot read {path} ({getattr(error, 'strerror', None) or error})"
    try:
        return parse_policy(text), ""
    except ValueError as error:
        return None, f"invalid policy {path}: {error}"


def describe_policy(policy: FailsafePolicy) -> str:
    def seconds(value: float | None) -> str:
        return "off" if value is None else f"{value:g}s"

    return (
        f"inactivity {seconds(policy.inactivity)}, max_duration {seconds(policy.max_duration)}, "
        f"started {iso(policy.started_at)}, failsafe_after {policy.failsafe_after:g}s, "
        f"on_idle {policy.on_idle}"
    )


def _log(err: Any, message: str) -> None:
    try:
        err.write(f"{AGENT_SCRIPT} failsafe {now_iso()}: {message}\n")
        err.flush()
    except (OSError, ValueError):
        pass


def run_action(action: str, err: Any) -> int:
    """``/bin/sh -c ACTION`` as root, once; its output goes to the failsafe's log.

    Its environment is fixed (not the failsafe's own), the same under systemd and setsid.
    """
    env = {"PATH": _ACTION_PATH, "HOME": "/"}
    try:
        err.flush()
        done = subprocess.run(
            ["/bin/sh", "-c", action],
            stdin=subprocess.DEVNULL,
            stdout=err.fileno(),
            stderr=err.fileno(),
            cwd="/",
            env=env,
            check=False,
        )
    except (OSError, ValueError) as error:
        _log(err, f"the action could not run: {error}")
        return 127
    return done.returncode


def failsafe(
    watcher: FailsafeWatcher,
    policy_path: str,
    action: str,
    interval: float,
    err: Any,
    suspend_action: str | None = None,
) -> int:
    """Observe every ``interval`` seconds; run ``action`` once when the policy says so
    (``suspend_action`` instead, if given, when idleness suspends)."""
    start = time.monotonic()
    seen = FailsafeSeen(start, start)
    logged_policy: object = None
    logged_state: object = None
    _log(err, f"watching {watcher.agent.user} (policy {policy_path}, every {interval:g}s)")
    while True:
        policy, problem = load_policy(policy_path)
        if (policy, problem) != logged_policy:
            logged_policy = (policy, problem)
            if policy is None:
                _log(err, f"{problem}: the failsafe will not act")
            else:
                _log(err, f"policy: {describe_policy(policy)}")
        users, counted, control = watcher.observe()
        now = time.monotonic()
        seen = failsafe_seen(seen, now, control, counted)
        state = (users, control)
        if state != logged_state:
            logged_state = state
            _log(err, f"users={users} control={'yes' if control else 'no'}")
        reason = failsafe_reason(policy, seen, now, time.time(), users, control)
        if reason is not None and policy is not None:
            suspending = suspends(policy, reason)
            use_suspend = suspending and suspend_action is not None
            chosen = suspend_action if use_suspend and suspend_action else action
            what = "suspending it, running the" if suspending else "running the"
            what += " suspend action" if use_suspend else " action"
            _log(err, f"acting on {watcher.agent.user}: {reason}; {what}")
            status = run_action(chosen, err)
            _log(err, f"the action exited with status {status}; the failsafe is done")
            return 0
        time.sleep(interval)
