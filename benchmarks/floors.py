"""The floors under two targets: what a fresh Python process costs before devenv's own code.

``devenv signal`` ≤ 250 ms and a local instance ≤ 30 MB RSS are both bounded from below
by what their libraries cost to load: this prints, for each set of imports, the wall time
of a whole process that only imports it (median of ``--rounds``) and that process's RSS
(VmRSS, anonymous and file-backed, after the imports). Bytecode is cached first (one
unmeasured run writes it to a private ``PYTHONPYCACHEPREFIX``), as an installed package
has it.

    python -m benchmarks.floors [--rounds 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CLI_FLOORS = {
    "python": "pass",
    "asyncio + pydantic": "import asyncio, pydantic",
    "asyncio + pydantic + temporalio.service": "import asyncio, pydantic, temporalio.service",
    "... + devenv's models (devenv.client.async_client)": (
        "import asyncio, pydantic, temporalio.service, devenv.client.async_client"
    ),
    "... + typer (the CLI app)": (
        "import devenv.cli.app, temporalio.service, devenv.client.async_client"
    ),
    "... + temporalio.client (what signal uses)": (
        "import devenv.cli.app, temporalio.client, devenv.client.async_client"
    ),
    "stdlib HTTP client (json, http.client)": "import json, http.client",
}
"""What `devenv signal` cannot do without, cumulatively."""
INSTANCE_FLOORS = {
    "python": "pass",
    "asyncio": "import asyncio",
    "cryptography's Rust bindings": "import cryptography.hazmat.bindings._rust",
    "asyncio + cryptography": "import asyncio, cryptography.hazmat.bindings._rust",
    "asyncssh": "import asyncssh",
    "the local instance's server module": "import devenv.backends.local.server",
}
"""What a local instance (an asyncssh server on asyncio) cannot do without."""
REPORT = (
    "; import os; print(' '.join(l.split()[1] for l in open(f'/proc/{os.getpid()}/status') "
    "if l.startswith(('VmRSS', 'RssAnon', 'RssFile'))))"
)


def measure(code: str, rounds: int, env: dict[str, str]) -> dict[str, float]:
    """Median wall ms of a process running ``code``, and its RSS in MB."""
    subprocess.run([sys.executable, "-c", code], env=env, check=True)  # writes bytecode
    walls: list[float] = []
    for _ in range(rounds):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        walls.append((time.perf_counter() - began) * 1000)
    done = subprocess.run(
        [sys.executable, "-c", code + REPORT], env=env, check=True, capture_output=True, text=True
    )
    rss, anon, files = (int(kb) / 1024 for kb in done.stdout.split())
    return {
        "wall_ms": round(statistics.median(walls)),
        "rss_mb": round(rss, 1),
        "anon_mb": round(anon, 1),
        "file_mb": round(files, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="devenv-floors-") as cache:
        env = dict(os.environ, PYTHONPYCACHEPREFIX=cache, PYTHONDONTWRITEBYTECODE="")
        result = {
            "rounds": args.rounds,
            "cli": {name: measure(code, args.rounds, env) for name, code in CLI_FLOORS.items()},
            "instance": {
                name: measure(code, args.rounds, env) for name, code in INSTANCE_FLOORS.items()
            },
        }
    if args.json:
        print(json.dumps(result))
        return
    for part, title, key, unit in (
        ("cli", "process wall time, imports only (median)", "wall_ms", "ms"),
        ("instance", "process RSS after the imports", "rss_mb", "MB"),
    ):
        print(f"{title}, {args.rounds} rounds")
        for name, figures in result[part].items():
            extra = (
                f"   (anonymous {figures['anon_mb']} MB, files {figures['file_mb']} MB)"
                if part == "instance"
                else ""
            )
            print(f"  {name:<48} {figures[key]:>7} {unit}{extra}")


if __name__ == "__main__":
    main()
