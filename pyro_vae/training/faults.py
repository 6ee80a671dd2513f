"""The fault policy of a run: what a NaN loss, a signal and the clock make it do.

- A NaN or infinite loss stops the run with a message naming the epoch, the step and the likely cause
  (:func:`divergence`), or, with ``on_nan="skip"``, skips that step (:class:`EpochLoss`); the last good
  checkpoint is kept.
- Ctrl-C, SIGTERM (schedulers, ``docker stop``, ``timeout``) and SIGHUP (a closed terminal) ask for a stop at
  the end of the current step (several processes: of the next check-in, all together); the point reached
  is saved, and ``resume`` goes on from it as if nothing had happened (:class:`Watch`).
- ``--checkpoint-every``: the point reached inside an epoch is saved this often as well (:class:`Watch`).

The trainer reads the device (the loss, and in several processes what the others saw) only at check-ins,
every CHECK_IN_EVERY steps, since each read makes the CPU wait for the GPU.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

from .. import distributed
from ..config import seconds
from ..errors import Interrupted, TrainingDiverged

# the signals that ask a run to stop at the end of the step and save: Ctrl-C, and what schedulers, `docker stop`,
# `timeout` (SIGTERM) and a closed terminal (SIGHUP) send
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
MAX_SKIPPED_IN_A_ROW = 50  # with on_nan="skip": this many non-finite steps in a row stop the run all the same
# the trainer reads the loss from the device (and several processes agree on NaN and Ctrl-C) every this many steps
CHECK_IN_EVERY = 20


@contextlib.contextmanager
def quiet_nan_warnings():
    """Within: Pyro's warning at each NaN loss is silenced; the trainer reports it itself, once, with the epoch,
    the step and the cause. (Scoped to training: other Pyro programs keep their warnings.)"""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Encountered NaN", category=UserWarning)
        yield


class Watch:
    """What a running epoch watches for besides its steps: a stop asked for by a signal, and the checkpoint
    clock (``--checkpoint-every``). In several processes, all agree at each check-in (:meth:`check_in`)."""

    def __init__(self, checkpoint_every: str, parallel: bool, device: torch.device):
        self.interval, self.parallel, self.device = seconds(checkpoint_every), parallel, device
        self.stop_requested = False  # set by Ctrl-C (or SIGTERM, SIGHUP): stop after the current step
        self.stop_signal = signal.SIGINT  # which of them
        self.save_requested = False  # set when --checkpoint-every has passed: save after the current step
        self.saved_at = time.monotonic()  # when the last checkpoint was written (or training began)

    @contextlib.contextmanager
    def signals(self):
        """While training, the first Ctrl-C (or SIGTERM, SIGHUP: STOP_SIGNALS) asks for a stop after the current
        step, which is saved; a second one stops at once."""
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield
            return

        def request_stop(signum, frame):
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested, self.stop_signal = True, signum

        previous = {signum: signal.signal(signum, request_stop) for signum in STOP_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def saved(self) -> None:
        """A checkpoint was just written (or is moot): the clock starts again."""
        self.save_requested, self.saved_at = False, time.monotonic()

    def check_in_due(self, step: int, n_batches: int) -> bool:
        """Whether to read the device after ``step``: every CHECK_IN_EVERY steps, after the last step,
        and, in one process, as soon as Ctrl-C asks for a stop.

        Reading the loss makes the CPU wait for the GPU, hence not on every step. Several processes
        check in at the same steps only, since they must agree there (see :meth:`check_in`).
        """
        return step % CHECK_IN_EVERY == 0 or step == n_batches or (self.stop_requested and not self.parallel)

    def check_in(self, step: int, losses: "EpochLoss", batch_size: int, bar: Callable[[int, float], None]) -> None:
        """Stop if a loss was not finite, ask for a checkpoint if --checkpoint-every has passed since the
        last one, then show the running loss on the progress bar (``batch_size``: this process's images).

        In several processes, all first agree, in one all-reduce, on the first bad step and on
        whether Ctrl-C was pressed or a checkpoint is due in any of them, so that all act at the same step.
        """
        save = self.interval > 0 and time.monotonic() - self.saved_at >= self.interval
        if self.parallel:
            flags = torch.tensor([int(self.stop_requested), int(save)], device=self.device)
            losses.bad_step, stop, save = distributed.all_max(torch.cat([losses.bad_step.view(1), flags]))
            self.stop_requested = bool(stop)
        self.save_requested = bool(save)
        losses.raise_if_bad()
        bar(step, losses.mean(step, batch_size))

    def stopped(self, where: str, run_dir: Path) -> Interrupted:
        """The error that ends a run stopped by a signal ``where`` ("after epoch 3"), once its point is saved."""
        saved = ", and saved that point" if "step" in where else ""
        return Interrupted(
            f"stopped {where}{saved}; continue with: python cli.py train --resume {run_dir}", self.stop_signal
        )

    def stop_due(self, step: int, n_batches: int) -> bool:
        """Whether Ctrl-C stops the epoch after ``step``: in one process, at once; in several, at the
        next check-in, where all of them know of it. After the last step the epoch ends as usual."""
        return self.stop_requested and step < n_batches and (step % CHECK_IN_EVERY == 0 or not self.parallel)


def divergence(config, where: str, what: str, kept_epoch: int, run_dir: Path) -> TrainingDiverged:
    """The error that stops a run whose loss stopped being finite: where, why (the likely cause, from the
    settings), and what was kept."""
    if config.lr > 1e-2:
        cause = f"the learning rate {config.lr:g} is far above the usual 1e-3: train again with a lower --lr"
    elif config.likelihood in ("gaussian", "laplace") and config.likelihood_scale is None:
        cause = "the learned noise scale may have shrunk towards 0: fix it (--likelihood-scale 0.1) or lower --lr"
    elif config.elbo in ("renyi", "iwae"):
        cause = f"the {config.elbo} bound's importance weights may overflow: use --elbo trace, or lower --lr"
    else:
        cause = "lower --lr, or pass --on-nan skip to skip such steps"
    kept = f"the checkpoint of epoch {kept_epoch} in {run_dir} is kept" if kept_epoch else "no checkpoint was written"
    return TrainingDiverged(f"{what} at {where}: {cause}; {kept}")


class NotFinite(Exception):
    """The loss was not finite at ``step`` (None: in the epoch as a whole); ``what`` says how.
    Trainer.train_epoch turns it into the user's message (:func:`divergence`)."""

    def __init__(self, step: int | None, what: str):
        super().__init__(what)
        self.step, self.what = step, what


class EpochLoss:
    """One epoch's running loss in this process, and the NaN policy (``--on-nan``) for each step's loss.

    total: () float tensor on the device, the sum of the losses counted so far (this process's images).
    skipped: steps whose loss was not finite, left out of ``total`` (``on_nan="skip"``).
    bad_step: () int64 tensor on the device, the first step whose loss was not finite (0: none;
    ``on_nan="stop"``). It stays on the device, since reading it on every step would make the CPU
    wait for the GPU each time: :meth:`raise_if_bad` reads it when the trainer checks in.
    The run stops with :class:`NotFinite`.
    """

    def __init__(self, skip: bool, total: torch.Tensor, skipped: int = 0):
        self.skip = skip
        self.total, self.skipped, self.skipped_in_a_row = total, skipped, 0
        self.bad_step = torch.zeros((), dtype=torch.long, device=total.device)

    def add(self, step: int, loss: torch.Tensor) -> None:
        """Count the loss of step ``step``: a () tensor, the -ELBO summed over this process's images.

        With ``on_nan="skip"``, svi_step has not taken a step whose loss was not finite, and returned
        NaN for it in every process; MAX_SKIPPED_IN_A_ROW such steps in a row stop the run all the same.
        """
        if self.skip:
            finite = bool(torch.isfinite(loss))  # a skipped step's loss is NaN in every process
            self.skipped, self.skipped_in_a_row = (
                self.skipped + (not finite),
                0 if finite else self.skipped_in_a_row + 1,
            )
            if self.skipped_in_a_row == MAX_SKIPPED_IN_A_ROW:
                raise NotFinite(step, f"the loss was not finite for {self.skipped_in_a_row} steps in a row")
            self.total += loss if finite else 0
        else:
            self.bad_step = torch.where((self.bad_step == 0) & ~torch.isfinite(loss), step, self.bad_step)
            self.total += loss

    def raise_if_bad(self) -> None:
        """Stop if some step's loss was not finite (``on_nan="stop"``); waits for the device."""
        if self.bad_step.item():
            raise NotFinite(self.bad_step.item(), "the loss became NaN or infinite")

    def mean(self, steps: int, batch_size: int) -> float:
        """The mean loss per image in this process after ``steps`` steps of ``batch_size`` images each."""
        return self.total.item() / (max(steps - self.skipped, 1) * batch_size)

    def epoch_mean(self, n_batches: int, batch_size: int) -> float:
        """The epoch's mean loss per image over all processes (``batch_size``: the global batch)."""
        total = distributed.all_sum(self.total)
        if self.skipped == n_batches:
            raise NotFinite(None, "the loss was not finite at any step")
        return total.item() / ((n_batches - self.skipped) * batch_size)
