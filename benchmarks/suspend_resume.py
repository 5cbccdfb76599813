"""Suspend and resume on the local backend, as a user runs them: how long `devenv suspend
--wait` takes, and `devenv resume` to SSH-ready (target: 1.5 s).

A private world (DEVENV_HOME, HOME, ports) with `devenv server` in the foreground. One
environment (`on_idle: suspend`), with a file written over SSH; each round runs the
real `devenv suspend NAME --wait`, then the real `devenv resume NAME` (it returns once the
instance accepts SSH) and the real `ssh NAME cat notes.txt` (the file must be there):
``suspend_s``, ``resume_s`` (the command) and ``resume_ssh_s`` (to that first ssh done).
``server_ready_s``: from the resume command's start to the server writing ready.json.
Figures are medians of ``--rounds``.

    python -m benchmarks.suspend_resume [--rounds 5] [--json]
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

NAME = "bench-nap"
CONFIG = "type: dev-environment\non_idle: suspend\ninactivity_duration: off\n"


def ready_mtime(home: Path) -> float:
    [folder] = (home / "envs" / NAME / "instances").iterdir()
    return (folder / "ready.json").stat().st_mtime


def one_round(world: Devenv) -> dict[str, float]:
    began = time.perf_counter()
    world.run("suspend", NAME, "--wait")
    suspended = time.perf_counter() - began
    began_wall, began = time.time(), time.perf_counter()
    world.run("resume", NAME)
    resumed = time.perf_counter() - began
    read = world.ssh(NAME, "cat notes.txt")
    if read.stdout != "kept\n":
        raise RuntimeError(f"the workspace file is not there: {read.stdout!r} {read.stderr!r}")
    first_ssh = time.perf_counter() - began
    return {
        "suspend_s": suspended,
        "resume_s": resumed,
        "resume_ssh_s": first_ssh,
        "server_ready_s": ready_mtime(world.home) - began_wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with served_world("devenv-suspend-bench-") as world:
        config = world.root / "dev.yml"
        config.write_text(CONFIG)
        world.run("start", str(config), "--name", NAME)
        if world.ssh(NAME, "echo kept > notes.txt").returncode != 0:
            raise RuntimeError("could not write the workspace file")
        rounds = [one_round(world) for _ in range(args.rounds)]
    report = spread(rounds, ("suspend_s", "resume_s", "resume_ssh_s", "server_ready_s"))
    report["rounds"] = args.rounds
    report["cores"] = os.cpu_count()
    if args.json:
        print(json.dumps(report))
    else:
        print(f"devenv local suspend/resume, median of {args.rounds} rounds")
        for key, figure in report.items():
            print(f"{key:15} {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
