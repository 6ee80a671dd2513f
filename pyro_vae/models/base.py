"""What every latent-variable model here offers besides its Pyro program.

A model subclasses :class:`LatentVariableModel` and writes three methods that read like the math:

- ``prior(n, y)``: the distribution p(z) (or p(z|y)) of ``n`` codes, batch (n,), event (z_dim,);
- ``model(x, y)``: the generative program p(z) p(x|z), with x observed;
- ``guide(x, y)``: the amortized variational distribution q(z|x).

They hold only the math: training knobs are applied from outside, by the trainer. What the tools
use of a model is written down in contract.py.

The base class builds the encoder and decoder networks and derives from them the
deterministic helpers the CLI needs: :meth:`encode`, :meth:`decode`, :meth:`sample`, :meth:`reconstruct`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..contract import condition_vectors
from ..likelihoods import build_likelihood
from ..networks import build_decoder, build_encoder


class LatentVariableModel(nn.Module):
    #: whether the networks see the label y (a CVAE) or not
    conditional = False
    #: whether the model has a prior to sample new images from (the autoencoder has none)
    generative = True

    def __init__(self, config, image_shape, num_classes: int):
        super().__init__()
        self.z_dim = config.z_dim
        self.num_classes = num_classes
        self.image_shape = tuple(image_shape)
        self.likelihood = build_likelihood(config, image_shape)
        cond_dim = num_classes if self.conditional else 0
        self.encoder = build_encoder(config.net, image_shape, config.z_dim, config.hidden_dim, cond_dim)
        self.decoder = build_decoder(config.net, image_shape, config.z_dim, config.hidden_dim, cond_dim)
        # the standard normal N(0, I), kept as buffers so that it moves with the model's device
        self.register_buffer("z_loc", torch.zeros(config.z_dim))
        self.register_buffer("z_scale", torch.ones(config.z_dim))

    def condition(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """The condition vector the networks see: (batch, num_classes), or None for unconditional models.

        y: labels (batch,) int64, made one-hot; or condition vectors (batch, num_classes) given
        as they are (a blend of two classes, for instance, to morph one into the other).
        """
        if not self.conditional:
            return None
        if y is None:
            raise ValueError(f"{type(self).__name__} is conditional: pass the labels y")
        return condition_vectors(y, self.num_classes, self.z_loc.dtype)

    def prior(self, n: int, y: torch.Tensor | None = None):
        raise NotImplementedError

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None):
        raise NotImplementedError

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None):
        raise NotImplementedError

    # deterministic helpers: no Pyro sample sites, no param-store side effects

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The guide's mean code E_q[z]: x (batch, C, H, W) -> (batch, z_dim)."""
        return self.encoder(x, self.condition(y))[0]

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The likelihood's mean E[x|z]: z (batch, z_dim) -> (batch, C, H, W) in [0, 1]."""
        return self.likelihood(self.decoder(z, self.condition(y))).mean

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """Mean images of ``n`` codes drawn from the prior: (n, C, H, W)."""
        return self.decode(self.prior(n, y).sample(), y)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decode the guide's mean code of each image: (batch, C, H, W) -> same shape."""
        return self.decode(self.encode(x, y), y)
