"""The models: each a Pyro model/guide pair in its own file. A new model is one file and one line here,
or a class in the user's own file named by reference (``--model path/to/file.py:Class``, see parts.py)."""

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


def build_model(config, image_shape, num_classes: int) -> LatentVariableModel:
    """The model named by ``config.model`` (a built-in name or a reference to the user's class), with
    freshly initialized networks, checked against the model contract (contract.py)."""
    from ..contract import check_model

    return check_model(model_class(config.model, config.labels)(config, tuple(image_shape), num_classes), config.model)


def model_class(model: str, labels: int | None = None) -> type:
    """The class ``model`` (``--model``) names; with ``labels`` (``--labels``), the cvae's semi-supervised form."""
    from ..parts import resolve

    cls = resolve("model", model)
    return SemiSupervisedCVAE if labels is not None and cls is CVAE else cls


__all__ = [
    "MODELS",
    "build_model",
    "LatentVariableModel",
    "VAE",
    "CVAE",
    "AE",
    "HVAE",
    "SemiSupervisedCVAE",
    "model_class",
]
