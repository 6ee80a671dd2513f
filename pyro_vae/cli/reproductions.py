"""reproductions record and table: published numbers beside those of our recipe runs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import command, reports_errors, reproductions_app
from .options import (
    CheckpointName,
    RunDir,
    TrustCode,
    WhichCheckpoint,
)


@command(reproductions_app, "record")
@reports_errors
def reproductions_record(
    run: Path = RunDir,
    which: CheckpointName = WhichCheckpoint,
    k: int = typer.Option(
        5000, "--k", help="The importance samples of the evaluation to read (evaluate --k K wrote it)."
    ),
    hardware: Optional[str] = typer.Option(
        None, help="Where the run trained, in a few words.", show_default="this machine: its GPU, or its CPU and cores"
    ),
    notes: Optional[str] = typer.Option(
        None, help="A sentence for the row: what was cut short, what differs from the paper."
    ),
    rows: Path = typer.Option(Path("docs/reproductions.json"), help="The table's rows."),
    trust_code: bool = TrustCode,
):
    """Add the row of a recipe run (trained with train --config, measured with evaluate --k 5000) to the
    table's rows, and write the table again.

    A row of the same recipe is replaced. The published number comes from the run's copy of the recipe,
    ours from its evaluation JSON, epochs and minutes from its checkpoint.
    """
    from .. import reproductions

    row = reproductions.row_of(run, which.value, k, hardware or reproductions.hardware(), trust_code)
    if notes:
        row["notes"] = notes
    reproductions.record(row, rows)
    table = reproductions.write_table(rows, rows.with_suffix(".md"))
    typer.echo(
        f"{row['recipe']}: published {row['published']:.2f}, ours {row['ours']:.2f} ± {row['stderr']:.2f}; "
        f"wrote {rows} and {table}"
    )


@command(reproductions_app, "table")
@reports_errors
def reproductions_table(rows: Path = typer.Option(Path("docs/reproductions.json"), help="The table's rows.")):
    """Write docs/reproductions.md again from the rows in docs/reproductions.json."""
    from .. import reproductions

    typer.echo(f"wrote {reproductions.write_table(rows, rows.with_suffix('.md'))}")
