"""Wall time of whole CLI processes, as a user's shell sees it: `devenv ps` with N
environments running, `devenv signal`, and `devenv --help` (import cost alone).

A private world (DEVENV_HOME, HOME, ports) with the embedded server and N local
environments; each command runs R times, the median and the spread are printed, and
the median CPU time of the process (user + system), which contention hardly changes.
``--remote`` also times `ps` and `signal` in remote mode (DEVENV_SERVER_URL: over the
server's HTTP API instead of Temporal). ``--compare`` runs another checkout's CLI in turn
with this one, round by round in the same world, so both see the same load.

    python -m benchmarks.cli_wall_time [--envs 20] [--rounds 7] [--remote] [--json]
    python -m benchmarks.cli_wall_time --source /path/to/other/checkout   # measure a version
    python -m benchmarks.cli_wall_time --compare /path/to/other/checkout  # A/B, interleaved
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.e2e.harness import Devenv, free_port, wait_for

EXAMPLE = Path(__file__).parents[1] / "examples" / "dev.yml"


class World(Devenv):
    """The e2e harness's world, optionally running another checkout's code."""

    source: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        if self.source is not None:
            env["PYTHONPATH"] = str(self.source)
        return env


def devenv_command(source: Path | None) -> list[str]:
    if source is None:
        return [str(Path(sys.executable).parent / "devenv")]
    # -P: the current directory (this checkout) must not shadow the PYTHONPATH one.
    return [sys.executable, "-P", "-c", "from devenv.cli.app import main; main()"]


Samples = tuple[list[float], list[float]]
"""Wall and CPU seconds (user + system) of each run."""


def timed(
    world: World,
    clis: dict[str, tuple[list[str], dict[str, str]]],
    args: list[str],
    rounds: int,
    extra: dict[str, str] | None = None,
) -> dict[str, Samples]:
    """``rounds`` runs of ``args`` with each CLI (its command and environment), taking
    turns within each round, the order alternating, so that all see the same load."""
    samples: dict[str, Samples] = {label: ([], []) for label in clis}
    for index in range(rounds):
        for label in list(clis)[:: -1 if index % 2 else 1]:
            command, cli_env = clis[label]
            env = {**world.env, **cli_env, **(extra or {})}
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            began = time.perf_counter()
            result = subprocess.run(
                [*command, *args], env=env, capture_output=True, text=True, timeout=60
            )
            samples[label][0].append(time.perf_counter() - began)
            done = resource.getrusage(resource.RUSAGE_CHILDREN)
            samples[label][1].append(done.ru_utime - used.ru_utime + done.ru_stime - used.ru_stime)
            if result.returncode != 0:
                raise SystemExit(f"{label}: {' '.join(args)} failed: {result.stderr.strip()}")
    return samples


def summary(walls: list[float], cpus: list[float]) -> dict[str, int]:
    return {
        "median_ms": round(statistics.median(walls) * 1000),
        "min_ms": round(min(walls) * 1000),
        "max_ms": round(max(walls) * 1000),
        "cpu_ms": round(statistics.median(cpus) * 1000),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--source", type=Path, help="a checkout whose devenv to measure")
    parser.add_argument(
        "--remote", action="store_true", help="also time ps and signal in remote mode (HTTP)"
    )
    parser.add_argument(
        "--compare", type=Path, help="a checkout whose CLI to time in turn with this one"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cli = devenv_command(args.source)
    with tempfile.TemporaryDirectory(prefix="devenv-cli-bench-") as tmp:
        # A port of its own for the HTTP API: never the default one another server holds.
        world = World(Path(tmp), extra_env={"DEVENV_API_PORT": str(free_port())})
        world.source = args.source
        server = subprocess.Popen(
            [*cli, "server"], env=world.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:

            def run(*a: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run(
                    [*cli, *a], env=world.env, capture_output=True, text=True, timeout=120
                )

            wait_for(lambda: run("ps").returncode == 0, 60, "the server")
            for index in range(args.envs):
                result = run("start", str(EXAMPLE), "--name", f"cli-{index}", "--detach")
                assert result.returncode == 0, result.stderr
            wait_for(
                lambda: (
                    json.loads(run("ps", "--json").stdout or "[]").__len__() == args.envs
                    and all(
                        r["status"] == "running" for r in json.loads(run("ps", "--json").stdout)
                    )
                ),
                120,
                "every environment running",
            )
            clis: dict[str, tuple[list[str], dict[str, str]]] = {"this": (cli, {})}
            if args.compare is not None:
                clis["compare"] = (devenv_command(args.compare), {"PYTHONPATH": str(args.compare)})
            figures = {
                "help": timed(world, clis, ["--help"], args.rounds),
                "ps": timed(world, clis, ["ps"], args.rounds),
                "ps_json": timed(world, clis, ["ps", "--json"], args.rounds),
                "signal": timed(
                    world, clis, ["signal", "cli-0", "--inactivity", "3h"], args.rounds
                ),
            }
            if args.remote:
                remote = {
                    "DEVENV_SERVER_URL": f"http://127.0.0.1:{world.extra_env['DEVENV_API_PORT']}",
                    "DEVENV_TOKEN": run("token").stdout.strip(),
                }
                figures["remote_ps"] = timed(world, clis, ["ps"], args.rounds, remote)
                figures["remote_signal"] = timed(
                    world, clis, ["signal", "cli-1", "--inactivity", "3h"], args.rounds, remote
                )
        finally:
            for index in range(args.envs):
                subprocess.run([*cli, "stop", f"cli-{index}"], env=world.env, capture_output=True)
            subprocess.run([*cli, "server", "stop"], env=world.env, capture_output=True)
            server.terminate()
            server.wait(30)
            from tests.e2e.harness import kill_instances

            kill_instances(world.home)
    report: dict[str, Any] = {name: summary(*samples["this"]) for name, samples in figures.items()}
    if args.compare is not None:
        report["compare"] = {
            name: summary(*samples["compare"]) for name, samples in figures.items()
        }
    report["envs"] = args.envs
    report["cores"] = os.cpu_count()
    if args.json:
        print(json.dumps(report))
    else:
        print(f"devenv CLI wall time, {args.envs} environments, {args.rounds} rounds")
        for label, figures_of in (("", report), ("compare ", report.get("compare", {}))):
            for name, figure in figures_of.items():
                if isinstance(figure, dict) and "median_ms" in figure:
                    print(
                        f"{label + name:21} median {figure['median_ms']:5} ms   "
                        f"min {figure['min_ms']:5} ms   max {figure['max_ms']:5} ms   "
                        f"CPU {figure['cpu_ms']:5} ms"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
