"""A VAE with two stochastic layers (Burda, Grosse and Salakhutdinov, 2016, section 5).

    p(z2)    = prior                              Normal(0, I) by default; mixture or flow (--prior)
    p(z1|z2) = Normal(top_down(z2))               a diagonal Gaussian from a one-hidden-layer network
    p(x|z1)  = Bernoulli(logits = decoder(z1))    likelihood, as in the VAE
    q(z1|x)  = family(encoder(x))                 amortized guide (a diagonal Gaussian by default, --guide)
    q(z2|z1) = Normal(bottom_up(z1))              a diagonal Gaussian

The ELBO is E_q[log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1)]. The top
layer has --z-dim dimensions and the bottom one twice as many (Burda et al.'s 50 and 100); the
networks between the two layers are half as wide as the encoder's hidden layer (their 100 beside
200), with as many hidden layers as the encoder (bottom up) and the decoder (top down). The
latent-space tools see z2: ``encode`` gives its code and ``decode`` takes it.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from ..networks import GaussianMLP
from .base import LatentVariableModel


class HVAE(LatentVariableModel):
    parts = ("prior", "guide")
    stochastic_layers = 2
    # q(z2|z1) reads z1's draw, so KL terms cannot be taken one site at a time (--elbo meanfield)
    mean_field = False

    def __init__(self, config, image_shape, num_classes):
        super().__init__(config, image_shape, num_classes, code_dim=2 * config.z_dim)
        z1_dim, z2_dim, width = 2 * config.z_dim, config.z_dim, max(config.hidden_dim // 2, 1)
        # as deep as the decoder and the encoder, with their nonlinearity (Burda et al.: two tanh layers each)
        self.top_down = GaussianMLP(z2_dim, width, z1_dim, config.decoder_layers, config.activation)  # z2 -> p(z1|z2)
        self.bottom_up = GaussianMLP(z1_dim, width, z2_dim, config.encoder_layers, config.activation)  # z1 -> q(z2|z1)

    def model(self, x, y=None):
        """x: (batch, C, H, W). The label y is ignored."""
        pyro.module("decoder", self.decoder)
        pyro.module("top_down", self.top_down)
        pyro.module("likelihood", self.likelihood)
        pyro.module("prior", self.p_z)
        with pyro.plate("data", x.shape[0]):
            z2 = pyro.sample("z2", self.prior(x.shape[0]))  # z2 ~ p(z2)
            z1 = pyro.sample("z1", dist.Normal(*self.top_down(z2)).to_event(1))  # z1 ~ p(z1|z2)
            pyro.sample("x", self.likelihood(self.decoder(z1)), obs=x)  # x ~ p(x|z1)

    def guide(self, x, y=None):
        pyro.module("encoder", self.encoder)
        pyro.module("bottom_up", self.bottom_up)
        pyro.module("guide", self.q_z)
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", self.q_z(self.encoder(x)))  # z1 ~ q(z1|x)
            pyro.sample("z2", dist.Normal(*self.bottom_up(z1)).to_event(1))  # z2 ~ q(z2|z1)

    # the tools' view: codes are z2, the top layer

    def encode(self, x, y=None):
        """E[z2] under q(z2|z1) at the code of q(z1|x): (batch, C, H, W) -> (batch, z_dim)."""
        return self.bottom_up(self.q_z.code(self.encoder(x)))[0]

    def decode(self, z2, y=None):
        """The image decoded from the mean of p(z1|z2): (batch, z_dim) -> (batch, C, H, W)."""
        return self.likelihood(self.decoder(self.top_down(z2)[0])).mean

    @torch.no_grad()
    def reconstruct(self, x, y=None):
        """Decoded from the bottom layer's code, the one the decoder reads: (batch, C, H, W) -> same shape."""
        return self.likelihood(self.decoder(self.q_z.code(self.encoder(x)))).mean
