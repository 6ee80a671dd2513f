"""Do the numbers stay put? Train a set of configurations briefly and record their final metrics.

A refactor must not move them: run this on the code before the change (``--out before.json``) and after it
(``--against before.json``); every metric must agree to four decimals. The runs go through the CLI, the one
surface both versions share, so the script holds across changes to the package's insides.

    python benchmarks/same_numbers.py --out /tmp/before.json
    python benchmarks/same_numbers.py --against /tmp/before.json
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# a run that trains in seconds: 2,000 real training images, 500 test images, two epochs
SMALL = ["--train-size", "2000", "--test-size", "500", "--batch-size", "100", "--epochs", "2", "--z-dim", "8"]
SMALL += ["--hidden-dim", "128", "--device", "cpu", "--seed", "3", "--step", "eager"]

CONFIGS = {
    "vae": ["--model", "vae"],
    "cvae": ["--model", "cvae"],
    "ae": ["--model", "ae"],
    "hvae": ["--model", "hvae"],
    "m2": ["--model", "cvae", "--labels", "100"],
    "beta-warmup": ["--model", "vae", "--beta", "2", "--kl-warmup", "2"],
    "iwae": ["--model", "vae", "--elbo", "iwae", "--particles", "3"],
    "meanfield": ["--model", "vae", "--elbo", "meanfield"],
    "jit": ["--model", "vae", "--elbo", "jit"],
    "compiled": ["--model", "vae", "--step", "compiled"],
    "conv": ["--model", "vae", "--net", "conv"],
    "prior-mixture": ["--model", "vae", "--prior", "mixture"],
    "prior-vamp": ["--model", "vae", "--prior", "vamp"],
    "prior-flow": ["--model", "vae", "--prior", "flow"],
    "cvae-prior-standard": ["--model", "cvae", "--prior", "standard"],
    "guide-full-rank": ["--model", "vae", "--guide", "full-rank"],
    "guide-iaf": ["--model", "vae", "--guide", "iaf"],
    "likelihood-continuous-bernoulli": ["--model", "vae", "--likelihood", "continuous-bernoulli", "--binarize", "none"],
    "likelihood-autoregressive": ["--model", "vae", "--likelihood", "autoregressive"],
}


def last_row(run_dir: Path) -> dict[str, float]:
    """The final epoch's metrics from a run's metrics.csv, as numbers (timings left out: they are not numbers
    a refactor keeps)."""
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    numbers = {}
    for key, value in rows[-1].items():
        if "time" in key or "second" in key or value in ("", None):
            continue
        try:
            numbers[key] = float(value)
        except ValueError:
            pass
    return numbers


def train(name: str, flags: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / name
        command = [sys.executable, str(ROOT / "cli.py"), "train", *SMALL, *flags, "--run-dir", str(run_dir)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"{name}: train failed:\n{done.stderr[-2000:]}")
        return last_row(run_dir)


def differences(before: dict, after: dict) -> list[str]:
    problems = []
    for name, metrics in before.items():
        if name not in after:
            problems.append(f"{name}: not run")
            continue
        for key, value in metrics.items():
            new = after[name].get(key)
            if new is None or round(new, 4) != round(value, 4):
                problems.append(f"{name}: {key} was {value!r}, now {new!r}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the metrics here (JSON)")
    parser.add_argument("--against", type=Path, help="compare with metrics written earlier by --out")
    parser.add_argument("--only", nargs="*", default=None, help="run these configurations only")
    args = parser.parse_args()
    names = args.only or list(CONFIGS)
    results = {}
    for name in names:
        start = time.perf_counter()
        results[name] = train(name, CONFIGS[name])
        print(f"{name:34s} {time.perf_counter() - start:6.1f} s  {results[name]}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, sort_keys=True))
    if args.against:
        before = json.loads(args.against.read_text())
        before = {name: before[name] for name in names if name in before}
        problems = differences(before, results)
        print("\n".join(problems) if problems else f"the same numbers to 4 decimals in {len(before)} configurations")
        raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
