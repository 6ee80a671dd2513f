"""A CVAE for structured output: complete an image from the part of it that is visible.

As in Sohn, Lee and Yan (2015): the condition is the visible part x_v of an image (some of its
quadrants), the output is the hidden part x_h, and z holds what the visible part leaves open
(a 1 or a 7, a loop closed or not), so that drawing several z gives several plausible completions.

    p(z | x_v)       = Normal(prior_net(x_v filled with the baseline's guess))   prior
    p(x_h | z, x_v)  = Bernoulli(logits = decoder(z, x_v) at the hidden pixels)  likelihood
    q(z | x_v, x_h)  = Normal(encoder(x))                                        guide: sees the whole image

The baseline is a deterministic network trained first to guess the hidden pixels; its guess gives
the prior network a head start (Sohn et al.'s "baseline initialization"), and it is frozen here.
Only the hidden pixels are observed, so log p(x_h | x_v), estimated by evaluate.py's importance
sampler, is the negative conditional log-likelihood of the completion.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn as nn

from ..likelihoods import BernoulliImage
from ..networks import CompletionNet, MLPDecoder, MLPEncoder

HIDDEN = -1.0  # the value hidden pixels take in the network inputs


class CompletionCVAE(nn.Module):
    conditional = False  # the condition is part of x itself, not a label
    generative = True

    def __init__(self, visible: torch.Tensor, baseline: CompletionNet, z_dim: int = 50, hidden_dim: int = 500):
        """visible: (C, H, W) bool, True at the pixels the model is shown."""
        super().__init__()
        self.image_shape, self.z_dim = tuple(visible.shape), z_dim
        self.register_buffer("visible", visible)
        self.register_buffer("hidden_index", (~visible).flatten().nonzero().squeeze(1))
        self.baseline = baseline.requires_grad_(False)
        n = visible.numel()
        self.prior_net = MLPEncoder(self.image_shape, z_dim, hidden_dim)
        self.encoder = MLPEncoder(self.image_shape, z_dim, hidden_dim)
        self.decoder = MLPDecoder(self.image_shape, z_dim, hidden_dim, cond_dim=n)

    def visible_part(self, x: torch.Tensor) -> torch.Tensor:
        """x (batch, C, H, W) -> the same with the hidden pixels set to -1."""
        return x.masked_fill(~self.visible, HIDDEN)

    def hidden_part(self, x: torch.Tensor) -> torch.Tensor:
        """x (batch, C, H, W) -> its hidden pixels, (batch, n_hidden)."""
        return x.flatten(-3)[..., self.hidden_index]

    def prior(self, x_v: torch.Tensor):
        """p(z | x_v), batch (batch,), event (z_dim,)."""
        guess = torch.where(self.visible, x_v, torch.sigmoid(self.baseline(x_v)))
        loc, scale = self.prior_net(guess)
        return dist.Normal(loc, scale).to_event(1)

    def likelihood(self, z: torch.Tensor, x_v: torch.Tensor):
        """p(x_h | z, x_v): independent Bernoulli hidden pixels, event (n_hidden,)."""
        logits = self.decoder(z, x_v.flatten(1))
        return BernoulliImage(self.hidden_part(logits), event_dim=1, validate_args=False)

    def model(self, x, y=None):
        """x: (batch, C, H, W), the whole image; only its hidden part is observed. y is unused."""
        pyro.module("prior_net", self.prior_net)
        pyro.module("decoder", self.decoder)
        x_v = self.visible_part(x)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.prior(x_v))  # z ~ p(z | x_v)
            pyro.sample("x_hidden", self.likelihood(z, x_v), obs=self.hidden_part(x))  # x_h ~ p(x_h | z, x_v)

    def guide(self, x, y=None):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encoder(x)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))  # z ~ q(z | x_v, x_h)

    def encode(self, x: torch.Tensor, y=None) -> torch.Tensor:
        return self.encoder(x)[0]

    @torch.no_grad()
    def complete(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` completions of each image from its visible part: (n, batch, C, H, W).

        Visible pixels are kept; hidden ones are the likelihood's means for z ~ p(z | x_v).
        """
        x_v = self.visible_part(x)
        z = self.prior(x_v).sample((n,))  # (n, batch, z_dim)
        means = torch.sigmoid(self.decoder(z, x_v.flatten(1)))
        return torch.where(self.visible, x, means)
