"""What ``evaluate`` measures of a trained run, as one record a notebook can ask for too."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import data
from .classifier import load_classifier
from .contract import device_of
from .data import ImageSet
from .errors import UserError
from .evaluate import evaluate

SPLITS = ("test", "train")


def split_images(model, config, test: ImageSet, split: str, n: int | None) -> ImageSet:
    """The images ``evaluate --split`` measures: the run's test set, or one fixed draw of its training set (as
    reproducible as the test set's), the first ``n`` of them where ``n`` is given."""
    if split not in SPLITS:
        raise UserError(f"--split must be test or train, not {split!r}")
    images = test
    if split == "train":
        train, _ = data.load(config.dataset, device_of(model), config.binarize, config.condition)
        images = data.fixed_draw(train, config.binarize)
    if n is not None:
        if n < 1:
            raise UserError(f"--n must be at least 1, not {n}")
        images = images.head(n)
    return images


def measure_run(
    model,
    config,
    images: ImageSet,
    about: dict,
    split: str,
    *,
    k: int,
    samples_per_class: int,
    max_rows: int,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """The evaluation record of a trained run: ``about`` (which run, checkpoint, epoch), its model, data set and
    ``split``, then the ELBO
    and its parts, -log p(x) with ``k`` importance samples, active units (evaluate.evaluate), and for a
    conditional generative model how often its samples show their class (a classifier trained once per data
    set judges ``samples_per_class`` of each), with that classifier's own test accuracy."""
    classifier = accuracy = None
    if model.conditional and model.generative:
        classifier, accuracy = load_classifier(config.dataset, device_of(model), log=log)
    numbers = evaluate(
        model,
        images,
        k=k,
        classifier=classifier,
        n_per_class=samples_per_class,
        mirror=bool(config.flip),
        max_rows=max_rows,
        progress=progress,
    )
    result = {**about, "model": config.model, "dataset": config.dataset, "split": split} | numbers
    if accuracy is not None:
        result["classifier_test_accuracy"] = accuracy
    return result


def record_path(run: Path, split: str, k: int, which: str) -> Path:
    """Where ``evaluate`` keeps a run's record: <run>/evaluation-<split>-k<k>[-best].json."""
    return run / f"evaluation-{split}-k{k}{'-best' if which == 'best' else ''}.json"
