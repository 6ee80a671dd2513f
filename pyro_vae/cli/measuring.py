"""The numbers of a trained run: evaluate (its ELBO, -log p(x) by importance sampling, active units, accuracy) and
curves (its training curves)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .. import checkpoint
from ..outputs import check_out
from .app import app, command, reports_errors
from .options import (
    CheckpointName,
    DeviceName,
    RunDir,
    SplitName,
    TrustCode,
    WhichCheckpoint,
    _open_run,
    count_option,
)


@command(app)
@reports_errors
def evaluate(
    run: Path = RunDir,
    split: SplitName = typer.Option("test", help="Which split to measure: the run's test set, or its training set."),
    k: int = count_option(
        1000, "Importance samples per image for log p(x) (5000 for numbers to report).", 1, 100_000, "--k"
    ),
    n: Optional[int] = typer.Option(
        None, "--n", help="Use the first N images of the split.", show_default="the whole split"
    ),
    samples_per_class: int = count_option(
        100, "cvae: samples drawn per class to measure conditional accuracy.", 1, 10_000
    ),
    max_rows: int = count_option(
        8192, "Rows per batch of the importance sampler (lower it when memory is short).", 1, 1 << 20
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
    from rich.progress import Progress

    from ..files import save_json
    from ..measure import measure_run, record_path, split_images, summary_rows

    out = check_out(out, "json")
    model, config, state, test = _open_run(run, device, which, trust_code)
    images = split_images(model, config, test, split.value, n)
    about = {"run": str(run), "checkpoint": which.value, "epoch": state["epoch"]}
    with Progress(transient=True) as bar:
        task = bar.add_task(f"log p(x), k={k}", total=len(images))
        result = measure_run(
            model,
            config,
            images,
            about,
            split.value,
            k=k,
            samples_per_class=samples_per_class,
            max_rows=max_rows,
            progress=lambda done, total: bar.update(task, completed=done),
            log=typer.echo,
        )
    title = f"{config.model} on {config.dataset}, {split.value} split ({len(images)} images): nats per image"
    _print_table(title, summary_rows(result, test.classes, conditional=model.conditional))
    path = out or record_path(run, split.value, k, which.value)
    save_json(result, path)
    typer.echo(f"wrote {path}")


def _print_table(title: str, rows) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


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
