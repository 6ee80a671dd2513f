"""Training in several processes with torch.distributed: one per GPU, or several on CPU cores.

``torchrun`` starts the processes and tells each its place through the environment (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); nothing else is needed:

    torchrun --nproc-per-node 4 cli.py train --model cvae                  # 4 GPUs (or 4 CPU workers)
    torchrun --nnodes 2 --node-rank 0 --master-addr host0 --nproc-per-node 8 cli.py train ...

How the work is split (see Trainer): every process holds the whole data set and draws the same
epoch order from the same seed; ``--batch-size`` is the global batch, and each process trains on
its own contiguous slice of it. DistributedDataParallel averages the gradients over processes.
Process 0 alone evaluates and writes the checkpoint, metrics and figures, so a checkpoint is the
same file whatever the number of processes, and loads in a single process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.nn as nn


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def launched_size() -> int:
    """The number of processes torchrun started (1 without torchrun), known before the group is joined."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched_main() -> bool:
    """Whether this process is process 0 (the one that writes), known before the group is joined."""
    return int(os.environ.get("RANK", "0")) == 0


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Process 0: the one that logs and writes files."""
    return rank() == 0


def device_name(requested: str) -> str:
    """The device of this process: under torchrun with CUDA, the GPU of its local rank."""
    if not launched() or requested == "cpu" or not torch.cuda.is_available():
        return requested
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"


def start(device: torch.device) -> None:
    """Join the process group torchrun set up: NCCL between GPUs, gloo between CPU processes.

    device: this process's device, already resolved (train.resolve_device of :func:`device_name`).
    """
    if not launched() or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def shard(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """This process's slice of a global batch: x (B, ...) -> (B / world_size, ...), y likewise."""
    n = world_size()
    if n == 1:
        return x, y
    size = x.shape[0] // n
    start = rank() * size
    return x[start : start + size], y[start : start + size]


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """The sum of ``t`` over processes (``t`` itself in one process); ``t`` is left unchanged."""
    if world_size() == 1:
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t


def all_max(t: torch.Tensor) -> torch.Tensor:
    if world_size() == 1:
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


class BoundLoss(nn.Module):
    """The loss of a Pyro model/guide pair on a batch, as a module's forward, so that DDP can wrap it.

    DDP synchronizes the gradients of a module's parameters when its forward was called through
    the wrapper; the Pyro program calls the networks itself, so the wrapper goes around this.
    """

    def __init__(self, networks: nn.Module, elbo, program):
        super().__init__()
        self.networks = networks
        self.elbo, self.program = elbo, program

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.elbo.differentiable_loss(*self.program, x, y)


def data_parallel(networks: nn.Module, elbo, program, device: torch.device) -> nn.Module:
    """``BoundLoss`` wrapped in DistributedDataParallel; its gradients are averaged over processes."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    # static_graph: every step uses the same weights (the autoencoder never uses its encoder's
    # scale head, and DDP must know that such weights get no gradient, without searching each step).
    # The buffers (the prior's zeros and ones) never change: no need to send them every step.
    # PyTorch 2.14 renamed the option; older releases (2.11 on GPU machines) know the old name only.
    quiet = (
        "forward_sync_buffers"
        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
        else "broadcast_buffers"
    )
    return DistributedDataParallel(
        BoundLoss(networks, elbo, program),
        device_ids=[device] if device.type == "cuda" else None,
        static_graph=True,
        **{quiet: False},
    )
