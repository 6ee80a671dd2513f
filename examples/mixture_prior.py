"""A user's own parts, outside the package: a VAE with a learned mixture prior, and a discretized
logistic likelihood. Nothing here is registered anywhere; the command line names the classes:

    python cli.py train --model examples/mixture_prior.py:MixturePriorVAE --z-dim 2
    python cli.py train --model vae --likelihood examples/mixture_prior.py:DiscretizedLogistic --binarize none

and every other command (sample, evaluate, plot-latent, train --resume, compare) imports them
again from this file when it opens the run. What a model must offer is in pyro_vae/contract.py;
subclassing LatentVariableModel gives the networks, the likelihood and the helpers, so only the
three methods of the math are left to write. There is no KL weight here: --beta and --kl-warmup
are applied by the trainer from outside, to any model.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import constraints

from pyro_vae.models import LatentVariableModel


class MixturePriorVAE(LatentVariableModel):
    """A VAE whose prior is a learned mixture of K diagonal Gaussians:

        p(z)   = sum_k pi_k Normal(z; m_k, diag s_k^2),  pi = softmax(alpha)   prior, learned
        p(x|z) = likelihood(decoder(z))                                         (Bernoulli pixels by default)
        q(z|x) = Normal(encoder(x))                                             amortized guide

    KL(q(z|x) || p(z)) has no closed form any more; Trace_ELBO estimates it from the sampled z.
    """

    components = 10  # K

    def __init__(self, config, image_shape, num_classes):
        super().__init__(config, image_shape, num_classes)
        self.mixture = MixtureOfGaussians(self.components, config.z_dim)

    def prior(self, n, y=None):
        return self.mixture(n)

    def model(self, x, y=None):
        """x: (batch, C, H, W); the label y is ignored."""
        pyro.module("decoder", self.decoder)
        pyro.module("likelihood", self.likelihood)
        pyro.module("mixture", self.mixture)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.prior(x.shape[0]))  # z ~ p(z)
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)  # x ~ p(x|z)

    def guide(self, x, y=None):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encoder(x)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))  # z ~ q(z|x)


class MixtureOfGaussians(nn.Module):
    """K learned Gaussians over z: weights softmax(alpha) (K,), means (K, z_dim), scales (K, z_dim)."""

    def __init__(self, components: int, z_dim: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(components))  # equal weights to start
        self.locs = nn.Parameter(torch.randn(components, z_dim))  # spread out, so that the components can differ
        self.log_scales = nn.Parameter(torch.zeros(components, z_dim))

    def forward(self, n: int) -> dist.Distribution:
        """p(z) for n codes: batch (n,), event (z_dim,)."""
        weights = dist.Categorical(logits=self.logits)
        components = dist.Normal(self.locs, self.log_scales.exp()).to_event(1)
        return dist.MixtureSameFamily(weights, components).expand([n])


class DiscretizedLogistic(nn.Module):
    """Grey levels v in {0, 1/255, ..., 1} with the mass a logistic(mu, s) puts on each level's bin
    (Salimans et al., 2017; the end bins stretched to -inf and +inf): a probability of the stored
    8-bit image, where a Gaussian is only a density. mu is the decoder's output; one scale s, learned.
    Use it on grey images: --binarize none.
    """

    discrete = True  # a probability of each pixel value: bits per dimension charge no level width

    def __init__(self, image_shape=None):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(-3.0))

    def forward(self, loc: torch.Tensor) -> dist.Distribution:
        """loc: (batch, C, H, W) -> the distribution of whole images (event (C, H, W))."""
        return DiscretizedLogisticImage(loc, self.log_scale.exp())


class DiscretizedLogisticImage(dist.TorchDistribution):
    """Independent discretized-logistic pixels; one event is one image (C, H, W)."""

    arg_constraints = {}
    support = constraints.independent(constraints.unit_interval, 3)
    HALF_BIN = 0.5 / 255

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor):
        self.loc, self.scale = loc, scale
        super().__init__(loc.shape[:-3], loc.shape[-3:], validate_args=False)

    @property
    def mean(self) -> torch.Tensor:  # what decode shows: the logistic's centre, kept in range
        return self.loc.clamp(0, 1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., C, H, W) grey levels in [0, 1] -> (...,), log P(x) of each image."""
        h = self.HALF_BIN
        upper, lower = (x + h - self.loc) / self.scale, (x - h - self.loc) / self.scale
        # sigmoid(u) - sigmoid(l) = sigmoid(u) sigmoid(-l) (1 - exp(-(u - l))), in log space
        inside = -F.softplus(-upper) - F.softplus(lower) + torch.log(-torch.expm1(-2 * h / self.scale))
        log_p = torch.where(x < h, -F.softplus(-upper), torch.where(x > 1 - h, -F.softplus(lower), inside))
        return log_p.flatten(-3).sum(-1)
