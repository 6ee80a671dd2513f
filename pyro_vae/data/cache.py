"""Where prepared data sets live: one folder, ``$PYRO_VAE_DATA`` or ``~/.cache/pyro-vae``."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import UserError
from ..files import save_torch
from .imageset import _describe

ENV_VAR = "PYRO_VAE_DATA"
REQUIRED = ("classes", "x_train", "y_train", "x_test", "y_test")  # what every prepared data set holds


def data_home() -> Path:
    """The folder that holds every prepared data set (created on first use)."""
    home = Path(os.environ.get(ENV_VAR) or Path.home() / ".cache" / "pyro-vae").expanduser()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"cannot create the data folder {home} ({e.strerror}); set {ENV_VAR} to a writable folder"
        ) from e
    return home


def cached_file(name: str) -> Path:
    return data_home() / f"{name}.pt"


def load_cached(name: str) -> dict | None:
    """The prepared tensors of data set ``name``, or None when it has not been prepared."""
    path = cached_file(name)
    if not path.exists():
        return None
    try:
        arrays = torch.load(path, weights_only=True)
    except Exception as e:  # a truncated or foreign file: prepare again rather than fail
        print(f"warning: ignoring unreadable cache {path} ({type(e).__name__}); preparing it again")
        return None
    # a file torch reads, but not of the shape a prepared data set has: refused, not written over (it may be
    # the user's own, written by hand), and not left to fail as a KeyError wherever a part is first read
    problem = _problem(arrays)
    if problem:
        raise UserError(
            f"the data cache {path} is not a prepared data set: it {problem}; delete it, or prepare it again: "
            f"`python cli.py data prepare {name} --force` (with the options it was prepared with)"
        )
    return arrays


def _problem(arrays) -> str | None:
    """What is wrong with the keys and shapes of a cache's contents (the tensors' values: ImageSet.check), or None."""
    if not isinstance(arrays, dict):
        return f"holds {_describe(arrays)}, not a mapping of names to tensors"
    missing = [key for key in REQUIRED if key not in arrays]
    if missing:
        return f"lacks {', '.join(missing)}"
    classes = arrays["classes"]
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        return f"holds {_describe(classes)} as its classes, where a list of class names belongs"
    for split in ("train", "test"):
        x, y, attributes = arrays[f"x_{split}"], arrays[f"y_{split}"], arrays.get(f"attributes_{split}")
        if not torch.is_tensor(x) or x.dim() not in (3, 4):
            return f"holds {_describe(x)} as x_{split}, where images (N, H, W) or (N, C, H, W) belong"
        if not torch.is_tensor(y) or y.dim() != 1 or len(y) != len(x):
            return f"holds {_describe(y)} as y_{split}, where one label per image of x_{split} belongs, ({len(x)},)"
        if attributes is not None and (
            not torch.is_tensor(attributes) or attributes.dim() != 2 or len(attributes) != len(x)
        ):
            return (
                f"holds {_describe(attributes)} as attributes_{split}, "
                f"where one row for each of its {len(x)} images belongs"
            )
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        return (
            f"holds training images of shape {tuple(arrays['x_train'].shape[1:])} "
            f"but test images of {tuple(arrays['x_test'].shape[1:])}"
        )
    return None


def store(name: str, arrays: dict) -> Path:
    path = cached_file(name)
    save_torch(arrays, path)
    return path
