"""Where prepared data sets live: one folder, ``$PYRO_VAE_DATA`` or ``~/.cache/pyro-vae``."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import UserError
from ..files import save_torch

ENV_VAR = "PYRO_VAE_DATA"


def data_home() -> Path:
    """The folder that holds every prepared data set (created on first use)."""
    home = Path(os.environ.get(ENV_VAR) or Path.home() / ".cache" / "pyro-vae").expanduser()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the data folder {home} ({e.strerror}); set {ENV_VAR} to a writable folder") from e
    return home


def cached_file(name: str) -> Path:
    return data_home() / f"{name}.pt"


def load_cached(name: str) -> dict | None:
    """The prepared tensors of data set ``name``, or None when it has not been prepared."""
    path = cached_file(name)
    if not path.exists():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception as e:  # a truncated or foreign file: prepare again rather than fail
        print(f"warning: ignoring unreadable cache {path} ({type(e).__name__}); preparing it again")
        return None


def store(name: str, arrays: dict) -> Path:
    path = cached_file(name)
    save_torch(arrays, path)
    return path
