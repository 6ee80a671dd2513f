"""The conditional variational autoencoder (Sohn, Lee and Yan, 2015), conditioned on a class label y.

    p(z|y)   = Normal(0, I)  or  Normal(prior_net(y))   prior (--prior standard | conditional)
    p(x|z,y) = Bernoulli(logits = decoder(z, y))         likelihood (or Normal/Laplace(decoder(z, y), sigma))
    q(z|x,y) = Normal(encoder(x, y))                     amortized guide

Because the decoder sees y, z is free to carry only what y does not say (the style of the
digit), and sampling with a chosen y generates that class.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist

from ..networks import PriorNet
from .base import LatentVariableModel


class CVAE(LatentVariableModel):
    conditional = True

    def __init__(self, config, image_shape, num_classes):
        super().__init__(config, image_shape, num_classes)
        self.prior_net = PriorNet(num_classes, config.z_dim) if config.prior == "conditional" else None

    def prior(self, n, y=None):
        if self.prior_net is None:
            return dist.Normal(self.z_loc, self.z_scale).expand([n, self.z_dim]).to_event(1)
        loc, scale = self.prior_net(self.condition(y))
        return dist.Normal(loc, scale).to_event(1)

    def model(self, x, y):
        """x: (batch, C, H, W); y: (batch,) int64 labels."""
        pyro.module("decoder", self.decoder)
        pyro.module("likelihood", self.likelihood)  # the noise scale of a Gaussian; nothing for a Bernoulli
        if self.prior_net is not None:
            pyro.module("prior_net", self.prior_net)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.prior(x.shape[0], y))  # z ~ p(z|y)
            pyro.sample("x", self.likelihood(self.decoder(z, self.condition(y))), obs=x)  # x ~ p(x|z,y)

    def guide(self, x, y):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encoder(x, self.condition(y))
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))  # z ~ q(z|x,y)
