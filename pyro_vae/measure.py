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


def summary_rows(result: dict, classes: list[str], *, conditional: bool) -> list[tuple[str, str]]:
    """The table ``evaluate`` prints: (measure, value) rows of text, from the dict :func:`evaluate` returns.

    result: evaluate()'s numbers, with ``classifier_test_accuracy`` where a classifier judged the
    samples; classes: the data set's class names (per-class accuracies are shown for up to 10);
    conditional: the model sees y, so its likelihood is -log p(x|y). Indented measures are parts
    of the one above them.
    """
    rows = [
        ("-ELBO", f"{result['neg_elbo']:.2f}"),
        ("  reconstruction -E_q log p(x|z)", f"{result['recon']:.2f}"),
        ("  KL(q(z|x) || p(z))", f"{result['kl']:.2f}"),
        ("-ELBO in bits per dimension", f"{result['bits_per_dim']:.4f}"),
    ]
    if "nll" in result:
        what = "-log p(x|y)" if conditional else "-log p(x)"
        rows += [
            (f"{what}, importance-weighted, k={result['k']}", f"{result['nll']:.2f} ± {result['nll_stderr']:.2f}"),
            (f"{what} in bits per dimension", f"{result['nll_bits_per_dim']:.4f}"),
            ("active latent units", f"{result['active_units']} of {result['z_dim']}"),
        ]
    else:
        rows.append(("-log p(x)", "none: the autoencoder has no prior"))
    if "nearest_class" in result:
        near = result["nearest_class"]
        invariant = " (or their mirror images: trained with --flip)" if near["mirror"] else ""
        rows.append((f"classes whose samples are nearest their own test images{invariant}", f"{near['overall']:.1%}"))
        rows.append(("  RMS pixel distance to own / other classes' images", f"{near['own']:.4f} / {near['other']:.4f}"))
    if "classifier_accuracy" in result:
        rows.append(("test accuracy of the model's classifier q(y|x)", f"{result['classifier_accuracy']:.2%}"))
    if "conditional_accuracy" in result:
        accuracy = result["conditional_accuracy"]
        per_class = accuracy["per_class"]
        rows.append(("conditional accuracy of samples", f"{accuracy['overall']:.1%}"))
        if len(per_class) <= 10:
            rows.append(("  per class", " ".join(f"{c}:{a:.0%}" for c, a in zip(classes, per_class))))
        else:
            rows.append(("  lowest and highest class", f"{min(per_class):.0%} and {max(per_class):.0%}"))
        if "from_wav" in accuracy:
            rows.append(("  written as WAV, read back and featurized again", f"{accuracy['from_wav']['overall']:.1%}"))
        rows.append(("  the judging classifier's test accuracy", f"{result['classifier_test_accuracy']:.1%}"))
    return rows
