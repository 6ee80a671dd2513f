"""pyro-vae: variational autoencoders written as Pyro probabilistic programs.

Train a conditional VAE, open it again and draw eight sevens::

    from pyro_vae import Config, Trainer, load_model
    history = Trainer(Config(model="cvae", epochs=10), "runs/my-cvae").fit()
    model, config, _ = load_model("runs/my-cvae")
    images = model.sample(8, y=torch.full((8,), 7))
"""

from .checkpoint import load_model
from .config import Config
from .errors import UserError
from .models import MODELS
from .objectives import ELBOS
from .spec import Spec, build_model, resolve
from .training import Trainer

__version__ = "0.1.0"
__all__ = ["Config", "Spec", "resolve", "Trainer", "load_model", "build_model", "MODELS", "ELBOS", "UserError"]
