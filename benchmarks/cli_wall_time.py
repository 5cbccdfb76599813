"""Wall time of whole CLI processes, as a user's shell sees it: `devenv ps` with N
environments running, `devenv signal`, and `devenv --help` (import cost alone).

A private world (DEVENV_HOME, HOME, ports) with the embedded server and N local
environments; each command runs R times, the median and the spread are printed.

    python -m benchmarks.cli_wall_time [--envs 20] [--rounds 7] [--json]
    python -m benchmarks.cli_wall_time --source /path/to/other/checkout   # compare a version
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
from pathlib import Path

from tests.e2e.harness import Devenv, wait_for

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
    return [sys.executable, "-c", "from devenv.cli.app import main; main()"]


def timed(world: World, command: list[str], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        result = subprocess.run(command, env=world.env, capture_output=True, text=True, timeout=60)
        samples.append(time.perf_counter() - began)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command[-3:])} failed: {result.stderr.strip()}")
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--source", type=Path, help="a checkout whose devenv to measure")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cli = devenv_command(args.source)
    with tempfile.TemporaryDirectory(prefix="devenv-cli-bench-") as tmp:
        world = World(Path(tmp))
        world.source = args.source
        server = subprocess.Popen(
            [*cli, "server"], env=world.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            run = lambda *a: subprocess.run(  # noqa: E731
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
            figures = {
                "help": timed(world, [*cli, "--help"], args.rounds),
                "ps": timed(world, [*cli, "ps"], args.rounds),
                "ps_json": timed(world, [*cli, "ps", "--json"], args.rounds),
                "signal": timed(
                    world, [*cli, "signal", "cli-0", "--inactivity", "3h"], args.rounds
                ),
            }
        finally:
            for index in range(args.envs):
                subprocess.run([*cli, "stop", f"cli-{index}"], env=world.env, capture_output=True)
            subprocess.run([*cli, "server", "stop"], env=world.env, capture_output=True)
            server.terminate()
            server.wait(30)
            from tests.e2e.harness import kill_instances

            kill_instances(world.home)
    report = {
        name: {
            "median_ms": round(statistics.median(s) * 1000),
            "min_ms": round(min(s) * 1000),
            "max_ms": round(max(s) * 1000),
        }
        for name, s in figures.items()
    }
    report["envs"] = args.envs  # type: ignore[assignment]
    report["cores"] = os.cpu_count()  # type: ignore[assignment]
    if args.json:
        print(json.dumps(report))
    else:
        print(f"devenv CLI wall time, {args.envs} environments, {args.rounds} rounds")
        for name, figure in report.items():
            if isinstance(figure, dict):
                print(
                    f"{name:10} median {figure['median_ms']:5} ms   "
                    f"min {figure['min_ms']:5} ms   max {figure['max_ms']:5} ms"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
