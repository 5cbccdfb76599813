"""PATCH latency of the HTTP API, as a client measures it, on a real `devenv server`.

A private world (DEVENV_HOME, HOME, ports) with the embedded server and its API on a
loopback port; one local environment started through the API; then ``--calls``
sequential PATCHes (each a new inactivity_duration) on one keep-alive connection,
and a burst of ``--burst`` PATCHes from ``--clients`` clients at once. Every answer
must be a 200. Prints p50/p99 (and min/max) in milliseconds.

    python -m benchmarks.api_patch_latency [--calls 200] [--burst 50] [--clients 10] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.harness import DEVENV, Devenv, free_port, wait_for

NAME = "bench-api"


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(samples, 0.50), 1),
        "p99_ms": round(percentile(samples, 0.99), 1),
        "min_ms": round(min(samples), 1),
        "max_ms": round(max(samples), 1),
        "mean_ms": round(statistics.fmean(samples), 1),
    }


def sequential(http: httpx.Client, calls: int) -> list[float]:
    samples = []
    for index in range(calls):
        began = time.perf_counter()
        answer = http.patch(
            f"/environments/{NAME}", json={"inactivity_duration": 3600 + 60 * index}
        )
        samples.append((time.perf_counter() - began) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"PATCH {index}: {answer.status_code} {answer.text}")
    return samples


async def burst(base: str, token: str, total: int, clients: int) -> tuple[list[float], float]:
    """``total`` PATCHes spread over ``clients`` clients all sending at once."""
    samples: list[float] = []

    async def client(values: list[int]) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as http:
            for value in values:
                began = time.perf_counter()
                answer = await http.patch(
                    f"/environments/{NAME}", json={"inactivity_duration": value}
                )
                samples.append((time.perf_counter() - began) * 1000)
                if answer.status_code != 200:
                    raise SystemExit(f"burst PATCH: {answer.status_code} {answer.text}")

    values = [7200 + 60 * index for index in range(total)]
    began = time.perf_counter()
    await asyncio.gather(*(client(values[index::clients]) for index in range(clients)))
    return samples, (time.perf_counter() - began) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="devenv-api-bench-") as tmp:
        port = free_port()
        world = Devenv(Path(tmp), extra_env={"DEVENV_API_PORT": str(port)})
        world.home.mkdir(parents=True)
        server = subprocess.Popen(
            [DEVENV, "server"], env=world.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        base = f"http://127.0.0.1:{port}/api/v1"
        try:
            wait_for(lambda: _answers(base), 60, "the HTTP API")
            token = world.run("token").stdout.strip()
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
                started = http.post(
                    "/environments",
                    params={"wait": "ready"},
                    json={"type": "dev-environment", "name": NAME, "inactivity_duration": "2h"},
                )
                if started.status_code != 201:
                    raise SystemExit(f"POST: {started.status_code} {started.text}")
                sequential(http, 5)  # warm up: connections, caches, the worker's sticky queue
                one_by_one = sequential(http, args.calls)
                many, wall = asyncio.run(burst(base, token, args.burst, args.clients))
                http.delete(f"/environments/{NAME}", params={"wait": "true"})
        finally:
            world.cleanup()
            server.terminate()
            server.wait(30)
    result: dict[str, Any] = {
        "sequential": {"calls": args.calls, **summary(one_by_one)},
        "burst": {
            "calls": args.burst,
            "clients": args.clients,
            "all_200": len(many) == args.burst,
            "wall_ms": round(wall, 1),
            **summary(many),
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        seq, bur = result["sequential"], result["burst"]
        print("devenv HTTP API, PATCH latency (client-measured), local backend, loopback")
        print(
            f"sequential  {seq['calls']:4d} calls     p50 {seq['p50_ms']:7.1f} ms   "
            f"p99 {seq['p99_ms']:7.1f} ms   min {seq['min_ms']:.1f}   max {seq['max_ms']:.1f}"
        )
        print(
            f"burst       {bur['calls']:4d} calls / {bur['clients']} clients   p50 "
            f"{bur['p50_ms']:7.1f} ms   p99 {bur['p99_ms']:7.1f} ms   wall {bur['wall_ms']:.0f} ms"
        )
    return 0


def _answers(base: str) -> bool:
    try:
        return httpx.get(base.removesuffix("/api/v1") + "/openapi.json", timeout=2).is_success
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
