"""The local backend's instance: how fast `devenv start` makes it SSH-ready, and its RSS.

A private world (DEVENV_HOME, HOME, ports) with `devenv server` in the foreground.
Each round runs the real `devenv start examples/dev.yml --name N` (it returns once
the instance accepts SSH) and then the real `ssh N true`, and reads the instance
server's memory (VmRSS; PSS and USS from smaps_rollup) once that session has ended.
``server_s`` is the instance's own share of ``start_s``: from the backend writing
``server.json`` to the server writing ``ready.json`` (launcher, interpreter, imports,
listen), read from the two files' mtimes. The first start of a fresh world (cold:
keys generated, server caches empty) is reported apart; the figures are medians of
the ``--rounds`` starts after it. Every instance keeps running until the end, so PSS
(shared pages split among the processes mapping them) falls as rounds add instances.

    python -m benchmarks.local_instance [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from benchmarks.local_world import served_world, spread
from tests.e2e.harness import Devenv

EXAMPLE = Path(__file__).parents[1] / "examples" / "dev.yml"
SERVER_MODULE = "devenv.backends.local.server"


def instance_pid(home: Path, name: str) -> int:
    """The pid of the instance server of ``name`` (its argv names its folder)."""
    folder = str(home / "envs" / name).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if SERVER_MODULE.encode() in argv and any(arg.startswith(folder) for arg in argv):
            return int(proc.name)
    raise LookupError(f"no instance server for {name}")


def memory_mb(pid: int) -> tuple[float, float, float]:
    """(VmRSS, Pss, Uss) of a process, in MB. Uss (its private pages) is what one more
    instance costs; Pss shares the libraries' pages among the processes mapping them."""
    rss = pss = uss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "Pss":
            pss = int(value.split()[0]) / 1024
        elif key in ("Private_Clean", "Private_Dirty"):
            uss += int(value.split()[0]) / 1024
    return rss, pss, uss


def server_seconds(home: Path, name: str) -> float:
    """From server.json written to ready.json written, for the one instance of ``name``."""
    [folder] = (home / "envs" / name / "instances").iterdir()
    return (folder / "ready.json").stat().st_mtime - (folder / "server.json").stat().st_mtime


def one_round(world: Devenv, name: str) -> dict[str, float]:
    """Start one environment, log in once, measure; the environment keeps running."""
    began = time.perf_counter()
    world.run("start", str(EXAMPLE), "--name", name)
    started = time.perf_counter() - began
    while world.ssh(name, "true").returncode != 0:
        if time.perf_counter() - began > 60:
            raise RuntimeError(f"ssh {name} never succeeded")
        time.sleep(0.05)
    first_ssh = time.perf_counter() - began
    server = server_seconds(world.home, name)
    time.sleep(1.0)  # the session's processes are gone; the server is idle again
    rss, pss, uss = memory_mb(instance_pid(world.home, name))
    return {
        "start_s": started,
        "server_s": server,
        "first_ssh_s": first_ssh,
        "rss_mb": rss,
        "pss_mb": pss,
        "uss_mb": uss,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with served_world("devenv-local-bench-") as world:
        cold = one_round(world, "local-cold")
        rounds = [one_round(world, f"local-{index}") for index in range(args.rounds)]
    report = spread(rounds, ("start_s", "server_s", "first_ssh_s", "rss_mb", "pss_mb", "uss_mb"))
    report["cold"] = {key: round(value, 3) for key, value in cold.items()}
    report["rounds"] = args.rounds
    report["cores"] = os.cpu_count()
    if args.json:
        print(json.dumps(report))
    else:
        print(f"devenv local instance, median of {args.rounds} starts (after a cold one)")
        for key, figure in report.items():
            print(f"{key:12} {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
