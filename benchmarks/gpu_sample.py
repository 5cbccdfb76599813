"""Sample the GPUs of this machine as devenv's ``utilization_policy`` does, and print it.

Run where a GPU is: ``python benchmarks/gpu_sample.py`` prints nvidia-smi's raw answer
(to record as a sample under tests/agent/gpu_samples/) and what the presence agent's
parser makes of it. Where nvidia-smi is missing or fails it prints why and exits 1.
"""

from __future__ import annotations

import subprocess
import sys

from devenv.agent.presence.signs import NVIDIA_SMI_QUERY, GpuReadError, gpus_busy, read_gpus


def main() -> int:
    try:
        raw = subprocess.run(NVIDIA_SMI_QUERY, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as error:
        print(f"nvidia-smi could not run: {error}")
        return 1
    print(f"$ {' '.join(NVIDIA_SMI_QUERY)}  (exit {raw.returncode})")
    print(raw.stdout + raw.stderr, end="")
    try:
        samples = read_gpus()
    except GpuReadError as error:
        print(f"parsed: error: {error}")
        return 1
    for sample in samples:
        print(f"parsed: GPU {sample.gpu}: {sample.utilization}%")
    print(f"busy at a 10% minimum: {gpus_busy(samples, 10)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
