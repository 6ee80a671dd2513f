"""The numbers of a trained run: evaluate (its ELBO, -log p(x) by importance sampling, active units, accuracy) and
curves (its training curves)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .. import checkpoint, data
from ..contract import device_of
from ..errors import UserError
from ..outputs import check_out
from .app import app, command, reports_errors
from .options import (
    CheckpointName,
    DeviceName,
    RunDir,
    TrustCode,
    WhichCheckpoint,
    _open_run,
)


@command(app)
@reports_errors
def evaluate(
    run: Path = RunDir,
    split: str = typer.Option("test", help="Which split to measure: test or train."),
    k: int = typer.Option(1000, "--k", help="Importance samples per image for log p(x) (5000 for numbers to report)."),
    n: Optional[int] = typer.Option(
        None, "--n", help="Use the first N images of the split.", show_default="the whole split"
    ),
    samples_per_class: int = typer.Option(100, help="cvae: samples drawn per class to measure conditional accuracy."),
    max_rows: int = typer.Option(
        8192, help="Rows per batch of the importance sampler (lower it when memory is short)."
    ),
    out: Optional[Path] = typer.Option(
        None, help="JSON file to write.", show_default="<run>/evaluation-<split>-k<k>.json"
    ),
    device: DeviceName = typer.Option("auto", help="Where to run the networks (auto: a GPU when there is one)."),
    which: CheckpointName = WhichCheckpoint,
    trust_code: bool = TrustCode,
):
    """Measure a trained model: ELBO and its parts, -log p(x) by importance sampling, active units,
    conditional accuracy.

    Prints a table and saves the numbers as JSON in the run directory. For a cvae the likelihood is
    log p(x|y), and a classifier trained once per data set (cached) labels the model's samples of
    each class; its own test accuracy is printed beside.
    """
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from ..classifier import load_classifier
    from ..evaluate import evaluate as run_evaluate
    from ..evaluate import summary_rows
    from ..files import save_json

    if split not in ("test", "train"):
        raise UserError(f"--split must be test or train, not {split!r}")
    for name, value in (("--k", k), ("--samples-per-class", samples_per_class), ("--max-rows", max_rows)):
        if value < 1:
            raise UserError(f"{name} must be at least 1, not {value}")
    out = check_out(out, "json")
    model, config, state, test = _open_run(run, device, which, trust_code)
    images = test
    if split == "train":
        train, _ = data.load(config.dataset, device_of(model), config.binarize, config.condition)
        images = data.fixed_draw(train, config.binarize)  # one fixed draw, like the test set's: a reproducible number
    if n is not None:
        if n < 1:
            raise UserError(f"--n must be at least 1, not {n}")
        images = images.head(n)
    classifier = accuracy = None
    if model.conditional and model.generative:
        classifier, accuracy = load_classifier(config.dataset, device_of(model), log=typer.echo)
    with Progress(transient=True) as bar:
        task = bar.add_task(f"log p(x), k={k}", total=len(images))
        result = run_evaluate(
            model,
            images,
            k=k,
            classifier=classifier,
            n_per_class=samples_per_class,
            mirror=bool(config.flip),
            max_rows=max_rows,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    result = {
        "run": str(run),
        "checkpoint": which.value,
        "epoch": state["epoch"],
        "model": config.model,
        "dataset": config.dataset,
        "split": split,
    } | result
    if accuracy is not None:
        result["classifier_test_accuracy"] = accuracy

    table = Table(title=f"{config.model} on {config.dataset}, {split} split ({len(images)} images): nats per image")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for row in summary_rows(result, test.classes, conditional=model.conditional):
        table.add_row(*row)
    Console().print(table)
    path = out or run / f"evaluation-{split}-k{k}{'-best' if which.value == 'best' else ''}.json"
    save_json(result, path)
    typer.echo(f"wrote {path}")


@command(app)
@reports_errors
def curves(
    run: Path = RunDir,
    out: Optional[Path] = typer.Option(None, help="PNG to write.", show_default="<run>/curves.png"),
    trust_code: bool = TrustCode,
):
    """Plot the training and test -ELBO, and its reconstruction and KL parts, against epochs."""
    from ..plots import curves_figure

    out = check_out(out, "png")
    state = checkpoint.load(run, trust_code=trust_code)
    config = state["config"]
    path = curves_figure(
        state["history"], out or run / "curves.png", title=f"{config['model']} on {config['dataset']}: {run.name}"
    )
    typer.echo(f"wrote {path}")
