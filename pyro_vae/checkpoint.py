"""Run directories and checkpoints.

A run directory holds::

    config.json      the Config, for people to read
    checkpoint.pt    networks, optimizer, epoch, metrics history, RNG states and the Config
    best.pt          with --validation: the same, of the epoch with the lowest validation -ELBO
    metrics.csv      one row per finished epoch
    samples.png      images drawn from the model after the latest epoch (models with a prior)
    reconstructions.png  test images beside their reconstructions after the latest epoch

Every file is written to a temporary file and renamed into place, so a run killed at any
moment leaves the previous complete checkpoint. Checkpoints load with ``weights_only=True``:
loading one never runs code from it.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import torch

from . import data, trust
from .config import Config
from .errors import UserError
from .files import save_text, save_torch
from .history import EpochRecord
from .models import CVAE
from .parts import resolve
from .spec import Spec, build_model
from .spec import resolve as resolve_run

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"  # --validation: the checkpoint of the epoch with the lowest validation -ELBO
CHECKPOINTS = {"last": CHECKPOINT, "best": BEST}  # what --checkpoint names
CONFIG = "config.json"
METRICS = "metrics.csv"
SAMPLES = "samples.png"
RECONSTRUCTIONS = "reconstructions.png"
FORMAT = 4
# format 1 (before priors were parts) kept N(0, I) as the model's buffers z_loc and z_scale, and the
# CVAE's learned p(z|y) as prior_net; format 2 keeps the prior as the part p_z (priors.py)
DROPPED = {1: ("z_loc", "z_scale")}
# settings new in a format, which runs of the formats before it did not save: the value their
# networks were built with (format 3 lets a model choose its decoder's depth, which was 1; format 4
# its encoder's depth, also 1, and the network of a semi-supervised run's q(y|x), which was the mlp)
ADDED = {3: {"decoder_layers": 1}, 4: {"encoder_layers": 1, "classifier": "mlp"}}
REQUIRED = ("config", "epoch", "model", "optimizer", "history", "rng", "image_shape", "classes")


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# what each part must be, checked when a checkpoint is loaded, before anything reads it: a damaged or
# hand-made file is then one line, not a TypeError wherever the part is first used
TYPES = {
    "config": (lambda v: isinstance(v, dict), "a mapping of settings"),
    "model": (
        lambda v: isinstance(v, dict) and all(isinstance(k, str) and torch.is_tensor(t) for k, t in v.items()),
        "a mapping of layer names to tensors",
    ),
    "optimizer": (lambda v: isinstance(v, dict), "a mapping (the optimizer's state)"),
    "rng": (lambda v: isinstance(v, dict), "a mapping of random states"),
    "epoch": (lambda v: _whole(v) and v >= 0, "a whole number of epochs (0 or more)"),
    "history": (
        lambda v: isinstance(v, list) and all(isinstance(row, dict) for row in v),
        "a list of one mapping of metrics per epoch",
    ),
    "image_shape": (
        lambda v: isinstance(v, (list, tuple)) and len(v) == 3 and all(_whole(n) and n > 0 for n in v),
        "a list of 3 positive whole numbers (channels, height, width)",
    ),
    "classes": (lambda v: isinstance(v, (list, tuple)) and all(isinstance(c, str) for c in v), "a list of class names"),
}


def save(run_dir: Path, state: dict, best: bool = False) -> None:
    """Write ``state`` as the run's checkpoint and its metrics as metrics.csv; ``best``: as best.pt instead."""
    save_torch({"format": FORMAT, **state}, Path(run_dir) / (BEST if best else CHECKPOINT))
    if not best:
        save_metrics(run_dir, state["history"])


def save_metrics(run_dir: Path, history: list[dict]) -> None:
    """metrics.csv is rewritten whole from the checkpoint's history (its rows: EpochRecord.row), so the two
    always agree."""
    if not history:
        return
    out = io.StringIO()
    columns = list(dict.fromkeys(key for row in history for key in row))  # a run resumed by a newer version adds some
    writer = csv.DictWriter(out, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(history)
    save_text(out.getvalue(), Path(run_dir) / METRICS)


def load(run_dir: str | Path, map_location="cpu", which: str = "last", trust_code: bool = False) -> dict:
    """The checkpoint of ``run_dir``, or a UserError that says what is wrong with it (:func:`load_run`)."""
    return load_run(run_dir, map_location, which, trust_code)[1]


def load_run(
    run_dir: str | Path,
    map_location="cpu",
    which: str = "last",
    trust_code: bool = False,
    *,
    epochs: int | None = None,
) -> tuple[Spec, dict]:
    """The run of ``run_dir``, opened once: its settings resolved (spec.resolve) and its checkpoint, or a
    UserError that says what is wrong with them.

    which: "last" (checkpoint.pt, where training stands) or "best" (best.pt, kept with --validation).
    trust_code: import the code its settings name even where the user has not trusted it yet
    (``--trust-code``; trust.py): a run may come from someone else. epochs: the run's length changed
    (``train --resume --epochs``).
    """
    state = _read(Path(run_dir), map_location, which)
    # the settings name the run's parts: a user's model is imported again from its file or module here, as far as the
    # trust rule allows, for the checkpoint's settings and config.json's alike
    with trust.reading(run_dir, vouched=trust_code):
        try:
            Config.from_dict(state["config"])  # its types, before the upgrade reads it
            upgrade(state)
            config = Config.from_dict(state["config"])
            spec = resolve_run(config if epochs is None else config.replace(epochs=epochs))
        except UserError as e:
            raise UserError(f"{run_dir}: {e}") from None
        check_config_file(run_dir, state["config"], Path(run_dir) / CHECKPOINTS[which])
    return spec, state


def _read(run_dir: Path, map_location, which: str) -> dict:
    """The checkpoint ``which`` of ``run_dir``, its parts checked for their types and its weights for NaN."""
    path = run_dir / CHECKPOINTS[which]
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} {_not_a_folder(run_dir)}")
    if which == "best" and not path.exists() and (run_dir / CHECKPOINT).exists():
        raise UserError(
            f"{run_dir} has no {BEST}: only runs trained with --validation N "
            "keep their best epoch; use --checkpoint last"
        )
    if not path.exists():
        raise UserError(f"{run_dir} has no {CHECKPOINT}; train into it first (`train --run-dir {run_dir}`)")
    if path.is_dir():
        raise UserError(
            f"{path} is a folder, where the run's checkpoint file belongs; "
            "move it away and restore the file from a copy"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise UserError(
            f"{path} cannot be read ({type(e).__name__}): it is truncated or not a pyro-vae checkpoint"
        ) from e
    version = state.get("format") if isinstance(state, dict) else None
    if version not in range(1, FORMAT + 1):
        why = (
            "a newer pyro-vae wrote it: upgrade pyro-vae"
            if isinstance(version, int) and version > FORMAT
            else "train the run again"
        )
        raise UserError(f"{path} is not a pyro-vae checkpoint of format 1 to {FORMAT}; {why}")
    missing = [key for key in REQUIRED if key not in state]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: it is damaged; train the run again")
    check_types(path, state)
    check_finite(path, state["model"])
    try:
        state["history"] = [EpochRecord.from_row(row) for row in state["history"]]
    except UserError as e:
        raise UserError(f"{path}: {e}; it is damaged or hand-made: train the run again") from None
    return state


def _not_a_folder(path: Path) -> str:
    """Why ``path``, which is not a folder, is not one, and what to pass instead: each case has its own fix."""
    made_by_train = "pass a folder made by `train` (see `ls runs/`)"
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except FileNotFoundError:
            return f"is a symbolic link to {os.readlink(path)}, which does not exist; mend the link, or {made_by_train}"
        except (OSError, RuntimeError):  # a loop: RuntimeError before Python 3.13, OSError (ELOOP) since
            return f"is a symbolic link that leads back to itself (a loop); mend the link, or {made_by_train}"
    if path.exists():
        if path.name in CHECKPOINTS.values():
            return f"is a run's {path.name}, a file; pass the run folder that holds it, {path.parent}"
        return f"is a file, not a folder; {made_by_train}"
    return f"does not exist; {made_by_train}"


def check_types(path: Path, state: dict) -> None:
    """Refuse a checkpoint any of whose parts (:data:`TYPES`) is not of its type, naming the first."""
    for key, (fits, expected) in TYPES.items():
        if not fits(state[key]):
            raise UserError(
                f"{path} holds {_describe(state[key])} as its {key}, where {expected} belongs: it is damaged; "
                "restore the file from a copy, or train the run again"
            )


def _describe(value) -> str:
    shown = repr(value)
    return f"the {type(value).__name__} {shown}" if len(shown) <= 40 else f"a {type(value).__name__}"


def check_finite(path: Path, weights: dict) -> None:
    """Refuse networks with a layer that is NaN or infinite throughout: nothing drawn from them would be a number.

    (Training never saves such weights, --on-nan stops first; they come from a damaged or hand-made file.)
    A layer with a few non-finite values is left alone: those show as a NaN loss or image where they are used.
    """
    broken = [
        name for name, t in weights.items() if t.is_floating_point() and t.numel() and not torch.isfinite(t).any()
    ]
    if broken:
        more = f", as are {len(broken) - 1} more of its {len(weights)} tensors" if len(broken) > 1 else ""
        raise UserError(
            f"{path}: its weights are not finite: layer {broken[0]} is NaN or infinite throughout{more}; "
            "restore the file from a copy, or train the run again"
        )


def upgrade(state: dict) -> dict:
    """Bring a checkpoint of an older format to this one, in place: the networks' names as they are
    now, and the settings added since, at the values the run was built with."""
    for version in range(state["format"], FORMAT):
        state["config"] = {**_added(version, state["config"]), **state["config"]}
        weights = {}
        for key, value in state["model"].items():
            if key in DROPPED.get(version, ()):
                continue
            for old, new in _renamed(version, state["config"]).items():
                key = new + key[len(old) :] if key.startswith(old) else key
            weights[key] = value
        state["model"], state["format"] = weights, version + 1
    return state


def _added(version: int, config: dict) -> dict:
    """The settings a run of ``config`` saved in format ``version`` lacks, at the values it was built with."""
    added = ADDED.get(version + 1, {})
    if config.get("labels") is None:  # a run without --labels has no q(y|x): it keeps the default
        added = {k: v for k, v in added.items() if k != "classifier"}
    return added


def _renamed(version: int, config: dict) -> dict:
    """Old name prefix -> new, for the networks of a run of ``config`` saved in format ``version``."""
    if version == 1 and issubclass(resolve("model", config["model"]), CVAE):  # a user's subclass too
        return {"prior_net.": "p_z.net."}
    return {}


def check_config_file(run_dir: Path, saved: dict, source: Path | None = None) -> None:
    """config.json is a readable copy of the checkpoint's settings (those of ``source``, the run's
    checkpoint.pt unless given): refuse one edited away from them.

    Settings cannot change after training (the networks were built from them); a silent
    mismatch would leave the user believing the edit took effect.
    """
    path = Path(run_dir) / CONFIG
    if not path.exists():
        return
    invalid = f"{path} is not valid ({{}}); delete it: train writes it again from the checkpoint"
    try:
        written = json.loads(path.read_text())
    except ValueError as e:
        raise UserError(invalid.format(str(e).splitlines()[0])) from e
    if isinstance(written, dict):
        # a config.json written before a setting existed lacks it: the run's own value, not an edit
        written = {**{k: v for k, v in saved.items() if any(k in added for added in ADDED.values())}, **written}
        # the names of the run's parts first, as written: resolving an edited name would import
        # code that the checkpoint never named
        _refuse_another_model(source or Path(run_dir) / CHECKPOINT, path, written, saved)
        _refuse_edits(path, {k: written[k] for k in PARTS if k in written}, saved)
    try:
        written = Config.from_dict(written).to_dict()
    except UserError as e:
        raise UserError(invalid.format(str(e).splitlines()[0])) from e
    _refuse_edits(path, written, Config.from_dict(saved).to_dict())


PARTS = ("model", "likelihood", "prior", "guide")  # settings that name code: a built-in name or the user's class


def _refuse_another_model(source: Path, path: Path, written: dict, saved: dict) -> None:
    """Another model in config.json than in the checkpoint is not an edit of a setting to point out: either
    file may be another run's (a checkpoint copied over), so neither is blamed."""
    if "model" in written and written["model"] != saved["model"]:
        raise UserError(
            f"{source} holds a {saved['model']!r} model but {path} describes a {written['model']!r} model: the two "
            f"files describe different models (one copied from another run, or config.json edited); put back this "
            f"run's own file, or delete {path} to keep the checkpoint's {saved['model']!r} (train writes it again "
            f"from the checkpoint)"
        )


def _refuse_edits(path: Path, written: dict, saved: dict) -> None:
    changed = [
        f"{k}={written[k]!r} (trained with {saved.get(k)!r})"
        for k in written
        if written[k] != saved.get(k) and k != "epochs"
    ]
    if changed:
        raise UserError(
            f"{path} was edited: {', '.join(changed)}; a trained run's settings cannot change: undo the edit, "
            "or train a new run with those options (--resume takes --epochs)"
        )


def load_model(run_dir: str | Path, device: torch.device | str = "cpu", which: str = "last", trust_code: bool = False):
    """Rebuild the trained model of ``run_dir`` on ``device`` from its last checkpoint (``which="best"``:
    from best.pt; ``trust_code``: as :func:`load`). Returns (model, config, checkpoint): the run's settings,
    every one filled in (load_run gives its resolved spec as well)."""
    spec, state = load_run(run_dir, map_location=device, which=which, trust_code=trust_code)
    model = build_model(spec, state["image_shape"], len(state["classes"]))
    load_weights(run_dir, state, model)
    return model.to(device).eval(), spec.config, state


def load_weights(run_dir: str | Path, state: dict, model, optimizer=None) -> None:
    """Put the checkpoint ``state``'s weights into ``model``, built from its settings (and its optimizer's
    state into ``optimizer``), or a UserError naming the first layer where the two differ."""
    wrong = (
        f"the networks in {run_dir} do not match its config: {{}}; "
        "restore the checkpoint from a copy, or train the run again"
    )
    difference = mismatch(model.state_dict(), state["model"])
    if difference:
        raise UserError(wrong.format(difference))
    try:
        model.load_state_dict(state["model"])
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError) as e:
        raise UserError(wrong.format(str(e).splitlines()[0])) from e


def mismatch(built: dict, saved: dict) -> str | None:
    """The first layer where the networks the settings build (``built``) and the weights saved differ,
    and how; None where they match. PyTorch's own message names them only after a line break."""
    for name, tensor in built.items():
        if name not in saved:
            return f"its settings build layer {name} {tuple(tensor.shape)}, which the checkpoint lacks"
        if saved[name].shape != tensor.shape:
            return (
                f"layer {name} is {tuple(saved[name].shape)} in the checkpoint, "
                f"where its settings build {tuple(tensor.shape)}"
            )
    extra = [name for name in saved if name not in built]
    if extra:
        return f"the checkpoint holds layer {extra[0]} {tuple(saved[extra[0]].shape)}, which its settings do not build"
    return None


def open_run(run_dir: str | Path, device: torch.device | str = "cpu", which: str = "last", trust_code: bool = False):
    """What a command that looks inside a run needs: (model in eval mode, config, checkpoint, test set),
    all on ``device``; ``which``: the last checkpoint or the best, ``trust_code`` (:func:`load`).

    The test set is the one the run was measured on (its first ``config.test_size`` images), loaded
    with the run's own binarization and condition. A data set prepared again at another image size
    since is refused: the networks were built for the old one.
    """
    model, config, state = load_model(run_dir, device, which, trust_code)
    _, test = data.load(config.dataset, device, config.binarize, config.condition)
    if list(test.image_shape) != list(state["image_shape"]):
        raise UserError(
            f"{config.dataset} is now prepared as {tuple(test.image_shape)} images, but {run_dir} was trained on "
            f"{tuple(state['image_shape'])}; prepare it again with the run's settings "
            f"(`data prepare {config.dataset} --help`)"
        )
    return model, config, state, test.head(config.test_size)
