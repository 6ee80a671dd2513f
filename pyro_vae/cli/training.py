"""The commands that train: train (and --resume), compare, complete."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .. import checkpoint
from ..config import Config
from ..devices import resolve_device
from ..errors import UserError
from ..outputs import check_out, run_folder
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
    from .. import distributed, lock, recipes, trust
    from ..training import Trainer, default_run_dir
    from ..training.writers import writes, writing

    try:  # under torchrun, leave the process group however the run ends
        if resume is not None:
            if config_file is not None:
                raise UserError(f"--resume goes on with the settings {resume} was started with; leave --config out")
            # held from loading the checkpoint to the end: no other writer saves in between
            with writing(resume, create=False):
                Trainer.resume(resume, epochs=settings["epochs"], progress=progress, trust_code=trust_code).fit()
            return
        run_dir = run_folder(run_dir)  # refuses an empty one, a file and a name too long to make
        overrides = {name: settings[name] for name in given_options(context, FIELDS)}
        for part in checkpoint.PARTS:  # code the user names here is their own choice, trusted as it is now
            if part in overrides:
                trust.grant(overrides[part], run_dir)
        processes = distributed.launched_size()
        recipe = recipes.load(config_file, overrides, trust_code, world_size=processes) if config_file else None
        spec = recipe.spec if recipe else resolve(Config(**settings), processes)
        run_dir = run_dir or default_run_dir(spec.config, recipe.name if recipe else None)
        if writes():
            lock.check_free(run_dir)  # a run being trained is named as such, before anything is loaded
        _refuse_a_trained_run(run_dir)
        trainer = Trainer(spec, run_dir, progress=progress)
        # held from the check to the end: a run finished or started meanwhile is never written over
        with writing(run_dir):
            _refuse_a_trained_run(run_dir)
            if recipe:
                recipes.keep(recipe, run_dir, overrides)
            trainer.fit()
    finally:
        distributed.stop()


def _refuse_a_trained_run(run_dir: Path) -> None:
    if (run_dir / checkpoint.CHECKPOINT).exists():
        raise UserError(
            f"{run_dir} already holds a trained run; continue it with --resume {run_dir}, or pick another --run-dir"
        )


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
        help="Visible quadrants: 1 (bottom-left), 2 (left half) or 3 (all but bottom-right); repeatable.",
        show_default="1 2 3",
    ),
    epochs: int = typer.Option(10, help="Epochs for the baseline and again for the CVAE."),
    k: int = typer.Option(
        100, "--k", help="Importance samples per test image for the CVAE's -log p(hidden | visible)."
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
    quadrants = quadrants or [1, 2, 3]
    bad = [q for q in quadrants if q not in (1, 2, 3)]
    if bad:
        raise UserError(f"--quadrants {bad[0]} is not 1, 2 or 3")
    if k < 1:
        raise UserError(f"--k must be at least 1, not {k}")
    # the settings a training run shares get the training run's own checks and messages
    resolve(
        Config(
            z_dim=z_dim,
            hidden_dim=hidden_dim,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            train_size=train_size,
            test_size=test_size,
        )
    )
    run(
        out,
        quadrants=tuple(quadrants),
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
