"""The variational autoencoder (Kingma and Welling, 2014).

    p(z)   = prior                             Normal(0, I) by default; any of priors.py (--prior)
    p(x|z) = Bernoulli(logits = decoder(z))    likelihood (or Normal/Laplace(decoder(z), sigma),
                                               see likelihoods.py)
    q(z|x) = family(encoder(x))                amortized guide: a diagonal Gaussian by default; any of
                                               guides.py (--guide)

Training maximizes the ELBO  E_q[log p(x|z)] - KL(q(z|x) || p(z)).
"""

from __future__ import annotations

import pyro

from .base import LatentVariableModel


class VAE(LatentVariableModel):
    parts = ("prior", "guide")

    def model(self, x, y=None):
        """x: (batch, C, H, W). The label y is ignored: the VAE does not condition on it."""
        pyro.module("decoder", self.decoder)
        pyro.module("likelihood", self.likelihood)  # the noise scale of a Gaussian; nothing for a Bernoulli
        pyro.module("prior", self.p_z)  # a learned prior's weights; nothing for N(0, I)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.prior(x.shape[0]))  # z ~ p(z)
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)  # x ~ p(x|z)

    def guide(self, x, y=None):
        pyro.module("encoder", self.encoder)
        pyro.module("guide", self.q_z)  # a flow's steps; nothing for a Gaussian
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", self.q_z(self.encoder(x)))  # z ~ q(z|x)
