"""Building a run from its resolved description (spec.Spec): the data it trains on, what its loss is called,
where it is saved."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyro
import torch

from .. import data, distributed
from ..config import AUTO_COMPILED_STEPS
from ..data.imageset import ImageSet
from ..data.labels import LabelledShare, keep_labels
from ..errors import UserError
from ..objectives import monte_carlo_sites
from ..parts import short_name
from .state import random_state_kept

# --labels: labelled images added to each batch (all of them, when there are fewer)
LABELLED_PER_BATCH = 64


@dataclass
class RunData:
    """The images of a run, on its device: ``train`` (its first ``--train-size``, labels hidden as ``--labels``
    says), ``test`` (its first ``--test-size``), ``valid`` (``--validation``: held out of the training images;
    else None) and ``labelled`` (``--labels``: the labelled share added to every batch; else None)."""

    train: ImageSet
    test: ImageSet
    valid: ImageSet | None
    labelled: LabelledShare | None


def load_data(spec, device: torch.device, main: bool) -> RunData:
    """The images the run ``spec`` trains and is tested on, or a UserError where they cannot serve it."""
    config = spec.config
    if not main:  # process 0 prepares the data (on first use), then the others read its cache
        distributed.barrier()
    train, test = data.load(config.dataset, device, config.binarize, config.condition)
    if main:
        distributed.barrier()
    valid = None  # --validation: training images held out to choose the best epoch by
    if config.validation is not None:
        train, valid = data.hold_out(train, config.validation, config.seed, config.binarize)
    train, test = train.head(config.train_size), test.head(config.test_size)
    labelled = None  # --labels: the labelled images added to every batch
    if config.labels is not None:
        train = keep_labels(train, config.labels, config.seed)
        labelled = LabelledShare(train, LABELLED_PER_BATCH)
    if config.batch_size > len(train):
        raise UserError(f"--batch-size {config.batch_size} is larger than the {len(train)} training images; lower it")
    if spec.parts.model.conditional and train.num_classes < 2:
        raise UserError(
            f"{config.dataset} has one class, so a conditional model ({config.model}) has nothing to condition on; "
            "use --model vae, or (celeba) name attributes with --condition Smiling,Eyeglasses"
        )
    return RunData(train, test, valid, labelled)


def objective_name(config) -> str:
    """What the training loss is called in the log: the ELBO itself, or another objective (a tighter bound,
    a weighted KL, the semi-supervised objective with its classification term over batches with labelled
    images added)."""
    if config.labels:
        return f"train objective (semi-supervised, {config.labels} labels, classify weight {config.classify_weight:g})"
    plain = config.elbo in ("trace", "meanfield", "jit") and config.beta == 1 and not config.kl_warmup
    return "train" if plain else f"train objective ({config.elbo}, beta {config.beta:g})"


def monte_carlo_note(model, train_data: ImageSet, param_state: dict) -> str | None:
    """--elbo meanfield: which KL terms have no closed form and are sampled instead, as a line to say once
    (None: every term is closed-form)."""
    x, y = train_data.x[:2], train_data.y[:2]
    # a look that leaves no trace: the run's z draws go on as if it had not been taken (resume
    # stays exact), and its weights stay out of the global param store
    with (
        random_state_kept(train_data.x.device),
        pyro.validation_enabled(False),
        pyro.get_param_store().scope(param_state),
    ):
        sites = monte_carlo_sites(model.model, model.guide, x, y)
    if not sites:
        return None
    return (
        f"--elbo meanfield: no closed-form KL for {', '.join(sites)}; "
        "those terms are Monte Carlo estimates, as in --elbo trace"
    )


def start_line(config, images: int, device: torch.device, parallel, compiled, run_dir: Path) -> str:
    """The log line a run starts with: what trains on what, where, in how many processes, with which step."""
    processes = f" in {distributed.world_size()} processes" if parallel is not None else ""
    how = " with the compiled step (the first step waits for the compiler)" if compiled is not None else ""
    return f"training {config.model} on {config.dataset} ({images} images) on {device}{processes}{how}: {run_dir}"


def compiled_step_pays(spec, train_data: ImageSet, parallel: bool) -> bool:
    """Whether the compiled step trains (``--step``): with compiled, always; with auto, where it can trace the
    step (spec.untraceable), in one process, and the run has AUTO_COMPILED_STEPS steps or more, so the
    compiler's wait pays. (spec.resolve refused a compiled step the run cannot take.)"""
    config = spec.config
    if config.step != "auto":
        return config.step == "compiled"
    steps = config.epochs * train_data.num_batches(config.batch_size, drop_last=True)
    return spec.untraceable is None and not parallel and steps >= AUTO_COMPILED_STEPS


def default_run_dir(config, recipe: str | None = None) -> Path:
    """runs/<model>-<dataset>-<time>, or runs/<recipe>-<time> for a run of a recipe; a model named by
    reference (file.py:Class, package.module:Class) by its class."""
    name = recipe or f"{short_name(config.model)}-{config.dataset}"
    return Path("runs") / f"{name}-{datetime.now():%Y%m%d-%H%M%S}"
