"""Data sets, prepared once into one cache folder and then held whole on the training device.

``load(name, device, binarize)`` returns ``(train, test)`` :class:`ImageSet` pairs. Adding a data
set means one module that knows how to fetch it and one entry in :data:`DATASETS`.
"""

from __future__ import annotations

import torch

from ..errors import UserError
from . import mnist
from .cache import cached_file, data_home, load_cached, store
from .imageset import ImageSet

# name -> function(home) -> (arrays, source): the data sets this package can prepare
DATASETS = {
    "mnist": lambda home: mnist.prepare("mnist", home),
    "fashion-mnist": lambda home: mnist.prepare("fashion-mnist", home),
}

BINARIZE = ("dynamic", "static", "none")
# The test set (and, for --binarize static, the training set) is binarized once with this seed,
# so test numbers of different runs are measured on the same binary images.
BINARIZE_SEED = 0


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise UserError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")


def prepare(name: str, force: bool = False) -> tuple[str, str]:
    """Fetch, check and cache data set ``name``. Returns (path of the cache file, source)."""
    _check_name(name)
    if not force and load_cached(name) is not None:
        return str(cached_file(name)), "cache"
    arrays, source = DATASETS[name](data_home())
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

    def split(s):
        x = arrays[f"x_{s}"].to(device=device, dtype=torch.float32).div_(255.0)
        return ImageSet(x.unsqueeze(1) if x.dim() == 3 else x, arrays[f"y_{s}"].to(device), classes)

    train, test = split("train"), split("test")
    g = torch.Generator(device=train.x.device).manual_seed(BINARIZE_SEED)
    if binarize in ("dynamic", "static"):
        test = test.binarized(g)
    if binarize == "static":
        train = train.binarized(g)
    return train, test


__all__ = ["DATASETS", "BINARIZE", "ImageSet", "data_home", "load", "prepare"]
