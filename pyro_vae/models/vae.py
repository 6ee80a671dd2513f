"""The variational autoencoder (Kingma and Welling, 2014).

    p(z)   = Normal(0, I)                      prior
    p(x|z) = Bernoulli(logits = decoder(z))    likelihood (or Normal/Laplace(decoder(z), sigma), see likelihoods.py)
    q(z|x) = Normal(encoder(x))                amortized guide

Training maximizes the ELBO  E_q[log p(x|z)] - KL(q(z|x) || p(z)).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist

from .base import LatentVariableModel


class VAE(LatentVariableModel):
    def prior(self, n, y=None):
        return dist.Normal(self.z_loc, self.z_scale).expand([n, self.z_dim]).to_event(1)

    def model(self, x, y=None):
        """x: (batch, C, H, W). The label y is ignored: the VAE does not condition on it."""
        pyro.module("decoder", self.decoder)
        pyro.module("likelihood", self.likelihood)  # the noise scale of a Gaussian; nothing for a Bernoulli
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.prior(x.shape[0]))  # z ~ p(z)
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)  # x ~ p(x|z)

    def guide(self, x, y=None):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encoder(x)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))  # z ~ q(z|x)
