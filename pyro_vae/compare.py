"""Models side by side: train them on the same data and settings, then write a report.

By default the autoencoder, the VAE and the CVAE, to show what the probabilistic models buy; any
model can take part, a user's own class included (``--model path/to/file.py:Class``). The report
(``report.md`` with its PNGs beside it) holds a table of test -ELBO, reconstruction and KL; the
latent codes of the test set side by side; interpolations between the same test images in each
model; and each generative model's samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Sequence

import torch

from . import checkpoint
from .config import Config
from .errors import UserError
from .evaluate import ElboEstimate, evaluate_elbo, nearest_class
from .files import save_text
from .latent import (
    LatentPanel,
    describe_codes,
    encode_all,
    interpolation_pairs,
    interpolation_strip,
    knn_accuracy,
    project,
)
from .parts import is_reference, short_name
from .plots import column_shares, latent_figure, sample_figure, strips_figure
from .spec import Spec, for_model, resolve
from .training import Trainer

MODELS = ("ae", "vae", "cvae")
REPORT = "report.md"


def train_or_reuse(spec: Spec, run_dir: Path, *, log: Callable[[str], None], progress: bool, trust_code: bool = False):
    """The Trainer of ``run_dir``: resumed when it already holds this run, new otherwise (``trust_code``: the
    code a run found there names may be imported, trust.py)."""
    if (run_dir / checkpoint.CHECKPOINT).exists():
        saved, state = checkpoint.load_run(run_dir, trust_code=trust_code, epochs=spec.epochs)
        if saved.config != spec.config:
            raise UserError(f"{run_dir} holds a run with other settings; pass another --out, or delete it")
        trainer = Trainer.from_checkpoint(saved, state, run_dir, log=log, progress=progress)
    else:
        trainer = Trainer(spec, run_dir, log=log, progress=progress)
    trainer.fit()
    return trainer, sum(record.seconds for record in trainer.history)  # all its epochs, also those of an earlier call


def compare(
    spec: Spec,
    out: str | Path,
    *,
    models: Sequence[str] = MODELS,
    given: Collection[str] = (),
    pairs: int = 4,
    steps: int = 10,
    shared_lr: bool = False,
    log: Callable[[str], None] = print,
    progress: bool = True,
    trust_code: bool = False,
) -> Path:
    """Train (or reuse) each of ``models`` in ``out/<name>`` with the settings of ``spec`` (a resolved run, or
    a Config, resolved here); write ``out/report.md``.

    models: built-in names or references to a user's classes (a run folder and a table row are
    named by the class). Each model takes its own prior and networks (spec.for_model) except
    those named in ``given``, and trains at its own default learning rate (spec.default_lr),
    unless ``shared_lr``: then all at the spec's ``lr``. ``trust_code``: the code that runs already in
    ``out`` name may be imported (trust.py). Every model's settings are resolved before any trains,
    so a mistyped or unfit model is refused at once.
    """
    spec = spec if isinstance(spec, Spec) else resolve(spec)
    out, names = Path(out), [short_name(model) for model in models]
    own = resolve_each(spec, models, given, shared_lr)
    trainers, seconds = {}, {}
    for each, name in zip(own, names):
        trainers[name], seconds[name] = train_or_reuse(
            each, out / name, log=log, progress=progress, trust_code=trust_code
        )
    rows, samples, matched = side_by_side(spec.config, trainers, seconds, out, pairs, steps)
    references = {name: model for model, name in zip(models, names) if is_reference(model)}
    report = out / REPORT
    save_text(_report(spec.config, rows, samples, matched, references), report)
    log(f"wrote {report}")
    return report


def resolve_each(spec: Spec, models: Sequence[str], given: Collection[str], shared_lr: bool) -> list[Spec]:
    """The run of each of ``models`` with the settings of ``spec`` (for_model), resolved before any trains."""
    config, names = spec.config, [short_name(model) for model in models]
    if len(set(names)) < len(names):
        raise UserError(f"compare needs models of different names, not {', '.join(models)}")
    # None: that model's own default learning rate
    own = [resolve(for_model(spec, model, given).replace(lr=config.lr if shared_lr else None)) for model in models]
    if config.labels is not None and all(each.labels is None for each in own):
        raise UserError(
            f"--labels trains the models that learn from unlabelled images, and none of {', '.join(models)} does; "
            "add --model cvae, or leave --labels out"
        )
    return own


@dataclass(frozen=True)
class TableRow:
    """A model's row of the report's table."""

    name: str
    test: ElboEstimate
    pixel_error: float  # squared error of its reconstructions, summed over the pixels: per image
    knn: float  # how often the test codes' nearest neighbours name their label (latent.knn_accuracy)
    seconds: float  # training time, all its epochs
    epochs: int
    lr: float
    networks: str  # its prior and networks, as _networks names them


def table_row(name: str, trainer, seconds: float, test, codes: torch.Tensor) -> TableRow:
    """A model's row of the report's table: its test metrics, pixel error, k-NN accuracy of its ``codes`` of
    ``test`` (N, z_dim), time, epochs, learning rate and networks."""
    model = trainer.model
    metrics = evaluate_elbo(model, test)
    with torch.no_grad():
        pixel_error = sum(
            (model.reconstruct(x, y) - x).pow(2).flatten(1).sum(1).sum().item() for x, y in test.batches(1000)
        ) / len(test)
    knn = knn_accuracy(codes, test.y, codes, test.y)
    networks = _networks(trainer.config, model.generative)
    return TableRow(name, metrics, pixel_error, knn, seconds, trainer.epoch, trainer.config.lr, networks)


def side_by_side(config: Config, trainers: dict, seconds: dict, out: Path, pairs: int, steps: int):
    """Measure and draw the trained models side by side: the table's rows, latent.png, interpolation.png and each
    generative model's samples; returns (rows, samples, matched) for the report."""
    test = next(iter(trainers.values())).test_data
    classes = test.classes
    rows, panels, strips, labels, samples, matched = [], [], [], [], [], {}
    pair_list = interpolation_pairs(test.y.cpu(), pairs, config.seed)
    for name, trainer in trainers.items():
        model = trainer.model.eval()
        codes = encode_all(model, test)
        rows.append(table_row(name, trainer, seconds[name], test, codes))
        points, axes = project(codes, "pca")
        title = f"{name}: {describe_codes(model)}"
        panels.append(LatentPanel(points, test.y, classes, axes, title))
        for i, j in pair_list:
            strips.append(interpolation_strip(model, test.x, test.y, i, j, steps))
            labels.append(f"{name} {classes[test.y[i]]}→{classes[test.y[j]]}")
        if model.generative:
            sample_figure(model, classes, out / f"{name}-samples.png", ncol=10, seed=config.seed)
            samples.append((name, column_shares(model) if model.conditional else None))
            if model.conditional:
                matched[name] = nearest_class(model, test, mirror=bool(config.flip))
    # group the strips by pair, so each pair's rows of every model sit together
    order = [m * len(pair_list) + p for p in range(len(pair_list)) for m in range(len(trainers))]
    latent_figure(panels, out / "latent.png", title=f"test-set codes on {config.dataset} (PCA where z_dim > 2)")
    strips_figure(
        [strips[k] for k in order],
        [labels[k] for k in order],
        out / "interpolation.png",
        title="straight-line interpolation between test images (end points: reconstructions)",
    )
    return rows, samples, matched


_MIRRORED = """ The models were trained with left-right flips, so they
draw each class in both orientations: a sample is compared with a test image and with its mirror
image, and the nearer counts."""


def _networks(config: Config, generative: bool) -> str:
    """A model's prior and networks, as the report's table names them: "conditional; 2 × 600 / 2 × 600"."""
    prior = config.prior if generative else "none"
    if config.net != "mlp":
        return f"{prior}; {config.net}, {config.hidden_dim}"
    return f"{prior}; {config.encoder_layers} × {config.hidden_dim} / {config.decoder_layers} × {config.hidden_dim}"


def _report(config: Config, rows: list[TableRow], samples: list, matched: dict, references: dict) -> str:
    table = "\n".join(
        f"| `{r.name}` | {r.test.neg_elbo:.2f} | {r.test.recon:.2f} | {r.test.kl:.2f} | {r.pixel_error:.2f} | "
        f"{100 * r.knn:.1f}% | {r.networks} | {r.epochs} | {r.lr:g} | {r.seconds:.0f} s |"
        for r in rows
    )
    names = [row.name for row in rows]
    title = " vs ".join(name.upper() if name in MODELS else name for name in names)
    listed = "\n".join(f"- `{name}` is `{reference}`" for name, reference in references.items())
    defined = f"\n\n{listed}" if references else ""
    return f"""# {title} on {config.dataset}

Same data and settings for all: `--net {config.net} --z-dim {config.z_dim}
--likelihood {config.likelihood} --binarize {config.binarize} {"--flip" if config.flip else "--no-flip"}
--batch-size {config.batch_size} --elbo {config.elbo} --seed {config.seed}`, each with Adam at the
learning rate in the table, trained on {config.train_size or "all"} images and measured on
{config.test_size or "all"} test images. Each model has its own prior and networks, unless they were
given: the table names them (hidden layers × units, encoder / decoder).{defined}

| model | test -ELBO | reconstruction -E[log p(x\\|z)] | KL | squared pixel error | 5-NN accuracy of codes \
| prior; networks | epochs | learning rate | training time |
|---|---|---|---|---|---|---|---|---|---|
{table}

Nats per image; lower is better for all but the accuracy. A model with no prior (the autoencoder)
has no KL term, so its number is its reconstruction term alone and not a bound on log p(x). The
squared pixel error is that of the decoded mean code, summed over an image's pixels. The
5-nearest-neighbour accuracy says how well the classes separate among the codes (leave one out):
a conditional model is told the class, so its codes need not carry it, and should separate it least.

## Latent codes of the test set

![latent codes](latent.png)

## Interpolation

Each group of rows decodes the straight line between the codes of the same two test images in
each model, in the table's order (a conditional model's condition moves from one label to the
other along the way). A VAE was trained to decode every code its prior deems likely, so the
points in between look like the data (digits, faces); an autoencoder was only trained on the
codes of training images, and what it decodes between them need not look like anything.

![interpolation](interpolation.png)

## Samples

{_samples_table(samples)}
{"".join(_matched(name, result) for name, result in matched.items())}"""


def _samples_table(samples: list) -> str:
    """One column per generative model: ``samples`` is [(name, what a column shares, or None if unconditional)]."""
    if not samples:
        return "None of these models has a prior to draw from."
    heads = [
        f"{name}: " + (f"one row per class, a column shares {shared}" if shared else "from the prior p(z)")
        for name, shared in samples
    ]
    cells = [f"![{name} samples]({name}-samples.png)" for name, _ in samples]
    return "\n".join(["| " + " | ".join(heads) + " |", "|" + "---|" * len(samples), "| " + " | ".join(cells) + " |"])


def _matched(name: str, matched: dict) -> str:
    return f"""
For {100 * matched["overall"]:.1f}% of the classes, the samples `{name}` draws for a class are nearer
(in RMS pixel difference, averaged over {matched["samples_per_class"]} samples and the class's test
images) to that class's test images than to any other class's: {matched["own"]:.4f} to their own
class's images, {matched["other"]:.4f} to the others' on average.{_MIRRORED if matched["mirror"] else ""}
"""
