"""Data sets, prepared once into one cache folder and then held whole on the training device.

``load(name, device, binarize)`` returns ``(train, test)`` :class:`ImageSet` pairs. Adding a data
set means one module that knows how to fetch it and one entry in :data:`DATASETS`, which also
names the settings that suit it (spectrograms want conv nets and a Gaussian likelihood, not
binarized pixels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from ..errors import UserError
from . import celeba, faces, image_folder, mnist, spoken_digits
from .cache import cached_file, data_home, load_cached, store
from .imageset import ImageSet

# Training settings that suit a kind of data; a Config setting left at None takes its data set's.
PIXELS = {
    "net": "mlp",
    "likelihood": "bernoulli",
    "binarize": "dynamic",
    "flip": False,
    "batch_size": 256,
    "epochs": 20,
}
# 2,400 training clips: small batches give enough steps per epoch (batch 32 against 64: samples
# heard as the digit asked for 95% against 85% of the time, docs/results.md); spectrograms are not binary.
SPECTROGRAMS = {
    "net": "conv",
    "likelihood": "gaussian",
    "binarize": "none",
    "flip": False,
    "batch_size": 32,
    "epochs": 30,
}
# Photographs: grey levels are not coin flips, and 64 x 64 wants convolutions.
PHOTOS = {"net": "conv", "likelihood": "gaussian", "binarize": "none", "flip": True, "batch_size": 32, "epochs": 200}


@dataclass(frozen=True)
class Source:
    """How to prepare a data set, ``prepare(home, **options) -> (arrays, source)``, and the settings that suit it."""

    prepare: Callable
    defaults: dict = field(default_factory=lambda: dict(PIXELS))
    options: tuple[str, ...] = ()  # the keyword options its prepare takes (`data prepare --from ...`)
    audio: bool = False  # spectrograms of sound: samples can be written as WAV files
    classifier_epochs: int = 2  # training of the classifier that judges conditional samples


DATASETS = {
    "mnist": Source(lambda home: mnist.prepare("mnist", home)),
    "fashion-mnist": Source(lambda home: mnist.prepare("fashion-mnist", home)),
    "spoken-digits": Source(
        spoken_digits.prepare,
        defaults=SPECTROGRAMS,
        audio=True,
        classifier_epochs=15,
        options=("clips", "seed", "source", "features"),
    ),
    "faces": Source(faces.prepare, defaults=PHOTOS, classifier_epochs=60, options=("image_size", "crop")),
    "image-folder": Source(
        image_folder.prepare, defaults=PHOTOS, classifier_epochs=20, options=("source", "image_size", "crop", "limit")
    ),
    "celeba": Source(
        celeba.prepare, defaults={**PHOTOS, "epochs": 20}, options=("source", "image_size", "crop", "limit")
    ),
}

BINARIZE = ("dynamic", "static", "none", "dequantize")
# The test set (and, for --binarize static, the training set) is drawn once with this seed (binarized,
# or dequantized), so test numbers of different runs are measured on the same images.
BINARIZE_SEED = 0


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise UserError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")


def prepare(name: str, force: bool = False, **options) -> tuple[str, str]:
    """Fetch, check and cache data set ``name``. Returns (path of the cache file, source).

    ``options`` go to the data set's own preparation (spoken-digits: clips, seed, source, features).
    """
    _check_name(name)
    if not force and not options and load_cached(name) is not None:
        return str(cached_file(name)), "cache"
    arrays, source = DATASETS[name].prepare(data_home(), **options)
    path = store(name, arrays)
    for judge in data_home().glob(f"classifier-{name}-*.pt"):  # trained on the old copy: retrained on use
        judge.unlink()
    return str(path), source


def load_arrays(name: str) -> dict:
    _check_name(name)
    arrays = load_cached(name)
    if arrays is None:
        prepare(name, force=True)
        arrays = load_cached(name)
    return arrays


def attribute_columns(arrays: dict, name: str, condition: str) -> tuple[list[int], list[str]]:
    """The columns of the attributes named in ``condition`` ("Smiling,Eyeglasses") and their names."""
    known = list(arrays.get("attribute_names", []))
    if not known:
        raise UserError(
            f"{name} has no attributes to condition on; --condition is for celeba (cvae on {name} uses its labels)"
        )
    wanted = [a.strip() for a in condition.split(",") if a.strip()]
    unknown = [a for a in wanted if a not in known]
    if unknown or not wanted:
        raise UserError(
            f"unknown attribute(s) {', '.join(unknown) or repr(condition)} for --condition; "
            f"{name} has: {', '.join(known)}"
        )
    return [known.index(a) for a in wanted], wanted


def load(
    name: str, device: torch.device | str = "cpu", binarize: str = "dynamic", condition: str | None = None
) -> tuple[ImageSet, ImageSet]:
    """The training and test splits of ``name`` on ``device``, prepared on first use.

    binarize: 'dynamic' keeps grey training images (the trainer draws a fresh binary image each
    time one is used) and a fixed binary test set; 'static' binarizes both once; 'none' keeps grey;
    'dequantize' keeps grey training images (the trainer spreads each pixel uniformly over its 8-bit
    level every time one is used) and a test set dequantized once (:func:`fixed_draw`).
    condition: attribute names, comma-separated (celeba): then y is the (N, k) 0/1 float vector of
    those attributes and ``classes`` their names, instead of the class labels.
    """
    if binarize not in BINARIZE:
        raise UserError(f"unknown binarization {binarize!r}; choose one of: {', '.join(BINARIZE)}")
    arrays = load_arrays(name)
    classes = list(arrays["classes"])
    columns = None
    if condition:
        columns, classes = attribute_columns(arrays, name, condition)

    if binarize != "none" and DATASETS[name].audio:
        raise UserError(f"{name} holds spectrograms, not pixels to binarize; use --binarize none")

    def split(s):
        x = arrays[f"x_{s}"].to(device=device, dtype=torch.float32)
        if arrays[f"x_{s}"].dtype == torch.uint8:
            x.div_(255.0)
        y = arrays[f"y_{s}"] if columns is None else arrays[f"attributes_{s}"][:, columns].float()
        images = ImageSet(x.unsqueeze(1) if x.dim() == 3 else x, y.to(device), classes, arrays.get("features"))
        return images.check(f"{name}'s {s} split ({cached_file(name)})")

    train, test = split("train"), split("test")
    g = torch.Generator(device=train.x.device).manual_seed(BINARIZE_SEED)
    if binarize == "static":  # one draw of each split, kept (the test set's first, as always)
        test, train = test.binarized(g), train.binarized(g)
    else:
        test = fixed_draw(test, binarize, g)
    return train, test


def fixed_draw(images: ImageSet, binarize: str, generator: torch.Generator | None = None) -> ImageSet:
    """Training images as :func:`load` returns them, made ready to be measured rather than trained on: one fixed draw.

    'dynamic': binary images; 'dequantize': grey levels spread over their level (:meth:`ImageSet.dequantized`);
    'static' (drawn once already by ``load``) and 'none': as they are. The draw comes from ``generator``,
    by default one seeded with BINARIZE_SEED, so that every run is measured on the same images.
    """
    if binarize in ("static", "none"):
        return images
    if generator is None:
        generator = torch.Generator(device=images.x.device).manual_seed(BINARIZE_SEED)
    return images.dequantized(generator) if binarize == "dequantize" else images.binarized(generator)


def hold_out(train: ImageSet, n: int, seed: int, binarize: str) -> tuple[ImageSet, ImageSet]:
    """``train`` split into (the images to train on, ``n`` validation images), chosen at random by ``seed``.

    The images left to train on keep their order. The validation images are drawn once (:func:`fixed_draw`),
    as the test set is, so that every epoch is measured on the same images.
    """
    if not 1 <= n < len(train):
        raise UserError(f"--validation {n} must leave images to train on: give 1 to {len(train) - 1}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).to(train.x.device)
    valid, rest = train.take(order[:n]), train.take(order[n:].sort().values)
    return rest, fixed_draw(valid, binarize)


__all__ = ["DATASETS", "fixed_draw", "hold_out", "BINARIZE", "ImageSet", "Source", "data_home", "load", "prepare"]
