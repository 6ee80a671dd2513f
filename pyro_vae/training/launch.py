"""Starting a run and continuing one: what ``train`` and ``train --resume`` do, callable from a notebook too.

Both take care of what surrounds :class:`Trainer.fit <pyro_vae.training.Trainer>`: the run folder is checked and
locked by its one writer (writers.py) from the moment it is chosen, a folder that already holds a trained run is
never written over, and under torchrun the process group is left however the run ends.
"""

from __future__ import annotations

from pathlib import Path

from .. import checkpoint, distributed, lock, recipes, trust
from ..config import Config
from ..errors import UserError
from ..outputs import run_folder
from ..spec import resolve
from .loop import Trainer
from .setup import default_run_dir
from .writers import writes, writing


def start(
    config: Config,
    run_dir: str | Path | None = None,
    *,
    recipe: str | Path | None = None,
    overrides: dict | None = None,
    progress: bool = True,
    trust_code: bool = False,
) -> Path:
    """Train a new run in ``run_dir`` (None: runs/<model>-<dataset>-<time>); returns its folder.

    config: the settings, when no ``recipe`` is given; recipe: a TOML recipe (recipes.py) whose settings are
    used instead, with ``overrides`` (the settings the user gave by name) laid over them. The code a user names
    in ``overrides`` is their own choice, and trusted as it is now (trust.py); ``trust_code`` also runs the code
    a recipe names.
    """
    overrides = overrides or {}
    try:
        run_dir = run_folder(run_dir)  # refuses an empty name, a file and a name too long to make
        for part in checkpoint.PARTS:
            if part in overrides:
                trust.grant(overrides[part], run_dir)
        processes = distributed.launched_size()
        loaded = recipes.load(recipe, overrides, trust_code, world_size=processes) if recipe else None
        spec = loaded.spec if loaded else resolve(config, processes)
        run_dir = run_dir or default_run_dir(spec.config, loaded.name if loaded else None)
        if writes():
            lock.check_free(run_dir)  # a run being trained is named as such, before anything is loaded
        _refuse_a_trained_run(run_dir)
        trainer = Trainer(spec, run_dir, progress=progress)
        # held from the check to the end: a run finished or started meanwhile is never written over
        with writing(run_dir):
            _refuse_a_trained_run(run_dir)
            if loaded:
                recipes.keep(loaded, run_dir, overrides)
            trainer.fit()
        return run_dir
    finally:
        distributed.stop()


def resume(run_dir: str | Path, epochs: int | None = None, *, progress: bool = True, trust_code: bool = False):
    """Continue the run in ``run_dir`` from its last checkpoint, to ``epochs`` in all if given; returns the
    metrics of every epoch (Trainer.fit)."""
    try:
        # held from loading the checkpoint to the end: no other writer saves in between
        with writing(run_dir, create=False):
            trainer = Trainer.resume(run_dir, epochs=epochs, progress=progress, trust_code=trust_code)
            return trainer.fit()
    finally:
        distributed.stop()


def _refuse_a_trained_run(run_dir: Path) -> None:
    if (run_dir / checkpoint.CHECKPOINT).exists():
        raise UserError(
            f"{run_dir} already holds a trained run; continue it with --resume {run_dir}, or pick another --run-dir"
        )
