"""What the benchmarks share: the line naming the machine, a quiet trainer, a clock that waits for
the GPU, and the options that pick the grid of models, networks and devices."""

from __future__ import annotations

import argparse
import os
import platform
import tempfile

import pyro
import torch

from pyro_vae import Config, Trainer


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


def quiet_trainer(config: Config) -> Trainer:
    """A Trainer that logs nothing; its run directory is gone at once (a benchmark writes no files)."""
    with tempfile.TemporaryDirectory() as tmp:
        return Trainer(config, tmp, progress=False, log=lambda line: None)


def synchronizer(device: torch.device):
    """A function that waits until ``device`` has done its queued work, so a clock reads true times."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def add_grid_options(parser: argparse.ArgumentParser, models: list[str], repeats: int) -> None:
    """--model and --net (repeatable; ``models`` and both nets when left out), --device, --repeats."""
    parser.add_argument(
        "--model", action="append", choices=["vae", "cvae"], help=f"repeatable [default: {', '.join(models)}]"
    )
    parser.add_argument("--net", action="append", choices=["mlp", "conv"], help="repeatable [default: mlp, conv]")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=repeats)
