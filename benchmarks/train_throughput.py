"""Training throughput: pyro_vae's SVI step against hand-written PyTorch loops on the same networks.

    python benchmarks/train_throughput.py                       # vae and cvae, MLP, batch 256, CPU or GPU
    python benchmarks/train_throughput.py --batch-size 128 --batch-size 1024 --net conv

Every contender trains copies of the same initial networks on the same real MNIST batches
(dynamically binarized), with the trainer's own optimizer (fused Adam). Runs are interleaved and
repeated, and the median samples/s of each is reported with its ratio to the first hand-written
loop, measured in the same run:

- pyro_vae trace: ``Trainer.step``, the default: Pyro's Trace_ELBO on the model/guide pair, then Adam;
- pyro_vae jit: the same step with ``--elbo jit``: Pyro's JitTrace_ELBO, the same estimator compiled
  once with torch.jit, which removes Pyro's per-step Python work (about 1 ms a step on 2 CPU cores);
- PyTorch, closed-form KL: the classic hand-written VAE loss (as in pytorch/examples/vae);
- PyTorch, one-sample KL: the same Monte Carlo estimator that Trace_ELBO computes, by hand.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from pyro_vae import Config, Trainer
from pyro_vae.train import make_optimizer


def handwritten_step(net, optimizer, closed_form_kl: bool):
    """A training step written directly in PyTorch on ``net``'s encoder and decoder."""

    def step(x, y):
        c = net.condition(y)
        loc, scale = net.encoder(x, c)
        z = loc + scale * torch.randn_like(loc)
        reconstruction = F.binary_cross_entropy_with_logits(net.decoder(z, c), x, reduction="sum")
        if closed_form_kl:
            kl = 0.5 * (loc.pow(2) + scale.pow(2) - 1 - 2 * scale.log()).sum()
        else:  # log q(z|x) - log p(z) at the drawn z
            kl = (-0.5 * ((z - loc) / scale).pow(2) - scale.log() + 0.5 * z.pow(2)).sum()
        loss = reconstruction + kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def measure(model: str, net: str, batch_size: int, device: str, steps: int, repeats: int) -> dict:
    config = Config(model=model, net=net, batch_size=batch_size, device=device, epochs=1,
                    train_size=max(batch_size * steps, 1024), test_size=1000)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, tmp, progress=False, log=lambda line: None)
        # built last: a Trainer clears Pyro's param store, from which the JIT reads the weights
        jit = Trainer(config.replace(elbo="jit"), tmp, progress=False, log=lambda line: None)
    jit.model.load_state_dict(trainer.model.state_dict())
    contenders = {"pyro_vae trace": trainer.step, "pyro_vae jit": jit.step}
    for name, closed_form in [("PyTorch, closed-form KL", True), ("PyTorch, one-sample KL", False)]:
        net_copy = copy.deepcopy(trainer.model)
        contenders[name] = handwritten_step(net_copy, make_optimizer(net_copy.parameters(), config.lr, trainer.device), closed_form)
    g = torch.Generator(device=trainer.device).manual_seed(0)
    batches = [(torch.bernoulli(x, generator=g), y) for x, y in trainer.train_data.batches(batch_size, drop_last=True)]
    batches = batches[:steps]
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    rates = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, step in contenders.items():
            for x, y in batches[:3]:  # warm up caches and allocators
                step(x, y)
            sync()
            start = time.perf_counter()
            for x, y in batches:
                step(x, y)
            sync()
            rates[name].append(len(batches) * batch_size / (time.perf_counter() - start))
    return {name: statistics.median(r) for name, r in rates.items()} | {"device": trainer.device}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", choices=["vae", "cvae"], help="repeatable [default: vae, cvae]")
    parser.add_argument("--net", default="mlp", choices=["mlp", "conv"])
    parser.add_argument("--batch-size", type=int, action="append", help="repeatable [default: 256]")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    hardware = torch.cuda.get_device_name() if args.device != "cpu" and torch.cuda.is_available() else platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {hardware}")
    print("Training samples/s (median of repeats); ratio = pyro_vae / PyTorch with the closed-form KL\n")
    print("| model | net | batch | device | pyro_vae trace | pyro_vae jit | PyTorch closed-form KL | PyTorch one-sample KL | ratio trace | ratio jit |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model in args.model or ["vae", "cvae"]:
        for batch_size in args.batch_size or [256]:
            r = measure(model, args.net, batch_size, args.device, args.steps, args.repeats)
            trace, jit, base, same = (r[k] for k in ["pyro_vae trace", "pyro_vae jit", "PyTorch, closed-form KL", "PyTorch, one-sample KL"])
            print(f"| {model} | {args.net} | {batch_size} | {r['device']} | {trace:,.0f} | {jit:,.0f} | {base:,.0f} | {same:,.0f} "
                  f"| {trace / base:.3f} | {jit / base:.3f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
