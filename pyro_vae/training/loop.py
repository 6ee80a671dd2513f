"""The Trainer: a run's model, optimizer and state, and the loop over its epochs and steps."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import pyro
import torch

from .. import checkpoint, distributed, trust
from ..compiled_step import CompiledStep
from ..config import Config
from ..data.augment import augment
from ..devices import resolve_device
from ..errors import Interrupted
from ..files import remove_leftovers, save_json
from ..history import EpochRecord, best_epoch, stopped_early
from ..objectives import KLWeight, make_elbo
from ..progress import progress_bar
from ..spec import Spec, build_model, resolve
from . import epoch as end_of_epoch
from .faults import EpochLoss, NotFinite, Watch, divergence, quiet_nan_warnings
from .setup import compiled_step_pays, load_data, monte_carlo_note, objective_name, start_line
from .state import epoch_start, restore_random_state, saved_state
from .step import EagerStep, compile_networks, make_optimizer, set_schedules
from .writers import writing


class Trainer:
    """A model, its optimizer and the state of one run; :meth:`fit` trains it to ``config.epochs``.

    Start a run with ``Trainer(config, run_dir)`` and continue one with ``Trainer.resume(run_dir)``. ``log``
    receives one line per event; ``progress`` shows a bar per epoch. Under torchrun the first Trainer joins
    the process group; leave it with ``distributed.stop()`` when done (the CLI does)."""

    def __init__(
        self, config: Config | Spec, run_dir: str | Path, *, log: Callable[[str], None] = print, progress: bool = True
    ):
        """config: the run's settings, resolved here (spec.resolve) unless they come resolved as a Spec."""
        self.spec = config if isinstance(config, Spec) else resolve(config, distributed.launched_size())
        self.config = config = self.spec.config
        self.run_dir = Path(run_dir)
        for part in checkpoint.PARTS:  # the code this run names is trusted by its content: its commands open it
            trust.grant(getattr(config, part), self.run_dir)
        self.device = resolve_device(distributed.device_name(config.device))
        distributed.start(self.device)  # under torchrun: join the other processes (nothing otherwise)
        self.main = distributed.is_main()  # the process that logs and writes; the only one without torchrun
        self.log, self.show_progress = (log, progress) if self.main else (lambda line: None, False)
        pyro.set_rng_seed(config.seed)
        run_data = load_data(self.spec, self.device, self.main)
        self.train_data, self.test_data = run_data.train, run_data.test
        self.valid_data, self.labelled = run_data.valid, run_data.labelled
        self.model = build_model(self.spec, self.train_data.image_shape, self.train_data.num_classes).to(self.device)
        if config.compile:
            compile_networks(self.model)
        self.optimizer = make_optimizer(self.model.parameters(), config.lr, self.device, config.adam_eps)
        self.elbo, self.train_name = make_elbo(config, self.model), objective_name(config)
        # The program, wrapped once: Pyro's JIT caches its compiled loss by the ids of model and guide,
        # and ``self.model.model`` makes a new bound-method object on every access (a new id each step).
        # The KL weight (--beta, --kl-warmup) is applied from outside, to any model's latent sites.
        self.kl = KLWeight()
        self.program = (self.kl(self.model.model), self.kl(self.model.guide))
        # This run's own Pyro param store, entered on every step: the JIT reads the weights from the
        # store by name, and another model in the same process ("encoder", "decoder") must not leak in.
        self.param_state: dict = {"params": {}, "constraints": {}}
        # Several processes: the loss goes through DistributedDataParallel, which averages gradients
        self.parallel = None
        if distributed.world_size() > 1:
            self.parallel = distributed.data_parallel(self.model, self.elbo, self.program, self.device)
        # --step: Pyro's Python on every batch (EagerStep), or traced once per batch shape and compiled
        skip = config.on_nan == "skip"
        self.eager_step = EagerStep(
            self.elbo, self.program, self.optimizer, self.param_state, skip, self.parallel, bf16=config.amp == "bf16"
        )
        self.loss = self.eager_step.loss
        self.compiled = None
        if compiled_step_pays(self.spec, self.train_data, self.parallel is not None):
            self.compiled = CompiledStep(
                self.model, self.loss, self.kl, self.optimizer, self.eager_step, log=self.log, skip_nonfinite=skip
            )
        # one generator for the data's randomness (order, dynamic binarization); Pyro's z draws use the global RNG
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.epoch, self.history = 0, []
        self.partial: dict | None = None  # where an interrupted epoch stopped: {epoch, step, order, total}
        self.watch = Watch(config.checkpoint_every, self.parallel is not None, self.device)

    @classmethod
    def resume(cls, run_dir: str | Path, *, epochs: int | None = None, trust_code: bool = False, **kwargs) -> "Trainer":
        """Continue the run in ``run_dir`` from its last checkpoint (to ``epochs`` in all, if given);
        ``trust_code``: run the code its settings name even where the user has not trusted it (trust.py)."""
        spec, state = checkpoint.load_run(run_dir, trust_code=trust_code, epochs=epochs)
        return cls.from_checkpoint(spec, state, run_dir, **kwargs)

    @classmethod
    def from_checkpoint(cls, spec: Spec, state: dict, run_dir: str | Path, **kwargs) -> "Trainer":
        """The run ``spec`` at the point its checkpoint ``state`` (checkpoint.load_run) saved."""
        trainer = cls(spec, run_dir, **kwargs)
        checkpoint.load_weights(run_dir, state, trainer.model, trainer.optimizer)
        trainer.epoch, trainer.history = state["epoch"], list(state["history"])
        trainer.partial = state.get("partial")
        reseed = trainer.config.seed * 1_000_003 + trainer.epoch
        restore_random_state(state["rng"], trainer.generator, trainer.device, reseed, trainer.run_dir, trainer.log)
        return trainer

    def fit(self) -> list[EpochRecord]:
        """Train from the current epoch to ``config.epochs``; returns the metrics of every epoch."""
        # one writer per run directory (writers.py): a second train or --resume into it is refused
        with writing(self.run_dir), quiet_nan_warnings():
            return self._fit()

    def _fit(self) -> list[EpochRecord]:
        cfg = self.config
        if self.main:
            remove_leftovers(self.run_dir)  # half-written files of a run that was killed while saving
            save_json(cfg.to_dict(), self.run_dir / checkpoint.CONFIG)
        if self.epoch >= cfg.epochs:
            self.log(
                f"{self.run_dir} is already at epoch {self.epoch} of {cfg.epochs}; pass --epochs N to train further"
            )
            return self.history
        self.log(start_line(cfg, len(self.train_data), self.device, self.parallel, self.compiled, self.run_dir))
        if cfg.elbo == "meanfield" and (note := monte_carlo_note(self.model, self.train_data, self.param_state)):
            self.log(note)
        figures_at = float("-inf")
        with self.watch.signals():
            for epoch in range(self.epoch + 1, cfg.epochs + 1):
                if stopped_early(self.history, self.epoch, cfg.early_stopping):
                    break
                figures_at = self.fit_epoch(epoch, figures_at)
        if stopped_early(self.history, self.epoch, cfg.early_stopping):
            self.log(end_of_epoch.early_stop_line(self.history, self.epoch, cfg.early_stopping))
        self.log(f"done: {self.run_dir}")
        return self.history

    def fit_epoch(self, epoch: int, figures_at: float) -> float:
        """Train one epoch, test it and save it; returns when the figures were last drawn."""
        cfg, start = self.config, time.perf_counter()
        train_loss = self.train_epoch(epoch)
        if not self.main:  # process 0 tests and saves; the others go on to the next epoch
            self.epoch = epoch
            if self.watch.stop_requested:
                raise Interrupted(f"stopped after epoch {epoch}", self.watch.stop_signal)
            return figures_at
        test, valid, accuracy = end_of_epoch.measure(self.model, self.test_data, self.valid_data, self.device)
        if not (math.isfinite(test.neg_elbo) and math.isfinite(train_loss)):
            what = f"the -ELBO became {train_loss} (train), {test.neg_elbo} (test)"
            raise divergence(cfg, f"epoch {epoch}", what, self.epoch, self.run_dir)
        self.epoch = epoch
        self.history.append(end_of_epoch.record(epoch, train_loss, test, valid, accuracy, time.perf_counter() - start))
        checkpoint.save(self.run_dir, saved_state(self))
        best = valid is not None and best_epoch(self.history) == epoch
        if best:
            checkpoint.save(self.run_dir, saved_state(self), best=True)
        # drawing costs about a second: on small data sets, where epochs take less, not every epoch
        if epoch == cfg.epochs or time.perf_counter() - figures_at >= end_of_epoch.FIGURE_INTERVAL_S:
            end_of_epoch.draw(self.model, self.train_data, self.test_data, self.run_dir, cfg.seed)
            figures_at = time.perf_counter()
        self.log(end_of_epoch.report(cfg.epochs, self.train_name, self.history[-1], best))
        if self.watch.stop_requested:
            raise self.watch.stopped(f"after epoch {epoch}", self.run_dir)
        return figures_at

    def train_epoch(self, epoch: int) -> float:
        """One pass over the training set; returns the mean -ELBO per image, in nats, over all processes.

        Each step follows the data path of the package's docstring (training/__init__.py). An epoch interrupted
        by Ctrl-C is saved with its order and running loss, and goes on from the next step when the run is resumed.
        """
        cfg = self.config
        self.model.train()
        n_batches = self.train_data.num_batches(cfg.batch_size, drop_last=True)
        order, first, losses = self.start_epoch(epoch)
        if self.parallel is not None:  # each process draws its own z: seeded by run, epoch and process
            torch.manual_seed(cfg.seed * 1_000_003 + epoch * 1009 + distributed.rank())
        try:
            with progress_bar(self.show_progress, f"epoch {epoch}/{cfg.epochs}", n_batches) as bar:
                batches = self.train_data.batches(cfg.batch_size, order=order, start=first - 1, drop_last=True)
                for step, (x, y) in enumerate(batches, first):  # x: (B, C, H, W), y: (B,) or (B, A)
                    if self.labelled is not None:  # --labels: y is -1 where hidden; add labelled images
                        x, y = self.labelled.join(x, y, self.generator)
                    x = augment(x, cfg, self.generator)  # drawn alike in every process
                    x, y = distributed.shard(x, y)  # this process's slice: x (B/P, C, H, W)
                    set_schedules(cfg, self.kl, self.optimizer, epoch, step / n_batches)  # KL weight, learning rate
                    losses.add(step, self.step(x, y))  # model and guide under the KL weight, -ELBO, Adam step
                    if self.watch.check_in_due(step, n_batches):  # this process's images
                        self.watch.check_in(step, losses, cfg.batch_size // distributed.world_size(), bar)
                    if self.watch.stop_due(step, n_batches):
                        self.partial = self.save_point(epoch, step, order, losses)
                        raise self.watch.stopped(f"at epoch {epoch}, step {step} of {n_batches}", self.run_dir)
                    if self.watch.save_requested and step < n_batches:  # --checkpoint-every: the clock says so
                        self.save_point(epoch, step, order, losses)
            mean = losses.epoch_mean(n_batches, cfg.batch_size)
            # in every process: the epoch's own checkpoint follows, so a save asked for at its last step is moot
            self.watch.saved()
        except NotFinite as e:
            where = f"epoch {epoch}" + (f", step {e.step} of {n_batches}" if e.step else "")
            raise divergence(cfg, where, e.what, self.epoch, self.run_dir) from None  # not "during handling of"
        if losses.skipped:
            self.log(f"epoch {epoch}: skipped {losses.skipped} of {n_batches} steps whose loss was not finite")
        return mean

    def start_epoch(self, epoch: int) -> tuple[torch.Tensor, int, EpochLoss]:
        """Where ``epoch`` begins (state.epoch_start); a point saved inside it is taken up once."""
        start = epoch_start(self.partial, epoch, self.train_data, self.generator, self.main)
        self.partial = None
        return start[0], start[1], EpochLoss(self.config.on_nan == "skip", *start[2:])

    def save_point(self, epoch: int, step: int, order: torch.Tensor, losses: EpochLoss) -> dict:
        """Save the point reached, step ``step`` of ``epoch``: ``resume`` goes on from the next step
        exactly as if nothing had happened (Ctrl-C, --checkpoint-every).

        The checkpoint's ``partial`` holds the epoch's order (N,), the running loss summed over the
        processes and the steps skipped; :meth:`start_epoch` takes them up again. Returns that point.
        """
        total = distributed.all_sum(losses.total).cpu()
        partial = {"epoch": epoch, "step": step, "order": order.cpu(), "total": total, "skipped": losses.skipped}
        if self.main:
            checkpoint.save(self.run_dir, saved_state(self, partial))
        self.watch.saved()
        return partial

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One SVI step on a batch; returns the batch's loss, the negative bound summed over images (detached).

        x: (B/P, C, H, W), y: (B/P,) or (B/P, A): this process's slice of the global batch (all of it
        in one process), and the loss is its share. The compiled step where ``--step`` chose it, else the eager one.
        """
        return (self.compiled or self.eager_step)(x, y)
