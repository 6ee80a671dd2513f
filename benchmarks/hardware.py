"""One line naming the machine a benchmark ran on, printed above its table."""

from __future__ import annotations

import os
import platform

import pyro
import torch


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: str = "auto") -> str:
    """e.g. 'CPU: AMD EPYC 7B13, 2 cores (torch uses 2 threads); torch 2.14.1, pyro 1.9.2, Python 3.11.2'."""
    parts = [f"CPU: {cpu_name()}, {os.cpu_count()} cores (torch uses {torch.get_num_threads()} threads)"]
    if device != "cpu" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        parts.append(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB (benchmarked on it)")
    parts.append(f"torch {torch.__version__}, pyro {pyro.__version__}, Python {platform.python_version()}")
    return "; ".join(parts)
