"""``devenv logs NAME --init``: what the ``init`` commands of the first start wrote.

Their log sits in the workspace (``.devenv/init.log``, secrets masked), where a session
starts on every backend, so it is read over SSH like a job's log.
"""

from __future__ import annotations

from devenv.client.jobs import JobError, Reachable, _capture

LOG_PATH = ".devenv/init.log"
NO_LOG = 3


async def init_log(env: Reachable) -> bytes:
    """The init log; JobError when the environment has none (no ``init`` configured)."""
    code, out, problem = await _capture(env, f"cat -- {LOG_PATH} 2>/dev/null || exit {NO_LOG}")
    if code == NO_LOG:
        raise JobError(f"environment {env.name!r} has no init log (no init commands ran)")
    if code != 0:
        raise JobError(f"environment {env.name!r}: reading the init log failed: {problem[:300]}")
    return out
