"""Data sets, prepared once into one cache folder and then held whole on the training device.

``load(name, device, binarize)`` returns ``(train, test)`` :class:`ImageSet` pairs. Adding a data
set means one module that knows how to fetch it and one entry in :data:`DATASETS`, which also
names the settings that suit it (spectrograms want conv nets and a Gaussian likelihood, not
binarized pixels).
"""

from __future__ import annotations

import torch

from ..errors import UserError
from dataclasses import dataclass, field
from typing import Callable

from . import mnist, spoken_digits
from .cache import cached_file, data_home, load_cached, store
from .imageset import ImageSet


# Training settings that suit a kind of data; a Config setting left at None takes its data set's.
PIXELS = {"net": "mlp", "likelihood": "bernoulli", "binarize": "dynamic", "batch_size": 256, "epochs": 20}
# 2,400 training clips: small batches give enough steps per epoch (batch 32 against 64: samples
# heard as the digit asked for 95% against 85% of the time, docs/results.md); spectrograms are not binary.
SPECTROGRAMS = {"net": "conv", "likelihood": "gaussian", "binarize": "none", "batch_size": 32, "epochs": 30}


@dataclass(frozen=True)
class Source:
    """How to prepare a data set, ``prepare(home, **options) -> (arrays, source)``, and the settings that suit it."""

    prepare: Callable
    defaults: dict = field(default_factory=lambda: dict(PIXELS))
    audio: bool = False  # spectrograms of sound: samples can be written as WAV files
    classifier_epochs: int = 2  # training of the classifier that judges conditional samples


DATASETS = {
    "mnist": Source(lambda home: mnist.prepare("mnist", home)),
    "fashion-mnist": Source(lambda home: mnist.prepare("fashion-mnist", home)),
    "spoken-digits": Source(spoken_digits.prepare, defaults=SPECTROGRAMS, audio=True, classifier_epochs=15),
}

BINARIZE = ("dynamic", "static", "none")
# The test set (and, for --binarize static, the training set) is binarized once with this seed,
# so test numbers of different runs are measured on the same binary images.
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
    return str(store(name, arrays)), source


def load_arrays(name: str) -> dict:
    _check_name(name)
    arrays = load_cached(name)
    if arrays is None:
        prepare(name, force=True)
        arrays = load_cached(name)
    return arrays


def load(name: str, device: torch.device | str = "cpu", binarize: str = "dynamic") -> tuple[ImageSet, ImageSet]:
    """The training and test splits of ``name`` on ``device``, prepared on first use.

    binarize: 'dynamic' keeps grey training images (the trainer draws a fresh binary image each
    time one is used) and a fixed binary test set; 'static' binarizes both once; 'none' keeps grey.
    """
    if binarize not in BINARIZE:
        raise UserError(f"unknown binarization {binarize!r}; choose one of: {', '.join(BINARIZE)}")
    arrays = load_arrays(name)
    classes = list(arrays["classes"])

    if binarize != "none" and DATASETS[name].audio:
        raise UserError(f"{name} holds spectrograms, not pixels to binarize; use --binarize none")

    def split(s):
        x = arrays[f"x_{s}"].to(device=device, dtype=torch.float32)
        if arrays[f"x_{s}"].dtype == torch.uint8:
            x.div_(255.0)
        return ImageSet(x.unsqueeze(1) if x.dim() == 3 else x, arrays[f"y_{s}"].to(device), classes, arrays.get("features"))

    train, test = split("train"), split("test")
    g = torch.Generator(device=train.x.device).manual_seed(BINARIZE_SEED)
    if binarize in ("dynamic", "static"):
        test = test.binarized(g)
    if binarize == "static":
        train = train.binarized(g)
    return train, test


__all__ = ["DATASETS", "BINARIZE", "ImageSet", "Source", "data_home", "load", "prepare"]
