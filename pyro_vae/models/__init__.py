"""The models: each a Pyro model/guide pair in its own file. A new model is one file and one line here,
or a class in the user's own file named by reference (``--model path/to/file.py:Class``, see parts.py).
A model is built from a resolved run: spec.build_model."""

from __future__ import annotations

from .ae import AE
from .base import LatentVariableModel
from .cvae import CVAE
from .hvae import HVAE
from .semi_supervised import SemiSupervisedCVAE
from .vae import VAE

MODELS = {
    "vae": VAE,
    "cvae": CVAE,
    "ae": AE,
    "hvae": HVAE,
}


__all__ = [
    "MODELS",
    "LatentVariableModel",
    "VAE",
    "CVAE",
    "AE",
    "HVAE",
    "SemiSupervisedCVAE",
]
