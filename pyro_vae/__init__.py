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
from .models import MODELS, build_model
from .objectives import ELBOS
from .train import Trainer

__version__ = "0.1.0"
__all__ = ["Config", "Trainer", "load_model", "build_model", "MODELS", "ELBOS", "UserError"]
