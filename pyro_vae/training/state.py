"""What a run's checkpoint holds, and the random streams that make a resumed run go on exactly.

A checkpoint (checkpoint.py writes it) holds the settings, the epoch reached, the weights, the optimizer's
state, the metrics of every epoch, the random streams, the data's shape and classes, and, for a run stopped
inside an epoch, the point it reached (``partial``: the epoch's order, the step, the running loss).
"""

from __future__ import annotations

from typing import Callable

import torch


def saved_state(trainer, partial: dict | None = None) -> dict:
    """The checkpoint of ``trainer`` (a training.Trainer) as it stands; ``partial``: the point reached inside
    an epoch (None at the end of one)."""
    rng = {"torch": torch.get_rng_state(), "data": trainer.generator.get_state()}
    if trainer.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(trainer.device)
    return {
        "config": trainer.config.to_dict(),
        "epoch": trainer.epoch,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "history": [record.row() for record in trainer.history],
        "rng": rng,
        "image_shape": list(trainer.train_data.image_shape),
        "classes": trainer.train_data.classes,
        "features": trainer.train_data.features,  # spectrograms: how to turn them back into sound
        "partial": partial,
    }


def restore_random_state(
    rng: dict, generator: torch.Generator, device: torch.device, reseed: int, run_dir, say: Callable[[str], None]
) -> None:
    """Go on with the random streams a checkpoint saved: exactly, on the kind of device that saved them.

    A run that moves between a GPU and the CPU cannot: a CUDA generator's state (Philox, 16 bytes)
    means nothing to the CPU's (Mersenne twister) and back. There the data stream (order, binarization)
    starts afresh from ``reseed`` (the seed and the epoch), the z draws go on from the CPU's saved stream
    (or the GPU's, seeded by PyTorch), and ``say`` is told once, of ``run_dir``, that its numbers now differ
    from an unbroken run's.
    """
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)
    if rng["data"].numel() == generator.get_state().numel():
        generator.set_state(rng["data"])
    else:  # saved by a generator of the other kind of device
        generator.manual_seed(reseed)
        saved = "a GPU" if device.type == "cpu" else "the CPU"
        say(
            f"{run_dir} was saved on {saved} and goes on on {device.type}: its data order starts a new "
            "random stream here, so from now on its numbers differ from those of an unbroken run"
        )


def epoch_start(partial: dict | None, epoch: int, train_data, generator: torch.Generator, main: bool):
    """Where ``epoch`` begins: (order, first step, running total, steps skipped).

    order: (N,) int64 on the device, the order of the training images in this epoch; first: the first step
    to take (1-based). A new epoch draws its order from the data generator; one that was stopped inside
    (``partial``: the point a checkpoint saved) goes on after the saved step, with its running loss.
    """
    device = generator.device
    if partial is not None and partial["epoch"] == epoch:
        order, first = partial["order"].to(device), partial["step"] + 1
        total, skipped = partial["total"].to(device), partial.get("skipped", 0)
        if not main:  # the saved total is the sum over processes: count it once
            total = torch.zeros_like(total)
        return order, first, total, skipped
    return train_data.permutation(generator), 1, torch.zeros((), device=device), 0


def random_state_kept(device: torch.device):
    """A context in which random draws leave the run's own stream as it was: so that the test set
    (its size, which images) plays no part in training, and the validation set only chooses the best epoch."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
