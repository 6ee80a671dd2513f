"""The reproductions table: published numbers beside ours, one row per recipe run.

docs/reproductions.json holds the rows, one object each; docs/reproductions.md is made from it:

    python cli.py reproductions record runs/burda-vae-...   # add or replace that recipe's row
    python cli.py reproductions table                       # write docs/reproductions.md again

A row is read off a finished (or stopped) run of a recipe, never typed in: the recipe's copy in the
run (what it reproduces), its checkpoint (epochs trained, minutes, the model's stochastic layers)
and its evaluation (``evaluate --k 5000``, the -log p(x) of all 10,000 test images and its
standard error).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from . import checkpoint, recipes
from .errors import UserError
from .files import save_json, save_text
from .history import stopped_early

# every row has these keys (and may have "notes")
KEYS = (
    "recipe",
    "paper",
    "row",
    "published",
    "published_k",
    "ours",
    "stderr",
    "k",
    "test_images",
    "stochastic_layers",
    "epochs",
    "schedule_epochs",
    "minutes",
    "hardware",
    "complete",
    "checkpoint",
    "command",
)


def hardware() -> str:
    """This machine in a few words: its GPU, or its CPU model and core count."""
    import torch

    if torch.cuda.is_available():
        return f"1 GPU ({torch.cuda.get_device_name(0)})"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores ({model})"


def row_of(run_dir: Path, which: str, k: int, where: str, trust_code: bool = False) -> dict:
    """The table row of the recipe run in ``run_dir``: its checkpoint ``which`` ("last" or "best"),
    measured by ``evaluate --k k``; ``where``: the hardware it trained on; ``trust_code``: the code the
    run names may be imported (trust.py)."""
    run_dir = Path(run_dir)
    copy = run_dir / recipes.COPY
    if not copy.exists():
        raise UserError(
            f"{run_dir} was not trained from a recipe (it has no {recipes.COPY}); train with --config recipes/NAME.toml"
        )
    recipe = recipes.load(copy, trust_code=trust_code, run_dir=run_dir)
    if not recipe.reproduces.get("published"):
        raise UserError(f"{copy} names no published number ([reproduces] published); nothing to set ours beside")
    suffix = "-best" if which == "best" else ""
    measured = run_dir / f"evaluation-test-k{k}{suffix}.json"
    if not measured.exists():
        raise UserError(
            f"{run_dir} has no {measured.name}; measure it first: python cli.py evaluate {run_dir} --k {k}"
            + (" --checkpoint best" if which == "best" else "")
        )
    result = json.loads(measured.read_text())
    spec, state = checkpoint.load_run(run_dir, which=which, trust_code=trust_code)
    if result.get("epoch") != state["epoch"]:  # trained on since (or measured by a version that did not say)
        raise UserError(
            f"{measured} measured epoch {result.get('epoch', '(not recorded)')}, and the {which} checkpoint "
            f"of {run_dir} is epoch {state['epoch']}; measure it again: python cli.py evaluate {run_dir} --k {k}"
            + (" --checkpoint best" if which == "best" else "")
        )
    last = state if which == "last" else checkpoint.load(run_dir, trust_code=trust_code)
    schedule = recipe.spec.epochs
    seconds = sum(record.seconds for record in last["history"])
    early = stopped_early(last["history"], last["epoch"], spec.early_stopping)
    header = copy.read_text().splitlines()[0]  # the options the command line changed
    given = header.partition("options given on the command line: ")[2]
    name = _recipe_name(header)
    command = f"python cli.py train --config recipes/{name}.toml" + (f" {given}" if given and given != "none" else "")
    return {
        "recipe": name,
        "paper": recipe.reproduces.get("paper", ""),
        "row": recipe.reproduces.get("row", ""),
        "published": recipe.reproduces["published"],
        "published_k": recipe.reproduces.get("k"),
        "ours": round(result["nll"], 2),
        "stderr": round(result["nll_stderr"], 2),
        "k": result["k"],
        "test_images": result["images"],
        "stochastic_layers": spec.parts.model.stochastic_layers,
        "epochs": state["epoch"] if which == "last" else last["epoch"],
        "schedule_epochs": schedule,
        "minutes": round(seconds / 60, 1),
        "hardware": where,
        "complete": bool(last["epoch"] >= schedule or early),
        "checkpoint": f"{which} (epoch {state['epoch']})",
        "command": command,
    }


def _recipe_name(header: str) -> str:
    """burda-vae, from the first line of a run's recipe.toml ("# recipes/burda-vae.toml as this run ...")."""
    return Path(header.removeprefix("# ").split(" as this run")[0]).stem


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = json.loads(path.read_text())
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise UserError(f"{path} must hold a list of objects, one per recipe; fix or delete it")
    return rows


def record(row: dict, path: Path) -> list[dict]:
    """Add ``row`` to the rows in ``path``, replacing the row of the same recipe; returns all rows."""
    rows = [r for r in read_rows(path) if r.get("recipe") != row["recipe"]] + [row]
    rows.sort(key=lambda r: (r.get("paper", ""), r["recipe"]))
    save_json(rows, path)
    return rows


def render(rows: list[dict]) -> str:
    """docs/reproductions.md from the rows."""
    lines = [
        "# Reproductions",
        "",
        "Published -log p(x) on dynamically binarized MNIST (nats per test image, lower is better) beside ours, "
        "from the recipes in `recipes/`. Ours is `evaluate --k 5000` on all 10,000 test images, with the standard "
        "error of the mean over the images. Made by `python cli.py reproductions table` from "
        "[reproductions.json](reproductions.json); a row is added with `python cli.py reproductions record RUN`.",
        "",
        "| recipe | reproduces | published | ours (k) | layers | epochs | minutes, hardware | complete |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        published = f"{r['published']:.2f}" + (
            f" (k = {r['published_k']})" if r.get("published_k") and r["published_k"] != r["k"] else ""
        )
        difference = r["ours"] - r["published"]
        lines.append(
            f"| `{r['recipe']}` | {r['paper']}: {r['row']} | {published} | "
            f"**{r['ours']:.2f}** ± {r['stderr']:.2f} ({r['k']}); {difference:+.2f} | {r['stochastic_layers']} | "
            f"{r['epochs']} of {r['schedule_epochs']} | {r['minutes']:g}, {r['hardware']} | "
            f"{'yes' if r['complete'] else 'no: cut short'} |"
        )
    lines += ["", "## Each run", ""]
    for r in rows:
        notes = f" {r['notes'].rstrip('.')}." if r.get("notes") else ""
        lines.append(f"- `{r['recipe']}`, checkpoint {r['checkpoint']}: `{r['command']}`.{notes}")
    return "\n".join(lines) + "\n"


def write_table(rows_path: Path, table_path: Path) -> Path:
    """Render the rows in ``rows_path`` (docs/reproductions.json) into ``table_path`` (docs/reproductions.md)."""
    save_text(render(read_rows(rows_path)), table_path)
    return table_path
