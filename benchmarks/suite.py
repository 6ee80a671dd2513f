"""All the benchmarks, written as one Markdown report with the hardware named.

    python benchmarks/suite.py                              # CPU or GPU, whichever is there
    python benchmarks/suite.py --device cuda --out docs/benchmarks-h100.md

Runs train_throughput (vae, cvae x mlp, conv x batch 128, 256, 1024, with peak memory),
eval_throughput (IWAE k=1000) and epoch_scaling (MNIST 1x, 2x, 4x), printing each row as it is
measured; the report is written to a temporary file and renamed into place at the end.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date
from pathlib import Path

import epoch_scaling
import eval_throughput
import train_throughput
from common import describe


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time the step with torch.compile'd networks")
    args = parser.parse_args()
    start = time.perf_counter()
    machine = describe(args.device)
    print(machine, flush=True)
    lines = [
        "# Benchmarks",
        "",
        f"Measured {date.today()} with `python benchmarks/suite.py{' --compile' if args.compile else ''}`.",
        "",
        f"Machine: {machine}.",
        "",
        "## Training throughput and peak memory",
        "",
        "Samples/s, median of interleaved repeats; ratio: pyro_vae's step over the hand-written PyTorch loop with the "
        "closed-form KL on copies of the same networks, with the same optimizer (fused Adam). Peak memory: "
        + (
            "the allocator's peak during the timed steps."
            if "GPU" in machine
            else "how far the resident set of a fresh process rises while it trains (CPU)."
        ),
        "",
    ]
    lines += train_throughput.table(
        ["vae", "cvae"],
        ["mlp", "conv"],
        [128, 256, 1024],
        args.device,
        steps=20,
        repeats=args.repeats,
        compile=args.compile,
    )
    lines += [
        "",
        "## Evaluation: importance-weighted log-likelihood, k = 1000",
        "",
        "Images/s; the same estimator by hand in PyTorch on the same networks and row batching; "
        "the last column is the mean difference of the two estimates, Monte Carlo noise of untrained networks.",
        "",
    ]
    lines += eval_throughput.table(
        ["vae"], ["mlp", "conv"], k=1000, images=100, device=args.device, repeats=args.repeats
    )
    lines += ["", "## Time per epoch against data set size", ""]
    lines += epoch_scaling.table("vae", "mlp", 256, args.device, repeats=args.repeats)
    lines += ["", f"The whole suite took {(time.perf_counter() - start) / 60:.1f} minutes.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
