"""The deterministic autoencoder, written as a Pyro program so that it trains with the same SVI loop.

    p(z)   = flat (improper): no prior at all            log p(z) = 0
    p(x|z) = Bernoulli(logits = decoder(z))
    q(z|x) = Delta(encoder(x))                          a point mass: the code is deterministic

With a point-mass guide and a flat prior the ELBO is just log p(x | z = encoder(x)): the
reconstruction loss of a plain autoencoder. The baseline the VAE is measured against.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
from torch.distributions import constraints

from ..errors import UserError
from .base import LatentVariableModel


class AE(LatentVariableModel):
    generative = False

    def prior(self, n, y=None):
        return dist.ImproperUniform(constraints.real, batch_shape=(n,), event_shape=(self.z_dim,))

    def model(self, x, y=None):
        pyro.module("decoder", self.decoder)
        pyro.module("likelihood", self.likelihood)  # the noise scale of a Gaussian; nothing for a Bernoulli
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.prior(x.shape[0]))  # no prior: log p(z) = 0
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)  # x ~ p(x|z)

    def guide(self, x, y=None):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            loc, _ = self.encoder(x)  # the scale head is unused: the code is a point
            pyro.sample("z", dist.Delta(loc).to_event(1))  # z = encoder(x)

    def sample(self, n, y=None):
        raise UserError(
            "the autoencoder has no prior to sample from; use `reconstruct`, or train --model vae to sample"
        )
