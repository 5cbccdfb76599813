"""`GET /metrics` scrape time at N environments, as Prometheus sees it, on a real `devenv server`.

A private world (DEVENV_HOME, HOME, ports) with the embedded Temporal server and the
API on a loopback port. The N environments are workflows of the environment's type
carrying memo rows as the workflow writes them (mixed statuses, owners, backends and
prices), on a task queue no worker polls: the metrics read memos only, so this is
what a fleet of N costs them, without starting N instances (``benchmarks/scale.py``
does that, at ~17/s). ``--closed`` more are closed (ended by inactivity, stopped,
terminated from outside) for the totals.

Then, with the admin's token over HTTP on loopback: the first scrapes, one a second
until one has figures (the first waits for the first read of the fleet, at most
``FIRST_WAIT_SECONDS``, then a 503 until it is done); then ``--scrapes`` scrapes, one
every ``--every`` seconds (a stale snapshot starts a read in the background); and how
long a read of the fleet takes (the server's own ``devenv_metrics_read_seconds``).

    nice -n 19 python -m benchmarks.metrics_scrape --envs 10000 --closed 1000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from devenv.models.state import WORKFLOW_TYPE
from devenv.models.status import MEMO_KEY
from tests.e2e.harness import DEVENV, Devenv, free_port, wait_for

NOBODY_POLLS = "bench-metrics-no-worker"
CONCURRENCY = 64
STATUSES = ("running",) * 7 + ("provisioning", "suspended", "terminating")
BACKENDS = ("local", "ssh", "aws")
REASONS = ("inactivity_duration_exceeded", "stopped_by_user", "max_duration_exceeded")


def memo_row(index: int, status: str, now: datetime, rng: random.Random) -> dict[str, Any]:
    """A memo row as ``devenv.workflows.visibility.memo_row`` writes it."""
    ready = now - timedelta(hours=rng.uniform(1, 48))
    ended = status == "terminated"
    row: dict[str, Any] = {
        "name": f"bench-{index}",
        "workflow_id": f"devenv-bench-{index}",
        "backend": BACKENDS[index % len(BACKENDS)],
        "status": status,
        "activity": "idle" if status == "running" else None,
        "connections": index % 3 if status == "running" else 0,
        "inactivity_duration": 1800,
        "max_duration": 8 * 3600 if index % 2 else None,
        "idle_since": None,
        "deadline": None,
        "termination_reason": REASONS[index % len(REASONS)] if ended else None,
        "owner": f"user{index % 50}",
        "price_per_hour": round(rng.uniform(0.01, 4.0), 4),
        "billed_from": ready.isoformat(),
        "billed_until": (ready + timedelta(hours=1)).isoformat() if ended else None,
    }
    if index % 7 == 0:
        row["shared_with"] = [f"user{(index + 1) % 50}"]
    return row


async def seed(address: str, running: int, closed: int) -> float:
    """Start ``running`` + ``closed`` workflows with memo rows; close ``closed`` of them.
    Returns the seconds it took."""
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    rng = random.Random(7)
    now = datetime.now(UTC)
    gate = asyncio.Semaphore(CONCURRENCY)
    began = time.perf_counter()

    async def one(index: int) -> None:
        end = index >= running
        status = "terminated" if end else STATUSES[index % len(STATUSES)]
        async with gate:
            handle = await client.start_workflow(
                WORKFLOW_TYPE,
                id=f"devenv-bench-{index}",
                task_queue=NOBODY_POLLS,
                memo={MEMO_KEY: memo_row(index, status, now, rng)},
            )
            if end:
                await handle.terminate(reason="benchmark: ended")

    await asyncio.gather(*(one(index) for index in range(running + closed)))
    return time.perf_counter() - began


def scrape(http: httpx.Client) -> tuple[float, dict[str, float]]:
    """One scrape: its wall time in ms and its unlabelled samples."""
    began = time.perf_counter()
    answer = http.get("/metrics")
    took = (time.perf_counter() - began) * 1000
    if answer.status_code != 200:
        raise SystemExit(f"GET /metrics: {answer.status_code} {answer.text}")
    samples = {}
    for line in answer.text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return took, samples


def first_scrape(http: httpx.Client) -> tuple[float, list[int]]:
    """The first scrapes after the server started, every second as Prometheus would, until
    one has figures: the last one's time in ms and every answer's status (a 503 while the
    first read of a large fleet outlasts ``FIRST_WAIT_SECONDS``)."""
    answers: list[int] = []
    while True:
        began = time.perf_counter()
        answer = http.get("/metrics")
        took = (time.perf_counter() - began) * 1000
        answers.append(answer.status_code)
        if answer.status_code == 200:
            return took, answers
        if answer.status_code != 503 or len(answers) > 60:
            raise SystemExit(f"GET /metrics: {answer.status_code} {answer.text}")
        time.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=1000, help="running environments")
    parser.add_argument("--closed", type=int, default=100, help="closed environments")
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--every", type=float, default=1.0, help="seconds between scrapes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="devenv-metrics-bench-") as tmp:
        port = free_port()
        world = Devenv(Path(tmp), extra_env={"DEVENV_API_PORT": str(port)})
        world.home.mkdir(parents=True)
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                [DEVENV, "server"], env=world.env, stdout=out, stderr=subprocess.STDOUT
            )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _answers(url), 60, "the HTTP API")
            seeded = asyncio.run(seed(world.env["DEVENV_TEMPORAL_ADDRESS"], args.envs, args.closed))
            token = world.run("token").stdout.strip()
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
                began = time.perf_counter()
                first, first_answers = first_scrape(http)
                first_ready = (time.perf_counter() - began) * 1000
                times, reads, ages = [], [], []
                for _ in range(args.scrapes):
                    time.sleep(args.every)
                    took, samples = scrape(http)
                    times.append(took)
                    reads.append(samples["devenv_metrics_read_seconds"])
                    ages.append(samples["devenv_metrics_snapshot_age_seconds"])
                listed = sum(v for k, v in samples.items() if k.startswith("devenv_environments{"))
                ended = sum(
                    v for k, v in samples.items() if k.startswith("devenv_terminations_total{")
                )
        except BaseException:
            logs = [log, *sorted(world.home.glob("logs/*.log"))]
            for path in logs:
                tail = path.read_text(errors="replace")[-3000:]
                print(f"== {path.name}\n{tail}", file=sys.stderr)
            raise
        finally:
            # No instance was started (world.cleanup() would ask each fake environment
            # to stop, and no worker runs them): ending the server ends its dev server.
            server.terminate()
            server.wait(30)
    result: dict[str, Any] = {
        "environments": args.envs,
        "closed": args.closed,
        "seed_seconds": round(seeded, 1),
        "first_scrape_ms": round(first, 1),
        "first_scrape_statuses": first_answers,
        "first_figures_after_ms": round(first_ready, 1),
        "scrapes": len(times),
        "scrape_p50_ms": round(statistics.median(times), 1),
        "scrape_max_ms": round(max(times), 1),
        "read_seconds_max": max(reads),
        "snapshot_age_max_seconds": max(ages),
        "listed": int(listed),
        "terminations_counted": int(ended),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"GET /metrics at {args.envs} environments (+{args.closed} closed): first scrape "
            f"{result['first_scrape_ms']} ms; then p50 {result['scrape_p50_ms']} ms, "
            f"max {result['scrape_max_ms']} ms; a read of the fleet {result['read_seconds_max']} s"
        )
    return 0 if (listed, ended) == (args.envs, args.closed) else 1


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
