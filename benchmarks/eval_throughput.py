"""Evaluation throughput: the importance-weighted log-likelihood (IWAE, k draws) in images/s.

    python benchmarks/eval_throughput.py                  # vae, mlp and conv, k=1000, on 200 test images
    python benchmarks/eval_throughput.py --net conv --images 1000 --device cuda

pyro_vae's ``importance_log_likelihood`` (Pyro traces of guide and model under a plate of k draws,
8192 decoded codes at a time) against the same estimator written by hand in PyTorch on the same
networks and the same batching, measured in the same run. The table gives the mean difference of
the two estimates (Monte Carlo noise).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F
from common import add_grid_options, describe, quiet_trainer, synchronizer

from pyro_vae import Config
from pyro_vae.data import ImageSet
from pyro_vae.evaluate import importance_log_likelihood

BASELINE = "PyTorch"


@torch.no_grad()
def handwritten_iwae(model, data: ImageSet, k: int, max_rows: int = 8192) -> torch.Tensor:
    """log p(x) ~ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log k, for a Bernoulli VAE/CVAE."""
    draws = min(k, max_rows)
    estimates = []
    for x, y in data.batches(max(1, max_rows // draws)):
        c = model.condition(y)
        loc, scale = model.encoder(x, c)  # (n, z)
        chunks = []
        for start in range(0, k, draws):
            m = min(draws, k - start)
            z = loc + scale * torch.randn(m, *loc.shape, device=loc.device)  # (m, n, z)
            logits = model.decoder(z, c)  # (m, n, C, H, W)
            log_px = (
                -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").flatten(2).sum(-1)
            )
            log_pz = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1)
            log_qz = (-0.5 * ((z - loc) / scale).pow(2) - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
            chunks.append(log_px + log_pz - log_qz)
        estimates.append(torch.logsumexp(torch.cat(chunks), dim=0) - math.log(k))
    return torch.cat(estimates)


def measure(model: str, net: str, k: int, images: int, device: str, repeats: int) -> dict:
    config = Config(model=model, net=net, device=device, train_size=1024, test_size=images, binarize="static")
    trainer = quiet_trainer(config)
    trainer.model.eval()
    data = trainer.test_data
    sync = synchronizer(trainer.device)
    contenders = {
        "pyro_vae": lambda: importance_log_likelihood(trainer.model, data, k=k),
        BASELINE: lambda: handwritten_iwae(trainer.model, data, k),
    }
    rates, results = {name: [] for name in contenders}, {}
    for _ in range(repeats):
        for name, run in contenders.items():
            sync()
            start = time.perf_counter()
            results[name] = run()
            sync()
            rates[name].append(len(data) / (time.perf_counter() - start))
    gap = (results["pyro_vae"] - results[BASELINE]).abs().mean().item()
    return {"rate": {name: statistics.median(r) for name, r in rates.items()}, "mean_gap_nats": gap}


def table(models, nets, k: int, images: int, device: str, repeats: int) -> list[str]:
    rows = [
        f"| model | net | k | pyro_vae (images/s) | {BASELINE} (images/s) | ratio | mean difference (nats) |",
        "|---|---|---|---|---|---|---|",
    ]
    print("\n".join(rows), flush=True)
    for model in models:
        for net in nets:
            r = measure(model, net, k, images, device, repeats)
            ours, base = r["rate"]["pyro_vae"], r["rate"][BASELINE]
            rows.append(
                f"| {model} | {net} | {k} | {ours:,.1f} | {base:,.1f} | {ours / base:.3f} | {r['mean_gap_nats']:.3f} |"
            )
            print(rows[-1], flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_grid_options(parser, ["vae"], repeats=3)
    parser.add_argument("--k", type=int, default=1000, help="importance samples per image")
    parser.add_argument("--images", type=int, default=200, help="test images evaluated per repeat")
    args = parser.parse_args()
    print(describe(args.device))
    print(f"IWAE evaluation, k={args.k}: images/s (median of repeats); ratio = pyro_vae / hand-written PyTorch\n")
    table(args.model or ["vae"], args.net or ["mlp", "conv"], args.k, args.images, args.device, args.repeats)


if __name__ == "__main__":
    main()
