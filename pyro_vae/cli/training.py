"""The commands that train: train (and --resume), compare, complete."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..config import Config
from ..devices import resolve_device
from ..errors import UserError
from ..outputs import check_out
from ..spec import resolve
from .app import app, command, reports_errors
from .options import (
    FIELDS,
    DeviceName,
    TrustCode,
    config_option,
    count_option,
    given_options,
    takes_config,
)


@command(app)
@reports_errors
@takes_config()
def train(
    settings: dict,
    context: typer.Context,
    config_file: Optional[Path] = typer.Option(
        None,
        "--config",
        help=(
            "A recipe: a TOML file of settings (recipes/*.toml); "
            "the options given here override it, and the run keeps a copy."
        ),
        show_default=False,
    ),
    run_dir: Optional[str] = typer.Option(
        None,
        help="Where to write the run (a folder).",
        show_default="runs/<model>-<dataset>-<time>, or runs/<recipe>-<time>",
    ),
    resume: Optional[Path] = typer.Option(
        None,
        help=(
            "Continue the run in this directory from its last checkpoint, "
            "with its saved settings (only --epochs may change)."
        ),
    ),
    progress: bool = typer.Option(True, help="Show a progress bar for each epoch."),
    trust_code: bool = TrustCode,
):
    """Train a model with stochastic variational inference (Pyro SVI) and save it in a run directory.

    After every epoch the run directory gets checkpoint.pt, metrics.csv, samples.png and
    reconstructions.png; an interrupted run continues with --resume.

    Recipes that reproduce published numbers: train --config recipes/burda-vae.toml (docs/reproductions.md).

    Several processes (GPUs, or CPU workers): torchrun --nproc-per-node N cli.py train ...; --batch-size
    is then the global batch.
    """
    from ..training import launch

    if resume is not None:
        if config_file is not None:
            raise UserError(f"--resume goes on with the settings {resume} was started with; leave --config out")
        launch.resume(resume, settings["epochs"], progress=progress, trust_code=trust_code)
        return
    given = {name: settings[name] for name in given_options(context, FIELDS)}
    config = Config(**settings)
    launch.start(config, run_dir, recipe=config_file, overrides=given, progress=progress, trust_code=trust_code)


@command(app)
@reports_errors
@takes_config(repeated_model=True)
def compare(
    settings: dict,
    pairs: int = count_option(4, "Pairs of test images to interpolate between.", 1, 100),
    out: Optional[Path] = typer.Option(
        None, help="Folder for the runs (one per model) and the report.", show_default="runs/compare-<dataset>"
    ),
    progress: bool = typer.Option(True, help="Show progress bars."),
    trust_code: bool = TrustCode,
):
    """Train ae, vae and cvae (or the models --model names) with the same settings, reusing runs already
    in --out, and write a Markdown report.

    The report, <out>/report.md, holds a table of test -ELBO, reconstruction and KL, the latent
    codes side by side, interpolation strips side by side, and the samples of every model that has
    a prior. A model of your own takes part as --model path/to/file.py:Class.
    """
    from ..compare import compare as run_compare

    out = check_out(out, "folder")
    models = settings.pop("model")
    given = {name for name, value in settings.items() if value is not None}  # None: left out, each model's own
    spec = resolve(Config(**settings))
    run_compare(
        spec,
        out or Path("runs") / f"compare-{spec.dataset}",
        models=models,
        given=given,
        pairs=pairs,
        shared_lr=settings["lr"] is not None,
        progress=progress,
        log=typer.echo,
        trust_code=trust_code,
    )


@command(app)
@reports_errors
def complete(
    quadrants: Optional[List[int]] = typer.Option(
        None,
        min=1,
        max=3,
        help="Visible quadrants: 1 (bottom-left), 2 (left half) or 3 (all but bottom-right); repeatable.",
        show_default="1 2 3",
    ),
    epochs: int = typer.Option(10, help="Epochs for the baseline and again for the CVAE."),
    k: int = count_option(
        100, "Importance samples per test image for the CVAE's -log p(hidden | visible).", 1, 100_000, "--k"
    ),
    z_dim: int = typer.Option(50, help="Latent dimensions of the CVAE."),
    hidden_dim: int = typer.Option(500, help="Width of every network's hidden layers."),
    batch_size: int = typer.Option(128, help="Images per step."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    seed: int = config_option("seed"),
    device: DeviceName = config_option("device"),
    train_size: Optional[int] = config_option("train_size"),
    test_size: Optional[int] = config_option("test_size"),
    out: Path = typer.Option(Path("runs/completion"), help="Folder for the report, the figure and the checkpoints."),
    progress: bool = typer.Option(True, help="Show progress bars."),
):
    """Complete MNIST digits from 1, 2 or 3 visible quadrants: a deterministic baseline against a CVAE.

    Writes <out>/report.md with -log p(hidden | visible) for both beside Pyro's tutorial numbers,
    and completion.png: inputs, truth, the baseline's guess and three CVAE samples each.
    """
    from ..completion import run

    out = check_out(out, "folder")
    run(
        out,
        quadrants=tuple(quadrants or (1, 2, 3)),
        epochs=epochs,
        k=k,
        z_dim=z_dim,
        hidden_dim=hidden_dim,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=resolve_device(device.value),
        train_size=train_size,
        test_size=test_size,
        progress=progress,
        log=typer.echo,
    )
