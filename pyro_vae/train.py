"""Training: stochastic variational inference with a Pyro ELBO.

The data path, one step of :meth:`Trainer.train_epoch` (B = --batch-size, P = the number of processes):

    data set on the device   x (N, C, H, W) in [0, 1]; y (N,) class labels or (N, A) attribute vectors
    -> batch                 x (B, C, H, W), y (B,) or (B, A): the next B of this epoch's shuffled order
    -> binarize, flip        augment(): --binarize dynamic draws every pixel anew (dequantize: moves it within
                             its grey level), --flip mirrors half the images
    -> this process's slice  distributed.shard: x (B/P, C, H, W); the whole batch in one process
    -> model and guide       both under objectives.KLWeight, which weighs log p(z) and log q(z|x) by the KL weight
    -> ELBO                  loss = -ELBO of the slice, summed over its images (Trace_ELBO by default)
    -> optimizer step        loss.backward(); one Adam step on all weights (svi_step)
                             (--step compiled: model, guide, ELBO and backward run as one graph, traced
                             once per batch shape and compiled: compiled_step.py)
    -> checkpoint            after each epoch: test ELBO, checkpoint, metrics.csv, figures (fit_epoch);
                             inside an epoch, the point reached every --checkpoint-every (save_point)

From model to optimizer step that is SVI as Pyro documents it for PyTorch optimizers: one torch
Adam over every weight is faster than ``pyro.infer.SVI``'s per-parameter wrappers, and its state is
a plain state dict. Every file is written atomically.

Faults: a run killed at any moment keeps its last checkpoint: of the last epoch, or of the point
reached inside one at most --checkpoint-every (10 minutes) ago. One process writes a run at a time
(lock.py). Ctrl-C, SIGTERM (schedulers, ``docker stop``, ``timeout``) and SIGHUP (a closed terminal)
stop at the end of the current step (several processes: of the next 20th step, all together) and
save a checkpoint of that point, from which ``resume`` goes on as if nothing had happened. A NaN or
infinite loss stops the run with a message naming the epoch, the step and the likely cause (or, with
``on_nan="skip"``, skips that step); the last good checkpoint is kept.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Callable, NoReturn

import pyro
import torch
from pyro.infer import RenyiELBO

from . import checkpoint, data, distributed, lock, trust
from .compiled_step import CompiledStep
from .config import AUTO_COMPILED_STEPS, Config, seconds
from .data.imageset import dequantize
from .data.labels import LabelledShare, keep_labels
from .errors import Interrupted, TrainingDiverged, UserError
from .evaluate import classifier_accuracy, evaluate_elbo
from .files import remove_leftovers, save_json
from .models import build_model
from .objectives import KLWeight, kl_weight, make_elbo, monte_carlo_sites
from .parts import resolve, short_name
from .plots import reconstruction_figure, sample_figure
from .schedules import lr_scale

# the signals that ask a run to stop at the end of the step and save: Ctrl-C, and what schedulers, `docker stop`,
# `timeout` (SIGTERM) and a closed terminal (SIGHUP) send
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
FIGURE_INTERVAL_S = 30  # the sample and reconstruction figures are redrawn at most this often, and at the end
# Pyro warns at each NaN loss; the trainer reports it itself, once, with the epoch, step and cause
warnings.filterwarnings("ignore", message="Encountered NaN", category=UserWarning)
MAX_SKIPPED_IN_A_ROW = 50  # with on_nan="skip": this many non-finite steps in a row stop the run all the same
# the trainer reads the loss from the device (and several processes agree on NaN and Ctrl-C) every this many steps
CHECK_IN_EVERY = 20
# --labels: labelled images added to each batch (all of them, when there are fewer)
LABELLED_PER_BATCH = 64


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when PyTorch sees a GPU, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use --device cpu (or auto)")
    return torch.device(name)


def make_optimizer(parameters, lr: float, device: torch.device, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam over ``parameters``, with PyTorch's fused kernel where it has one; ``eps``: ``--adam-eps``.

    Fused, each weight tensor is updated in one pass instead of about ten elementwise ops: on 2
    CPU cores that makes an MLP training step about 15% faster (benchmarks/train_throughput.py).
    A resumed run keeps the setting its checkpoint was saved with.
    """
    return torch.optim.Adam(parameters, lr=lr, eps=eps, fused=device.type in ("cpu", "cuda"))


def compile_networks(model: torch.nn.Module) -> None:
    """torch.compile each network of ``model`` (encoder, decoder, ...) in place.

    The probabilistic program stays eager Python, so Pyro's tracing works as before; the networks
    run as compiled kernels. Compiling in place keeps the parameters' names, so a checkpoint of a
    compiled run is the same as any other. The first steps, and the first evaluation, wait for
    the compiler (tens of seconds on a CPU).
    """
    for name, module in model.named_children():
        if name not in ("likelihood", "p_z", "q_z"):  # the parts build Distribution objects: nothing worth compiling
            module.compile()


def default_run_dir(config: Config, recipe: str | None = None) -> Path:
    """runs/<model>-<dataset>-<time>, or runs/<recipe>-<time> for a run of a recipe; a model named by
    reference (file.py:Class, package.module:Class) by its class."""
    name = recipe or f"{short_name(config.model)}-{config.dataset}"
    return Path("runs") / f"{name}-{datetime.now():%Y%m%d-%H%M%S}"


class Trainer:
    """A model, its optimizer and the state of one run; :meth:`fit` trains it to ``config.epochs``.

    Start a run with ``Trainer(config, run_dir)`` and continue one with ``Trainer.resume(run_dir)``.
    ``log`` receives one line per event; ``progress`` shows a bar per epoch. Under torchrun the
    first Trainer joins the process group; leave it with ``distributed.stop()`` when done (cli.py does).
    """

    def __init__(
        self, config: Config, run_dir: str | Path, *, log: Callable[[str], None] = print, progress: bool = True
    ):
        self.config = config.validate()
        self.run_dir = Path(run_dir)
        for (
            part
        ) in checkpoint.PARTS:  # the code this run names is trusted by its content: its commands open it without a flag
            trust.grant(getattr(config, part), self.run_dir)
        self.device = resolve_device(distributed.device_name(config.device))
        distributed.start(self.device)  # under torchrun: join the other processes (nothing otherwise)
        distributed.check_batch_size(config.batch_size)
        self.main = distributed.is_main()  # the process that logs and writes; the only one without torchrun
        self.log, self.show_progress = (log, progress) if self.main else (lambda line: None, False)
        pyro.set_rng_seed(config.seed)

        if not self.main:  # process 0 prepares the data (on first use), then the others read its cache
            distributed.barrier()
        train, test = data.load(config.dataset, self.device, config.binarize, config.condition)
        if self.main:
            distributed.barrier()
        self.valid_data = None  # --validation: training images held out to choose the best epoch by
        if config.validation is not None:
            train, self.valid_data = data.hold_out(train, config.validation, config.seed, config.binarize)
        self.train_data, self.test_data = train.head(config.train_size), test.head(config.test_size)
        self.labelled = None  # --labels: the labelled images added to every batch
        if config.labels is not None:
            self.train_data = keep_labels(self.train_data, config.labels, config.seed)
            self.labelled = LabelledShare(self.train_data, LABELLED_PER_BATCH)
        if config.batch_size > len(self.train_data):
            raise UserError(
                f"--batch-size {config.batch_size} is larger than the {len(self.train_data)} training images; lower it"
            )

        if resolve("model", config.model).conditional and self.train_data.num_classes < 2:
            raise UserError(
                f"{config.dataset} has one class, so a conditional model ({config.model}) has nothing to condition on; "
                "use --model vae, or (celeba) name attributes with --condition Smiling,Eyeglasses"
            )
        self.model = build_model(config, self.train_data.image_shape, self.train_data.num_classes).to(self.device)
        if config.compile:
            compile_networks(self.model)
        self.optimizer = make_optimizer(self.model.parameters(), config.lr, self.device, config.adam_eps)
        self.elbo = make_elbo(config, self.model)
        # what the training loss is: the ELBO itself, or another objective (a tighter bound, a weighted KL,
        # the semi-supervised objective with its classification term, over batches with labelled images added)
        plain = (
            config.elbo in ("trace", "meanfield", "jit")
            and config.beta == 1
            and not config.kl_warmup
            and not config.labels
        )
        if config.labels:
            self.train_name = (
                f"train objective (semi-supervised, {config.labels} labels, classify weight {config.classify_weight:g})"
            )
        else:
            self.train_name = "train" if plain else f"train objective ({config.elbo}, beta {config.beta:g})"
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
            if isinstance(self.elbo, RenyiELBO):
                raise UserError(
                    f"--elbo {config.elbo} cannot train in several processes (Pyro runs its backward pass "
                    "itself); use --elbo trace under torchrun"
                )
            self.parallel = distributed.data_parallel(self.model, self.elbo, self.program, self.device)
        # --step: Pyro's Python on every batch (svi_step), or traced once per batch shape and compiled
        self.compiled = None
        if self.steps_compiled():
            self.compiled = CompiledStep(
                self.model,
                self.loss,
                self.kl,
                self.optimizer,
                self.eager_step,
                log=self.log,
                skip_nonfinite=config.on_nan == "skip",
            )
        # one generator for the data's randomness (order, dynamic binarization); Pyro's z draws use the global RNG
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.epoch = 0
        self.history: list[dict] = []
        self.partial: dict | None = None  # where an interrupted epoch stopped: {epoch, step, order, total}
        self.stop_requested = False  # set by Ctrl-C (or SIGTERM, SIGHUP): stop after the current step
        self.stop_signal = signal.SIGINT  # which of them
        self.save_requested = False  # set when --checkpoint-every has passed: save after the current step
        self.saved_at = time.monotonic()  # when the last checkpoint was written (or training began)

    @classmethod
    def resume(cls, run_dir: str | Path, *, epochs: int | None = None, trust_code: bool = False, **kwargs) -> "Trainer":
        """Continue the run in ``run_dir`` from its last checkpoint (to ``epochs`` in all, if given);
        ``trust_code``: run the code its settings name even where the user has not trusted it (trust.py)."""
        state = checkpoint.load(run_dir, trust_code=trust_code)
        config = Config.from_dict(state["config"])
        if epochs is not None:
            config = config.replace(epochs=epochs)
        trainer = cls(config, run_dir, **kwargs)
        checkpoint.load_weights(run_dir, state, trainer.model, trainer.optimizer)
        trainer.epoch, trainer.history = state["epoch"], list(state["history"])
        trainer.partial = state.get("partial")
        trainer.restore_random_state(state["rng"])
        return trainer

    def restore_random_state(self, rng: dict) -> None:
        """Go on with the random streams a checkpoint saved: exactly, on the kind of device that saved them.

        A run that moves between a GPU and the CPU cannot: a CUDA generator's state (Philox, 16 bytes)
        means nothing to the CPU's (Mersenne twister) and back. There the data stream (order, binarization)
        starts afresh from the seed and the epoch, the z draws go on from the CPU's saved stream (or the
        GPU's, seeded by PyTorch), and the run says once that its numbers now differ from an unbroken one's.
        """
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        if rng["data"].numel() == self.generator.get_state().numel():
            self.generator.set_state(rng["data"])
        else:  # saved by a generator of the other kind of device
            self.generator.manual_seed(self.config.seed * 1_000_003 + self.epoch)
            saved = "a GPU" if self.device.type == "cpu" else "the CPU"
            self.log(
                f"{self.run_dir} was saved on {saved} and goes on on {self.device.type}: its data order starts a new "
                "random stream here, so from now on its numbers differ from those of an unbroken run"
            )

    def state(self) -> dict:
        rng = {"torch": torch.get_rng_state(), "data": self.generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "history": self.history,
            "rng": rng,
            "image_shape": list(self.train_data.image_shape),
            "classes": self.train_data.classes,
            "features": self.train_data.features,  # spectrograms: how to turn them back into sound
            "partial": self.partial,  # None at the end of an epoch
        }

    def fit(self) -> list[dict]:
        """Train from the current epoch to ``config.epochs``; returns the metrics of every epoch."""
        # one writer per run directory (lock.py): a second train or --resume into it is refused
        with lock.hold(self.run_dir) if self.main else contextlib.nullcontext():
            return self._fit()

    def _fit(self) -> list[dict]:
        cfg = self.config
        if self.main:
            remove_leftovers(self.run_dir)  # half-written files of a run that was killed while saving
            save_json(cfg.to_dict(), self.run_dir / checkpoint.CONFIG)
        if self.epoch >= cfg.epochs:
            self.log(
                f"{self.run_dir} is already at epoch {self.epoch} of {cfg.epochs}; pass --epochs N to train further"
            )
            return self.history
        processes = f" in {distributed.world_size()} processes" if self.parallel is not None else ""
        how = " with the compiled step (the first step waits for the compiler)" if self.compiled is not None else ""
        self.log(
            f"training {cfg.model} on {cfg.dataset} ({len(self.train_data)} images) "
            f"on {self.device}{processes}{how}: {self.run_dir}"
        )
        if cfg.elbo == "meanfield":
            self.note_monte_carlo_kl()
        figures_at = float("-inf")
        with self.stop_on_interrupt():
            for epoch in range(self.epoch + 1, cfg.epochs + 1):
                if self.stopped_early():
                    break
                figures_at = self.fit_epoch(epoch, figures_at)
        if self.stopped_early():
            self.log(
                f"stopped early at epoch {self.epoch}: the validation -ELBO has not improved for {cfg.early_stopping} "
                f"epochs since epoch {self.best_epoch()}, kept in best.pt"
            )
        self.log(f"done: {self.run_dir}")
        return self.history

    def random_state_kept(self):
        """A context in which random draws leave the run's own stream as it was: so that the test set
        (its size, which images) plays no part in training, and the validation set only chooses the best epoch."""
        return torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])

    def best_epoch(self) -> int | None:
        """The epoch best.pt holds (:func:`best_epoch`); None without --validation."""
        return best_epoch(self.history)

    def stopped_early(self) -> bool:
        """Whether --early-stopping ends the run (:func:`stopped_early`)."""
        return stopped_early(self.history, self.epoch, self.config.early_stopping)

    def note_monte_carlo_kl(self) -> None:
        """--elbo meanfield: say once which KL terms have no closed form, and are sampled instead."""
        x, y = self.train_data.x[:2], self.train_data.y[:2]
        # a look that leaves no trace: the run's z draws go on as if it had not been taken (resume
        # stays exact), and its weights stay out of the global param store
        with self.random_state_kept(), pyro.validation_enabled(False), pyro.get_param_store().scope(self.param_state):
            sites = monte_carlo_sites(self.model.model, self.model.guide, x, y)
        if sites:
            self.log(
                f"--elbo meanfield: no closed-form KL for {', '.join(sites)}; "
                "those terms are Monte Carlo estimates, as in --elbo trace"
            )

    def fit_epoch(self, epoch: int, figures_at: float) -> float:
        """Train one epoch, test it and save it; returns when the figures were last drawn."""
        cfg = self.config
        start = time.perf_counter()
        train_loss = self.train_epoch(epoch)
        if not self.main:  # process 0 tests and saves; the others go on to the next epoch
            self.epoch = epoch
            if self.stop_requested:
                raise Interrupted(f"stopped after epoch {epoch}", self.stop_signal)
            return figures_at
        # measuring draws z too: each measure from the run's random state, which training then goes on from as
        # if nothing had looked
        with self.random_state_kept():
            test = evaluate_elbo(self.model, self.test_data)
        with self.random_state_kept():
            valid = evaluate_elbo(self.model, self.valid_data)["neg_elbo"] if self.valid_data is not None else None
        if hasattr(self.model, "q_y"):  # a semi-supervised model's classifier: how often it names the test label
            test["classifier_accuracy"] = classifier_accuracy(self.model, self.test_data)
        if not (math.isfinite(test["neg_elbo"]) and math.isfinite(train_loss)):
            self.diverged(epoch, None, f"the -ELBO became {train_loss} (train), {test['neg_elbo']} (test)")
        self.epoch = epoch
        self.history.append(
            {
                "epoch": epoch,
                "train_neg_elbo": round(train_loss, 4),
                "test_neg_elbo": round(test["neg_elbo"], 4),
                "test_recon": round(test["recon"], 4),
                "test_kl": round(test["kl"], 4),
                "test_bits_per_dim": round(test["bits_per_dim"], 5),
                **({"valid_neg_elbo": round(valid, 4)} if valid is not None else {}),
                **(
                    {"test_classifier_accuracy": round(test["classifier_accuracy"], 5)}
                    if "classifier_accuracy" in test
                    else {}
                ),
                "seconds": round(time.perf_counter() - start, 2),
            }
        )
        checkpoint.save(self.run_dir, self.state())
        if valid is not None and self.best_epoch() == epoch:
            checkpoint.save(self.run_dir, self.state(), best=True)
        # drawing costs about a second: on small data sets, where epochs take less, not every epoch
        if epoch == cfg.epochs or time.perf_counter() - figures_at >= FIGURE_INTERVAL_S:
            self.save_figures()
            figures_at = time.perf_counter()
        self.log(
            f"epoch {epoch}/{cfg.epochs}  -ELBO in nats per image (lower is better): "
            f"{self.train_name} {train_loss:.2f}  test {test['neg_elbo']:.2f} "
            f"= recon {test['recon']:.2f} + KL {test['kl']:.2f}"
            f" ({test['bits_per_dim']:.3f} bits/dim)"
            + (f"  q(y|x) test accuracy {test['classifier_accuracy']:.2%}" if "classifier_accuracy" in test else "")
            + (
                f"  validation {valid:.2f}" + (" (best so far: best.pt)" if self.best_epoch() == epoch else "")
                if valid is not None
                else ""
            )
        )
        if self.stop_requested:
            raise Interrupted(
                f"stopped after epoch {epoch}; continue with: python cli.py train --resume {self.run_dir}",
                self.stop_signal,
            )
        return figures_at

    @contextlib.contextmanager
    def stop_on_interrupt(self):
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

    def diverged(self, epoch: int, step: int | None, what: str) -> NoReturn:
        """Stop with a message that names where the loss stopped being finite, why, and what was kept."""
        cfg = self.config
        if cfg.lr > 1e-2:
            cause = f"the learning rate {cfg.lr:g} is far above the usual 1e-3: train again with a lower --lr"
        elif cfg.likelihood in ("gaussian", "laplace") and cfg.likelihood_scale is None:
            cause = "the learned noise scale may have shrunk towards 0: fix it (--likelihood-scale 0.1) or lower --lr"
        elif cfg.elbo in ("renyi", "iwae"):
            cause = f"the {cfg.elbo} bound's importance weights may overflow: use --elbo trace, or lower --lr"
        else:
            cause = "lower --lr, or pass --on-nan skip to skip such steps"
        where = f"epoch {epoch}" + (
            f", step {step} of {self.train_data.num_batches(cfg.batch_size, drop_last=True)}" if step else ""
        )
        kept = (
            f"the checkpoint of epoch {self.epoch} in {self.run_dir} is kept"
            if self.epoch
            else "no checkpoint was written"
        )
        raise TrainingDiverged(f"{what} at {where}: {cause}; {kept}") from None  # not "during handling of NotFinite"

    def save_figures(self) -> None:
        """The run's sample grid and reconstructions, from fixed noise and fixed test images."""
        spectrogram = self.train_data.features or False  # a spectrogram's features label its axes
        if self.model.generative:
            sample_figure(
                self.model,
                self.train_data.classes,
                self.run_dir / checkpoint.SAMPLES,
                seed=self.config.seed,
                ncol=8 if spectrogram else 10,
                spectrogram=spectrogram,
                attributes=self.train_data.attributes,
            )
        n = min(len(self.test_data), 20) // 10 * 10 or len(self.test_data)
        x, y = self.test_data.x[:n], self.test_data.y[:n]
        reconstruction_figure(
            self.model, x, y, self.run_dir / checkpoint.RECONSTRUCTIONS, ncol=min(n, 10), spectrogram=spectrogram
        )

    def train_epoch(self, epoch: int) -> float:
        """One pass over the training set; returns the mean -ELBO per image, in nats, over all processes.

        Each step follows the data path of the module docstring. An epoch interrupted by Ctrl-C is
        saved with its order and running loss, and goes on from the next step when the run is resumed.
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
                    self.set_schedules(epoch, step / n_batches)  # the KL weight and the learning rate
                    losses.add(step, self.step(x, y))  # model and guide under the KL weight, -ELBO, Adam step
                    if self.check_in_due(step, n_batches):
                        self.check_in(step, losses, bar)
                    if self.stop_due(step, n_batches):
                        self.stop_mid_epoch(epoch, step, n_batches, order, losses)
                    if self.save_requested and step < n_batches:  # --checkpoint-every: the clock says so
                        self.save_point(epoch, step, order, losses)
            mean = losses.epoch_mean(n_batches, cfg.batch_size)
            # in every process: the epoch's own checkpoint follows, so a save asked for at its last step is moot
            self.save_requested, self.saved_at = False, time.monotonic()
        except NotFinite as e:
            self.diverged(epoch, e.step, e.what)
        if losses.skipped:
            self.log(f"epoch {epoch}: skipped {losses.skipped} of {n_batches} steps whose loss was not finite")
        return mean

    def start_epoch(self, epoch: int) -> tuple[torch.Tensor, int, "EpochLoss"]:
        """Where ``epoch`` begins: (order, first step, running loss).

        order: (N,) int64 on the device, the order of the training images in this epoch; first: the
        first step to take (1-based). A new epoch draws its order from the data generator; one that
        Ctrl-C interrupted (``self.partial``, see :meth:`stop_mid_epoch`) goes on after the saved step.
        """
        if self.partial is not None and self.partial["epoch"] == epoch:
            order, first = self.partial["order"].to(self.device), self.partial["step"] + 1
            total, skipped = self.partial["total"].to(self.device), self.partial.get("skipped", 0)
            if not self.main:  # the saved total is the sum over processes: count it once
                total = torch.zeros_like(total)
        else:
            order, first = self.train_data.permutation(self.generator), 1
            total, skipped = torch.zeros((), device=self.device), 0
        self.partial = None
        return order, first, EpochLoss(self.config.on_nan == "skip", total, skipped)

    def set_schedules(self, epoch: int, fraction: float) -> None:
        """Set the KL weight (--beta, --kl-warmup) and Adam's learning rate (--lr-schedule, --lr-warmup) for the
        step that ends ``fraction`` (0 < fraction <= 1) of ``epoch``.

        Both are functions of the epoch and the step alone, so a resumed run goes on with the same schedule.
        """
        cfg = self.config
        self.kl.weight = kl_weight(cfg, epoch, fraction)
        if cfg.lr_warmup or cfg.lr_schedule != "constant":
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.lr * lr_scale(cfg, epoch, fraction)

    def steps_compiled(self) -> bool:
        """Whether the compiled step trains (``--step``): with compiled, always; with auto, where it
        can trace the step and the run has AUTO_COMPILED_STEPS steps or more, so the compiler's wait pays."""
        cfg = self.config
        if cfg.step == "compiled" and self.parallel is not None:
            raise UserError(
                "--step compiled trains in one process; under torchrun leave --step out, or pass --step eager"
            )
        if cfg.step != "auto":
            return cfg.step == "compiled"
        steps = cfg.epochs * self.train_data.num_batches(cfg.batch_size, drop_last=True)
        return cfg.untraceable() is None and self.parallel is None and steps >= AUTO_COMPILED_STEPS

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One SVI step on a batch; returns the batch's loss, the negative bound summed over images (detached).

        x: (B/P, C, H, W), y: (B/P,) or (B/P, A): this process's slice of the global batch (all of it
        in one process), and the loss is its share. The compiled step where ``--step`` chose it, else the eager one.
        """
        return (self.compiled or self.eager_step)(x, y)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch, a () tensor to differentiate: the objective on model and guide
        under the KL weight, in this run's param store. (The compiled step traces this.)"""
        with pyro.validation_enabled(False), pyro.get_param_store().scope(self.param_state):
            return self.elbo.differentiable_loss(*self.program, x, y)

    def eager_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """:meth:`step` with Pyro's Python run on this batch (``--step eager``)."""
        return svi_step(
            self.elbo,
            self.program,
            self.optimizer,
            x,
            y,
            self.param_state,
            self.config.on_nan == "skip",
            self.parallel,
            bf16=self.config.amp == "bf16",
        )

    def check_in_due(self, step: int, n_batches: int) -> bool:
        """Whether to read the device after ``step``: every CHECK_IN_EVERY steps, after the last step,
        and, in one process, as soon as Ctrl-C asks for a stop.

        Reading the loss makes the CPU wait for the GPU, hence not on every step. Several processes
        check in at the same steps only, since they must agree there (see :meth:`check_in`).
        """
        return step % CHECK_IN_EVERY == 0 or step == n_batches or (self.stop_requested and self.parallel is None)

    def check_in(self, step: int, losses: "EpochLoss", bar: Callable[[int, float], None]) -> None:
        """Stop if a loss was not finite, ask for a checkpoint if --checkpoint-every has passed since the
        last one, then show the running loss on the progress bar.

        In several processes, all first agree, in one all-reduce, on the first bad step and on
        whether Ctrl-C was pressed or a checkpoint is due in any of them, so that all act at the same step.
        """
        interval = seconds(self.config.checkpoint_every)
        save = interval > 0 and time.monotonic() - self.saved_at >= interval
        if self.parallel is not None:
            flags = torch.tensor([int(self.stop_requested), int(save)], device=self.device)
            losses.bad_step, stop, save = distributed.all_max(torch.cat([losses.bad_step.view(1), flags]))
            self.stop_requested = bool(stop)
        self.save_requested = bool(save)
        losses.raise_if_bad()
        bar(step, losses.mean(step, self.config.batch_size // distributed.world_size()))  # this process's images

    def stop_due(self, step: int, n_batches: int) -> bool:
        """Whether Ctrl-C stops the epoch after ``step``: in one process, at once; in several, at the
        next check-in, where all of them know of it. After the last step the epoch ends as usual."""
        return self.stop_requested and step < n_batches and (step % CHECK_IN_EVERY == 0 or self.parallel is None)

    def save_point(self, epoch: int, step: int, order: torch.Tensor, losses: "EpochLoss") -> dict:
        """Save the point reached, step ``step`` of ``epoch``: ``resume`` goes on from the next step
        exactly as if nothing had happened (Ctrl-C, --checkpoint-every).

        The checkpoint's ``partial`` holds the epoch's order (N,), the running loss summed over the
        processes and the steps skipped; :meth:`start_epoch` takes them up again. Returns that point.
        """
        partial = {
            "epoch": epoch,
            "step": step,
            "order": order.cpu(),
            "total": distributed.all_sum(losses.total).cpu(),
            "skipped": losses.skipped,
        }
        if self.main:
            checkpoint.save(self.run_dir, {**self.state(), "partial": partial})
        self.save_requested, self.saved_at = False, time.monotonic()
        return partial

    def stop_mid_epoch(self, epoch: int, step: int, n_batches: int, order: torch.Tensor, losses: "EpochLoss"):
        """Save the point reached (step ``step`` of ``epoch``, :meth:`save_point`) and stop; a later
        :meth:`fit` of this trainer goes on from there too."""
        self.partial = self.save_point(epoch, step, order, losses)
        raise Interrupted(
            f"stopped at epoch {epoch}, step {step} of {n_batches}, and saved that point; "
            f"continue with: python cli.py train --resume {self.run_dir}",
            self.stop_signal,
        )


def best_epoch(history: list[dict]) -> int | None:
    """The epoch with the lowest validation -ELBO in ``history`` (the first of equals); None without --validation."""
    scored = [row for row in history if "valid_neg_elbo" in row]
    return min(scored, key=lambda row: row["valid_neg_elbo"])["epoch"] if scored else None


def stopped_early(history: list[dict], epoch: int, patience: int | None) -> bool:
    """Whether --early-stopping ``patience`` ends a run at ``epoch``: no better validation -ELBO for that
    many epochs."""
    best = best_epoch(history)
    return patience is not None and best is not None and epoch - best >= patience


def augment(x: torch.Tensor, config: Config, generator: torch.Generator) -> torch.Tensor:
    """A training batch as the model sees it: x (B, C, H, W) in [0, 1] -> (B, C, H, W).

    ``--binarize dynamic``: every pixel becomes 0 or 1, 1 with its grey level as probability (a
    fresh binary image every time); ``dequantize``: every pixel moves uniformly within its 8-bit
    level (data.imageset.dequantize), fresh every time. ``--flip``: a random half of the images is mirrored left-right
    (a face seen in a mirror is still a face). Both draw from ``generator``, the run's data
    generator, so that every process draws the same global batch.
    """
    if config.binarize == "dynamic":
        x = torch.bernoulli(x, generator=generator)
    elif config.binarize == "dequantize":
        x = dequantize(x, generator)
    if config.flip:
        mirror = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5  # (B,)
        x = torch.where(mirror.view(-1, 1, 1, 1), x.flip(-1), x)
    return x


class NotFinite(Exception):
    """The loss was not finite at ``step`` (None: in the epoch as a whole); ``what`` says how.
    Trainer.train_epoch turns it into the user's message (Trainer.diverged)."""

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


def svi_step(
    elbo, program, optimizer, x, y, param_state: dict, skip_nonfinite: bool = False, parallel=None, bf16: bool = False
) -> torch.Tensor:
    """One step of SVI: estimate the bound of ``program`` = (model, guide) on a batch, then one optimizer step.

    ``param_state`` is the run's own Pyro param store (see Trainer). With ``skip_nonfinite``, a
    step whose loss is NaN or infinite (in any process) changes nothing, and its loss comes back
    as NaN (in every process). ``parallel``: the same loss wrapped in
    DistributedDataParallel (distributed.data_parallel), when several processes train together.
    ``bf16``: the forward pass under bfloat16 autocast (the networks return float32, so the bound
    is summed in float32). Returns the loss, detached.
    """
    optimizer.zero_grad(set_to_none=True)
    # argument checks cost time on every step; the tests do them
    with pyro.validation_enabled(False), pyro.get_param_store().scope(param_state):
        with torch.autocast(x.device.type, torch.bfloat16, enabled=bf16):
            if isinstance(elbo, RenyiELBO) and parallel is None:
                # Pyro offers it only as loss_and_grads, which runs backward itself
                loss, to_differentiate = torch.tensor(elbo.loss_and_grads(*program, x, y)), None
            elif parallel is not None:
                loss = parallel(x, y)
                # DDP averages gradients over processes; the loss is a sum over images, so scale back
                # up to the gradient of the global batch's sum, the same step as one process would take
                to_differentiate = loss * distributed.world_size()
            else:
                loss = to_differentiate = elbo.differentiable_loss(*program, x, y)
        if to_differentiate is not None:  # outside autocast, as PyTorch advises
            to_differentiate.backward()
    # several processes skip a step together: a non-finite loss anywhere reached every gradient
    if skip_nonfinite and not torch.isfinite(distributed.all_sum(loss.detach())):
        return torch.full_like(loss.detach(), float("nan"))  # skipped: so every process reports it
    optimizer.step()
    return loss.detach()


class progress_bar:
    """A rich progress bar for one epoch, showing the running -ELBO; silent when disabled."""

    def __init__(self, enabled: bool, description: str, total: int):
        self.enabled, self.description, self.total = enabled, description, total

    def __enter__(self):
        if not self.enabled:
            return lambda step, loss: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("-ELBO {task.fields[loss]:.2f}"),
            transient=True,
        )
        self.progress.__enter__()
        task = self.progress.add_task(self.description, total=self.total, loss=float("nan"))
        return lambda step, loss: self.progress.update(task, completed=step, loss=loss)

    def __exit__(self, *exc):
        if self.enabled:
            self.progress.__exit__(*exc)
        return False
