"""Training throughput and peak memory: pyro_vae's SVI step against hand-written PyTorch loops on the same networks.

    python benchmarks/train_throughput.py                          # vae, cvae x mlp, conv x batch 128, 256, 1024
    python benchmarks/train_throughput.py --net mlp --batch-size 256 --compile

The compiled step's first step (trace, compile, and the check against the eager step) is timed
apart and printed under each row; the timed steps come after it.

Every contender trains copies of the same initial networks on the same real MNIST batches
(dynamically binarized), with the trainer's own optimizer (fused Adam). Runs are interleaved and
repeated, and the median samples/s of each is reported with its ratio to the first hand-written
loop, measured in the same run:

- pyro_vae trace: ``Trainer.step`` with ``--step eager``: Pyro's Trace_ELBO on the model/guide pair, then Adam;
- pyro_vae compiled step: the same step with ``--step compiled`` (the default for long runs): Pyro's
  Trace_ELBO traced once into one graph of the loss and its gradients, compiled by Inductor, then Adam;
- pyro_vae jit: the same step with ``--elbo jit``: Pyro's JitTrace_ELBO, the same estimator compiled
  once with torch.jit, which removes Pyro's per-step Python work (about 1 ms a step on 2 CPU cores);
- pyro_vae compiled nets (with ``--compile``): the trace step with the networks torch.compile'd;
- pyro_vae dynamo step (with ``--dynamo``): the other way to compile the whole step, torch.compile
  (Dynamo) over the eager step's loss; it cannot hold Pyro's messages in one graph, so it compiles
  the pieces between them (graph breaks) and runs Pyro's Python in between;
- PyTorch, closed-form KL: the classic hand-written VAE loss (as in pytorch/examples/vae);
- PyTorch, one-sample KL: the same Monte Carlo estimator that Trace_ELBO computes, by hand.

Peak memory: on a GPU, the most memory PyTorch's allocator held during the timed steps of each
contender; on the CPU, how far the resident set of a fresh process rises while it trains the
contender (one process per contender, so the numbers do not mix; Linux only).
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import os
import statistics
import threading
import time

import torch
import torch.nn.functional as F
from common import add_grid_options, describe, quiet_trainer, synchronizer

from pyro_vae import Config, Trainer
from pyro_vae.training import make_optimizer

BASELINE = "PyTorch, closed-form KL"


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


def dynamo_step(trainer: Trainer):
    """The trainer's eager step with its loss under torch.compile (Dynamo, graph breaks allowed)."""
    loss_of = torch.compile(trainer.loss)

    def step(x, y):
        trainer.optimizer.zero_grad(set_to_none=True)
        loss = loss_of(x, y)
        loss.backward()
        trainer.optimizer.step()
        return loss.detach()

    return step


def setting(model: str, net: str, batch_size: int, device: str, steps: int) -> Config:
    return Config(
        model=model,
        net=net,
        batch_size=batch_size,
        device=device,
        epochs=1,
        step="eager",
        train_size=max(batch_size * (steps + 3), 1024),
        test_size=1000,
    )


def build(config: Config, names: list[str]) -> tuple[dict, Trainer]:
    """The named contenders' step functions, all starting from the same initial networks."""
    trainer = quiet_trainer(config)
    steps = {}
    if "pyro_vae compiled nets" in names:
        compiled = quiet_trainer(config.replace(compile=True))
        compiled.model.load_state_dict(trainer.model.state_dict())
        steps["pyro_vae compiled nets"] = compiled.step
    if "pyro_vae dynamo step" in names:
        dynamo = quiet_trainer(config)
        dynamo.model.load_state_dict(trainer.model.state_dict())
        steps["pyro_vae dynamo step"] = dynamo_step(dynamo)
    if "pyro_vae compiled step" in names:
        compiled = quiet_trainer(config.replace(step="compiled"))
        compiled.model.load_state_dict(trainer.model.state_dict())
        steps["pyro_vae compiled step"] = compiled.step
    if "pyro_vae jit" in names:
        # built last: a Trainer clears Pyro's param store, from which the JIT reads the weights
        jit = quiet_trainer(config.replace(elbo="jit"))
        jit.model.load_state_dict(trainer.model.state_dict())
        steps["pyro_vae jit"] = jit.step
    if "pyro_vae trace" in names:
        steps["pyro_vae trace"] = trainer.step
    for name, closed_form in [(BASELINE, True), ("PyTorch, one-sample KL", False)]:
        if name in names:
            net_copy = copy.deepcopy(trainer.model)
            steps[name] = handwritten_step(
                net_copy, make_optimizer(net_copy.parameters(), config.lr, trainer.device), closed_form
            )
    return {name: steps[name] for name in names}, trainer


def batches_of(trainer: Trainer, steps: int) -> list:
    g = torch.Generator(device=trainer.device).manual_seed(0)
    batches = [
        (torch.bernoulli(x, generator=g), y)
        for x, y in trainer.train_data.batches(trainer.config.batch_size, drop_last=True)
    ]
    return batches[: steps + 3]


def measure(config: Config, names: list[str], steps: int, repeats: int) -> dict:
    """Median samples/s of each contender, the seconds of its very first step, and, on a GPU, its peak allocated
    memory in MiB."""
    contenders, trainer = build(config, names)
    batches = batches_of(trainer, steps)
    warm, timed = batches[:3], batches[3:]
    cuda = trainer.device.type == "cuda"
    sync = synchronizer(trainer.device)
    rates = {name: [] for name in contenders}
    peak, first = {}, {}
    for _ in range(repeats):
        for name, step in contenders.items():
            for x, y in warm:  # warm up caches, allocators and compilers
                start = time.perf_counter()
                step(x, y)
                sync()
                first.setdefault(name, time.perf_counter() - start)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            for x, y in timed:
                step(x, y)
            sync()
            rates[name].append(len(timed) * config.batch_size / (time.perf_counter() - start))
            if cuda:
                peak[name] = max(peak.get(name, 0.0), torch.cuda.max_memory_allocated() / 2**20)
    return {
        "rate": {name: statistics.median(r) for name, r in rates.items()},
        "peak_mib": peak,
        "device": trainer.device,
        "first_s": first,
    }


def _resident_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_growth(config: Config, name: str, steps: int) -> float:
    """In a fresh process: MiB by which the resident set rose above its level before ``name`` trained.

    A thread reads the resident set every half millisecond while the steps run (the process's own
    high-water mark is useless here: loading the data set sets it before training starts).
    """
    contenders, trainer = build(config, [name])
    batches = batches_of(trainer, steps)
    before, peak, done = _resident_mib(), [0.0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], _resident_mib())
            time.sleep(0.0005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    for x, y in batches:
        contenders[name](x, y)
    done.set()
    watcher.join()
    return max(peak[0], _resident_mib()) - before


def cpu_peak_memory(config: Config, names: list[str], steps: int) -> dict:
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(1, maxtasksperchild=1) as pool:
        return {name: pool.apply(_peak_rss_growth, (config, name, steps)) for name in names}


def table(
    models,
    nets,
    batch_sizes,
    device: str,
    steps: int,
    repeats: int,
    compile: bool = False,
    memory: bool = True,
    dynamo: bool = False,
) -> list[str]:
    """Markdown rows, one per (model, net, batch size), printed as they are measured."""
    names = ["pyro_vae trace", "pyro_vae compiled step", "pyro_vae jit"] + (
        ["pyro_vae compiled nets"] if compile else []
    )
    names += ["pyro_vae dynamo step"] if dynamo else []
    names += [BASELINE, "PyTorch, one-sample KL"]
    head = [
        "model",
        "net",
        "batch",
        *[f"{n} (samples/s)" for n in names],
        *[f"ratio {n.removeprefix('pyro_vae ')}" for n in names[:-2]],
    ]
    head += ["peak MiB trace / PyTorch"] if memory else []
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    print("\n".join(rows), flush=True)
    for model in models:
        for net in nets:
            for batch_size in batch_sizes:
                config = setting(model, net, batch_size, device, steps)
                r = measure(config, names, steps, repeats)
                rate = r["rate"]
                cells = [
                    model,
                    net,
                    str(batch_size),
                    *[f"{rate[n]:,.0f}" for n in names],
                    *[f"{rate[n] / rate[BASELINE]:.3f}" for n in names[:-2]],
                ]
                if memory:
                    peak = r["peak_mib"] or cpu_peak_memory(config, ["pyro_vae trace", BASELINE], steps)
                    cells.append(f"{peak['pyro_vae trace']:,.0f} / {peak[BASELINE]:,.0f}")
                rows.append("| " + " | ".join(cells) + " |")
                print(rows[-1], flush=True)
                print(f"    (compiled step: first step {r['first_s']['pyro_vae compiled step']:.1f} s)", flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_grid_options(parser, ["vae", "cvae"], repeats=5)
    parser.add_argument("--batch-size", type=int, action="append", help="repeatable [default: 128, 256, 1024]")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--compile", action="store_true", help="also time the eager step with torch.compile'd networks")
    parser.add_argument(
        "--dynamo", action="store_true", help="also time torch.compile over the whole eager step (graph breaks)"
    )
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory column")
    args = parser.parse_args()
    print(describe(args.device))
    print("Training samples/s (median of repeats); ratio = pyro_vae / PyTorch with the closed-form KL\n")
    table(
        args.model or ["vae", "cvae"],
        args.net or ["mlp", "conv"],
        args.batch_size or [128, 256, 1024],
        args.device,
        args.steps,
        args.repeats,
        args.compile,
        args.memory,
        args.dynamo,
    )


if __name__ == "__main__":
    main()
