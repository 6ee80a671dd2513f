"""Time per training epoch as the data set grows: MNIST repeated 1x, 2x and 4x. It should be linear.

    python benchmarks/epoch_scaling.py                    # vae, mlp, batch 256
    python benchmarks/epoch_scaling.py --net conv --device cuda

Each size trains one full epoch with ``Trainer.train_epoch`` (data on the device, batches taken by
index), after a warm-up epoch; sizes are interleaved and repeated, and the table gives the median
seconds per epoch and the time per image relative to the 1x set's (1.00 is perfectly linear).
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import describe, quiet_trainer, synchronizer

from pyro_vae import Config
from pyro_vae.data import ImageSet


def repeated(data: ImageSet, times: int) -> ImageSet:
    return ImageSet(data.x.repeat(times, 1, 1, 1), data.y.repeat(times), data.classes, data.features)


def table(model: str, net: str, batch_size: int, device: str, factors=(1, 2, 4), repeats: int = 3) -> list[str]:
    config = Config(model=model, net=net, batch_size=batch_size, device=device, epochs=1)
    trainer = quiet_trainer(config)
    sets = {factor: repeated(trainer.train_data, factor) for factor in factors}
    sync = synchronizer(trainer.device)
    trainer.train_epoch(1)  # warm-up
    seconds = {factor: [] for factor in factors}
    for _ in range(repeats):  # interleaved, so a slow moment of the machine does not fall on one size alone
        for factor in factors:
            trainer.train_data = sets[factor]
            sync()
            start = time.perf_counter()
            trainer.train_epoch(1)
            sync()
            seconds[factor].append(time.perf_counter() - start)
    rows = [
        f"| {model}, {net}, batch {batch_size}: data | images | seconds per epoch | time per image vs 1x |",
        "|---|---|---|---|",
    ]
    base = statistics.median(seconds[factors[0]]) / len(sets[factors[0]])
    for factor in factors:
        median = statistics.median(seconds[factor])
        rows.append(
            f"| MNIST x{factor} | {len(sets[factor]):,} | {median:.2f} | {median / len(sets[factor]) / base:.3f} |"
        )
    print("\n".join(rows), flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vae", choices=["vae", "cvae"])
    parser.add_argument("--net", default="mlp", choices=["mlp", "conv"])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(describe(args.device) + "\n")
    table(args.model, args.net, args.batch_size, args.device, repeats=args.repeats)


if __name__ == "__main__":
    main()
