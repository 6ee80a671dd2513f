"""The models: each a Pyro model/guide pair in its own file. A new model is one file and one line here."""

from __future__ import annotations

from .ae import AE
from .base import LatentVariableModel
from .cvae import CVAE
from .vae import VAE

MODELS = {
    "vae": VAE,
    "cvae": CVAE,
    "ae": AE,
}


def build_model(config, image_shape, num_classes: int) -> LatentVariableModel:
    """The model named by ``config.model``, with freshly initialized networks."""
    return MODELS[config.model](config, image_shape, num_classes)


__all__ = ["MODELS", "build_model", "LatentVariableModel", "VAE", "CVAE", "AE"]
