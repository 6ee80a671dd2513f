"""AE against VAE against CVAE: train the three on the same data and settings, then write a report.

The report (``report.md`` with its PNGs beside it) shows what the probabilistic models buy:
a table of test -ELBO, reconstruction and KL; the latent codes of the test set side by side;
interpolations between the same test images in each model; and the CVAE's class-conditional
samples next to the VAE's unconditional ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from . import checkpoint
from .config import Config
from .errors import UserError
from .evaluate import evaluate_elbo, nearest_class
from .files import save_text
from .latent import describe_codes, encode_all, interpolation_pairs, interpolation_strip, knn_accuracy, project
from .plots import latent_figure, sample_figure, strips_figure

MODELS = ("ae", "vae", "cvae")
REPORT = "report.md"


def train_or_reuse(config: Config, run_dir: Path, *, log: Callable[[str], None], progress: bool):
    """The Trainer of ``run_dir``: resumed when it already holds this configuration, new otherwise."""
    from .train import Trainer

    if (run_dir / checkpoint.CHECKPOINT).exists():
        saved = Config.from_dict(checkpoint.load(run_dir)["config"])
        if saved.replace(epochs=config.epochs) != config:
            raise UserError(f"{run_dir} holds a run with other settings; pass another --out, or delete it")
        trainer = Trainer.resume(run_dir, epochs=config.epochs, log=log, progress=progress)
    else:
        trainer = Trainer(config, run_dir, log=log, progress=progress)
    trainer.fit()
    return trainer, sum(row["seconds"] for row in trainer.history)  # all its epochs, also those of an earlier call


def compare(config: Config, out: str | Path, *, pairs: int = 4, steps: int = 10, shared_lr: bool = False,
            log: Callable[[str], None] = print, progress: bool = True) -> Path:  # fmt: skip
    """Train (or reuse) ae, vae and cvae under ``out/`` with ``config``'s settings; write ``out/report.md``.

    Each model trains at its own default learning rate (config.default_lr), unless ``shared_lr``:
    then all at ``config.lr``.
    """
    out = Path(out)
    trainers, seconds = {}, {}
    for name in MODELS:
        own = config.replace(model=name, lr=config.lr if shared_lr else None)  # None: that model's default
        trainers[name], seconds[name] = train_or_reuse(own, out / name, log=log, progress=progress)

    test = trainers["vae"].test_data
    classes = test.classes
    rows, panels, strips, labels = [], [], [], []
    pair_list = interpolation_pairs(test.y.cpu(), pairs, config.seed)
    for name, trainer in trainers.items():
        model = trainer.model.eval()
        metrics = evaluate_elbo(model, test)
        codes = encode_all(model, test)
        with torch.no_grad():
            pixel_error = sum(
                (model.reconstruct(x, y) - x).pow(2).flatten(1).sum(1).sum().item() for x, y in test.batches(1000)
            ) / len(test)  # fmt: skip
        rows.append((name, metrics, pixel_error, knn_accuracy(codes, test.y, codes, test.y), seconds[name], trainer.epoch, trainer.config.lr))
        points, axes = project(codes, "pca")
        panels.append({"points": points, "labels": test.y, "classes": classes, "axes": axes,
                       "title": f"{name}: {describe_codes(model)}"})  # fmt: skip
        for i, j in pair_list:
            strips.append(interpolation_strip(model, test.x, test.y, i, j, steps))
            labels.append(f"{name} {classes[test.y[i]]}→{classes[test.y[j]]}")
    # group the strips by pair, so each pair's ae, vae and cvae rows sit together
    order = [m * len(pair_list) + p for p in range(len(pair_list)) for m in range(len(MODELS))]
    latent_figure(panels, out / "latent.png", title=f"test-set codes on {config.dataset} (PCA where z_dim > 2)")
    strips_figure([strips[k] for k in order], [labels[k] for k in order], out / "interpolation.png",
                  title="straight-line interpolation between test images (end points: reconstructions)")  # fmt: skip
    sample_figure(trainers["vae"].model, classes, out / "vae-samples.png", ncol=10, seed=config.seed)
    sample_figure(trainers["cvae"].model, classes, out / "cvae-samples.png", ncol=10, seed=config.seed)
    matched = nearest_class(trainers["cvae"].model, test, mirror=bool(config.flip))
    report = out / REPORT
    save_text(_report(config, rows, matched), report)
    log(f"wrote {report}")
    return report


_MIRRORED = """ The models were trained with left-right flips, so they
draw each class in both orientations: a sample is compared with a test image and with its mirror
image, and the nearer counts."""


def _report(config: Config, rows, matched: dict) -> str:
    table = "\n".join(
        f"| `{name}` | {m['neg_elbo']:.2f} | {m['recon']:.2f} | {m['kl']:.2f} | {pixel:.2f} | {100 * knn:.1f}% | {epochs} | {lr:g} | {secs:.0f} s |"
        for name, m, pixel, knn, secs, epochs, lr in rows
    )  # fmt: skip
    return f"""# AE vs VAE vs CVAE on {config.dataset}

Same data, networks and settings for all three: `--net {config.net} --z-dim {config.z_dim} --hidden-dim {config.hidden_dim}
--likelihood {config.likelihood} --binarize {config.binarize} {'--flip' if config.flip else '--no-flip'}
--batch-size {config.batch_size} --elbo {config.elbo} --seed {config.seed}`, each with Adam at the
learning rate in the table, trained on {config.train_size or 'all'} images and measured on
{config.test_size or 'all'} test images.

| model | test -ELBO | reconstruction -E[log p(x\\|z)] | KL | squared pixel error | 5-NN accuracy of codes | epochs | learning rate | training time |
|---|---|---|---|---|---|---|---|---|
{table}

Nats per image; lower is better for all but the accuracy. The autoencoder has no prior, so its
number is its reconstruction term alone and not a bound on log p(x). The squared pixel error is
that of the decoded mean code, summed over an image's pixels. The 5-nearest-neighbour accuracy
says how well the classes separate among the codes (leave one out): the CVAE is told the class,
so its codes need not carry it, and should separate it least.

## Latent codes of the test set

![latent codes](latent.png)

## Interpolation

Each group of three rows decodes the straight line between the codes of the same two test images
in the autoencoder, the VAE and the CVAE (whose condition moves from one label to the other
along the way). The VAE was trained to decode every code the prior deems likely, so the points
in between look like the data (digits, faces); the autoencoder was only trained on the codes of
training images, and what it decodes between them need not look like anything.

![interpolation](interpolation.png)

## Samples

| VAE: from the prior p(z) | CVAE: one row per class, a column shares one z |
|---|---|
| ![VAE samples](vae-samples.png) | ![CVAE samples](cvae-samples.png) |

For {100 * matched['overall']:.1f}% of the classes, the CVAE's samples of a class are nearer (in RMS
pixel difference, averaged over {matched['samples_per_class']} samples and the class's test images)
to that class's test images than to any other class's: {matched['own']:.4f} to their own class's
images, {matched['other']:.4f} to the others' on average.{_MIRRORED if matched['mirror'] else ''}
"""
