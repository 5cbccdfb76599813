"""Signs of life of a connected session: terminal input, busy processes, busy GPUs.

``connected_idle`` needs when a session last typed (a tty's access time, what ``w``
shows as IDLE: the kernel moves it on input, at 8-second steps) and whether the
account's processes use the CPU; ``utilization_policy`` needs every GPU's use
(``nvidia-smi``). Read from /proc and /dev here, shared by the presence agent and the
local backend's server (stdlib only, Python 3.8+).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

WINDOW_SECONDS = 2.0
"""CPU use is measured over this long: a quarter-second poll would see a prompt's
redraw as busy and a compile's I/O wait as quiet."""
NVIDIA_SMI_QUERY = (
    "nvidia-smi",
    "--query-gpu=index,utilization.gpu",
    "--format=csv,noheader,nounits",
)
NVIDIA_SMI_TIMEOUT = 10.0
_TTY = re.compile(r"^(?:pts/[0-9]+|tty[0-9A-Za-z]+)$")


def tty_input_time(tty: str) -> float | None:
    """Wall-clock time of the last input into ``tty`` (``pts/3``); None if unreadable."""
    if not _TTY.match(tty):
        return None
    try:
        return os.stat("/dev/" + tty).st_atime
    except OSError:
        return None


def last_input(ttys: Iterable[str]) -> float | None:
    """The latest input time of any of ``ttys``."""
    times = [t for t in (tty_input_time(tty) for tty in ttys) if t is not None]
    return max(times) if times else None


def read_cpu_ticks(pids: Iterable[int]) -> dict[tuple[int, int], int]:
    """(pid, start ticks) -> CPU ticks used by it and its reaped children, from
    /proc/PID/stat; processes gone meanwhile are left out."""
    ticks: dict[tuple[int, int], int] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                text = stat.read()
            fields = text[text.rindex(")") + 2 :].split()
            used = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
            ticks[(pid, int(fields[19]))] = used
        except (OSError, ValueError, IndexError):
            continue
    return ticks


class CpuMeter:
    """CPU use of a changing set of processes, in percent of one core, per window.

    A process that started after the window began counts whole; one that ended within
    it is lost (at most a window's worth).
    """

    def __init__(self, ticks_per_second: float, window: float = WINDOW_SECONDS) -> None:
        self.ticks_per_second = ticks_per_second
        self.window = window
        self._began: float | None = None
        self._ticks: dict[tuple[int, int], int] = {}

    def sample(self, ticks: Mapping[tuple[int, int], int], now: float) -> float | None:
        """Percent of a core since the window began, once the window is over; else None."""
        if self._began is None:
            self._began, self._ticks = now, dict(ticks)
            return None
        elapsed = now - self._began
        if elapsed < self.window:
            return None
        used = sum(total - self._ticks.get(key, 0) for key, total in ticks.items())
        self._began, self._ticks = now, dict(ticks)
        return max(used, 0) / self.ticks_per_second / elapsed * 100.0


class GpuSample(NamedTuple):
    """One GPU's utilization (percent) as nvidia-smi reported it; None: ``[N/A]``."""

    gpu: int
    utilization: float | None


class GpuReadError(Exception):
    """nvidia-smi is missing or failed: the GPUs cannot be sampled."""


def parse_gpu_query(text: str) -> list[GpuSample]:
    """``nvidia-smi --query-gpu=index,utilization.gpu --format=csv,noheader,nounits``:
    one ``0, 37`` line per GPU; ``[N/A]`` (MIG, some vGPUs) is None. Anything else (an
    error such as "NVIDIA-SMI has failed ...", "No devices were found") is refused."""
    samples = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 2 or not parts[0].isdigit():
            raise GpuReadError(f"nvidia-smi: {line.strip()[:200]}")
        value = parts[1]
        if value.startswith("[") and value.endswith("]"):  # [N/A], [Not Supported]
            samples.append(GpuSample(int(parts[0]), None))
            continue
        try:
            utilization = float(value.rstrip("%").strip())
        except ValueError:
            raise GpuReadError(f"nvidia-smi: {line.strip()[:200]}") from None
        samples.append(GpuSample(int(parts[0]), utilization))
    if not samples:
        raise GpuReadError("nvidia-smi listed no GPU")
    return samples


def read_gpus(command: tuple[str, ...] = NVIDIA_SMI_QUERY) -> list[GpuSample]:
    """Sample every GPU now; GpuReadError when nvidia-smi is missing or fails."""
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise GpuReadError(f"nvidia-smi: {error}") from None
    if done.returncode != 0:
        first = (done.stdout.strip() or done.stderr.strip()).splitlines()[:1]
        raise GpuReadError(f"nvidia-smi exited {done.returncode}: {''.join(first)[:200]}")
    return parse_gpu_query(done.stdout)


def gpus_busy(samples: Iterable[GpuSample], minimum: float) -> bool:
    """Whether any GPU is at ``minimum`` percent or more (an unknown one counts as busy:
    a GPU that cannot be read must not end the environment)."""
    return any(s.utilization is None or s.utilization >= minimum for s in samples)


GPU_INTERVAL_SECONDS = 10.0
"""How often every GPU is sampled (``utilization_policy``)."""


class GpuWatch:
    """Samples every GPU every ``interval`` seconds; remembers since when every sample
    was under ``minimum`` percent (None after a busy or failed sample)."""

    def __init__(
        self,
        minimum: float,
        interval: float = GPU_INTERVAL_SECONDS,
        read: Callable[[], list[GpuSample]] = read_gpus,
    ) -> None:
        self.minimum = minimum
        self.interval = interval
        self.read = read
        self.quiet_since: float | None = None
        """Wall-clock time of the first of the quiet samples in a row."""
        self.error: str | None = None
        self._next: float | None = None

    def poll(self, wall: float) -> None:
        """Sample now if the interval is over (the first call samples at once)."""
        if self._next is not None and wall < self._next:
            return
        self._next = wall + self.interval
        try:
            samples = self.read()
        except GpuReadError as error:
            self.error, self.quiet_since = str(error), None
            return
        self.error = None
        if gpus_busy(samples, self.minimum):
            self.quiet_since = None
        elif self.quiet_since is None:
            self.quiet_since = wall
