"""pyro-vae's command line: train VAEs as Pyro programs, then sample and reconstruct from a run directory.

    python cli.py train --model cvae            # train a conditional VAE on MNIST
    python cli.py sample runs/<name> --label 7  # draw sevens from it
    python cli.py reconstruct runs/<name>
    python cli.py data prepare fashion-mnist
"""

from __future__ import annotations

import functools
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from pyro_vae import checkpoint, data
from pyro_vae.config import DEVICES, PRIORS, Config, choices
from pyro_vae.errors import UserError

app = typer.Typer(
    help="Variational autoencoders written as Pyro probabilistic programs: train, sample, reconstruct.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Fetch and cache data sets (train does this on first use).", no_args_is_help=True)
app.add_typer(data_app, name="data")

_CHOICES = choices()


def _enum(name: str) -> type[Enum]:
    """A str Enum of an option's allowed values, so --help lists them and typos are refused."""
    return Enum(name.title(), {v: v for v in _CHOICES[name]}, type=str)


ModelName, DatasetName, NetName, PriorName = _enum("model"), _enum("dataset"), _enum("net"), _enum("prior")
BinarizeName, ElboName, DeviceName = _enum("binarize"), _enum("elbo"), _enum("device")
_DEFAULT = Config()


def reports_errors(command):
    """Turn a UserError into one line on stderr and exit status 2, instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as e:
            typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None

    return wrapper


RunDir = typer.Argument(..., help="A run directory written by `train` (it holds checkpoint.pt).", show_default=False)


@app.command()
@reports_errors
def train(
    model: ModelName = typer.Option(_DEFAULT.model, help="vae: p(z)p(x|z); cvae: conditioned on the label; ae: the deterministic baseline."),
    dataset: DatasetName = typer.Option(_DEFAULT.dataset, help="Data set; prepared and cached on first use."),
    net: NetName = typer.Option(_DEFAULT.net, help="Encoder/decoder networks: mlp (784-400-z) or conv."),
    z_dim: int = typer.Option(_DEFAULT.z_dim, help="Latent dimensions (2 for latent-space plots)."),
    hidden_dim: int = typer.Option(_DEFAULT.hidden_dim, help="Width of the networks' hidden layer."),
    prior: PriorName = typer.Option(_DEFAULT.prior, help="cvae only: standard N(0, I), or a learned conditional p(z|y)."),
    binarize: BinarizeName = typer.Option(_DEFAULT.binarize, help="dynamic: a fresh Bernoulli draw of each image every epoch; static: one fixed draw; none: grey levels."),
    elbo: ElboName = typer.Option(_DEFAULT.elbo, help="trace: Trace_ELBO; meanfield: TraceMeanField_ELBO (closed-form KL); jit: JitTrace_ELBO, Trace_ELBO compiled once (faster on the CPU)."),
    epochs: Optional[int] = typer.Option(None, help="Epochs in all.", show_default=f"{_DEFAULT.epochs}; with --resume, the run's own"),
    batch_size: int = typer.Option(_DEFAULT.batch_size, help="Images per SVI step."),
    lr: float = typer.Option(_DEFAULT.lr, help="Adam learning rate."),
    seed: int = typer.Option(_DEFAULT.seed, help="Seed: the same seed on the same device gives the same numbers."),
    device: DeviceName = typer.Option(_DEFAULT.device, help="auto picks CUDA when a GPU is visible, else the CPU."),
    train_size: Optional[int] = typer.Option(None, help="Train on the first N images only (quick experiments).", show_default="all"),
    test_size: Optional[int] = typer.Option(None, help="Evaluate on the first N test images only.", show_default="all"),
    run_dir: Optional[Path] = typer.Option(None, help="Where to write the run.", show_default="runs/<model>-<dataset>-<time>"),
    resume: Optional[Path] = typer.Option(None, help="Continue the run in this directory from its last checkpoint, with its saved settings (only --epochs may change)."),
    progress: bool = typer.Option(True, help="Show a progress bar for each epoch."),
):
    """Train a model with stochastic variational inference (Pyro SVI) and save it in a run directory.

    After every epoch the run directory gets checkpoint.pt, metrics.csv, samples.png and reconstructions.png; an interrupted run continues with --resume.
    """
    from pyro_vae.train import Trainer, default_run_dir

    if resume is not None:
        trainer = Trainer.resume(resume, epochs=epochs, progress=progress)
    else:
        config = Config(
            model=model.value, dataset=dataset.value, net=net.value, z_dim=z_dim, hidden_dim=hidden_dim,
            prior=prior.value, binarize=binarize.value, elbo=elbo.value,
            epochs=_DEFAULT.epochs if epochs is None else epochs, batch_size=batch_size, lr=lr, seed=seed,
            device=device.value, train_size=train_size, test_size=test_size,
        ).validate()  # fmt: skip
        run_dir = run_dir or default_run_dir(config)
        if (run_dir / checkpoint.CHECKPOINT).exists():
            raise UserError(f"{run_dir} already holds a trained run; continue it with --resume {run_dir}, or pick another --run-dir")
        trainer = Trainer(config, run_dir, progress=progress)
    trainer.fit()


def _labels(model, classes: list[str], labels: Optional[List[int]]) -> Optional[List[int]]:
    if not labels:
        return None
    if not model.conditional:
        raise UserError("--label needs a conditional model: this run is not a cvae (train one with --model cvae)")
    bad = [label for label in labels if not 0 <= label < len(classes)]
    if bad:
        raise UserError(f"label {bad[0]} is not a class of this data set; use 0..{len(classes) - 1}")
    return labels


@app.command()
@reports_errors
def sample(
    run: Path = RunDir,
    n: int = typer.Option(10, "--n", help="Images per row (per class for a cvae; the grid is n x n for a vae)."),
    label: Optional[List[int]] = typer.Option(None, help="cvae: draw only this class (repeat for several).", show_default="every class"),
    seed: int = typer.Option(0, help="Seed of the prior draws."),
    out: Optional[Path] = typer.Option(None, help="PNG to write.", show_default="<run>/sample.png"),
    device: DeviceName = typer.Option("cpu", help="Where to run the decoder."),
):
    """Draw new images from the model's prior and save them as a grid (for a cvae: one row per class)."""
    from pyro_vae.checkpoint import load_model
    from pyro_vae.plots import sample_figure
    from pyro_vae.train import resolve_device

    if n < 1:
        raise UserError(f"--n must be at least 1, not {n}")
    model, _, state = load_model(run, resolve_device(device.value))
    if not model.generative:
        raise UserError(f"{run} holds an autoencoder, which has no prior to sample from; use `reconstruct`, or a vae/cvae run")
    labels = _labels(model, state["classes"], label)
    path = sample_figure(model, state["classes"], out or run / "sample.png", ncol=n, labels=labels, seed=seed)
    typer.echo(f"wrote {path}")


@app.command()
@reports_errors
def reconstruct(
    run: Path = RunDir,
    n: int = typer.Option(20, "--n", help="How many test images (rounded up to a multiple of 10)."),
    start: int = typer.Option(0, help="Index of the first test image."),
    out: Optional[Path] = typer.Option(None, help="PNG to write.", show_default="<run>/reconstruct.png"),
    device: DeviceName = typer.Option("cpu", help="Where to run the networks."),
):
    """Show test images beside their reconstructions (decoded from the guide's mean code)."""
    from pyro_vae.checkpoint import load_model
    from pyro_vae.plots import reconstruction_figure
    from pyro_vae.train import resolve_device

    torch_device = resolve_device(device.value)
    model, config, _ = load_model(run, torch_device)
    _, test = data.load(config.dataset, torch_device, config.binarize)
    if n < 1 or not 0 <= start < len(test):
        raise UserError(f"--n must be at least 1 and --start within 0..{len(test) - 1}")
    ncol = min(n, 10)
    n = -(-n // ncol) * ncol
    x, y = test.x[start : start + n], test.y[start : start + n]
    if len(x) < n:
        raise UserError(f"only {len(x)} test images from --start {start}; lower --start or --n")
    path = reconstruction_figure(model, x, y, out or run / "reconstruct.png", ncol=ncol)
    typer.echo(f"wrote {path}")


@data_app.command("prepare")
@reports_errors
def data_prepare(
    name: DatasetName = typer.Argument(..., help="The data set to fetch, check and cache."),
    force: bool = typer.Option(False, help="Fetch again even when it is cached."),
):
    """Fetch a data set from the first source that answers, check it, and cache it under $PYRO_VAE_DATA."""
    path, source = data.prepare(name.value, force=force)
    typer.echo(f"{name.value}: {path} (from {source})")


def main():
    app()


if __name__ == "__main__":
    sys.exit(main())
