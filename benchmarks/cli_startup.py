"""How long the command line takes to answer before it does any work: ``--help``, against importing torch alone.

Every command imports torch (the floor), and nothing it does not need to parse its options: torchvision
and matplotlib are imported when a command first draws or fetches. Each command is started afresh,
``--repeats`` times, and the median is reported with its ratio to the floor measured in the same run.

    python benchmarks/cli_startup.py
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "python -c 'import torch' (the floor)": [sys.executable, "-c", "import torch"],
    "python cli.py --help": [sys.executable, str(ROOT / "cli.py"), "--help"],
    "python cli.py train --help": [sys.executable, str(ROOT / "cli.py"), "train", "--help"],
    "python cli.py sample --help": [sys.executable, str(ROOT / "cli.py"), "sample", "--help"],
}


def seconds(command: list[str], repeats: int) -> float:
    """The median wall-clock time of ``command``, started ``repeats`` times after one warm-up (the disk cache)."""
    subprocess.run(command, capture_output=True, check=True, cwd=ROOT)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    floor = None
    for name, command in COMMANDS.items():
        took = seconds(command, args.repeats)
        floor = floor or took
        print(f"{name:<40} {took:6.2f} s  {took / floor:5.2f}x the floor", flush=True)


if __name__ == "__main__":
    main()
