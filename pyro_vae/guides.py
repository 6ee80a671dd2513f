"""Variational families q(z|x): how the encoder's output becomes the guide's distribution over z.

    diagonal    q(z|x) = Normal(loc, diag(scale^2))                 one scale per dimension
    full-rank   q(z|x) = Normal(loc, L L^T)                         L lower-triangular, learned per image
    iaf         z = f_T(...f_1(z0; h)...; h),  z0 ~ Normal(loc, diag(scale^2))
                inverse autoregressive flow steps conditioned on the encoder's features h (Kingma et al., 2016)

A family is split in two. Its ``head`` is the encoder's last layer: features (batch..., in_dim) ->
the family's parameters (a tuple). The family itself, called on those parameters, returns the
distribution: batch (batch...,), event (z_dim,). The head lives inside the encoder, so that
``encoder(x)`` gives the parameters as it always has ((loc, scale) for the diagonal family) and
a checkpoint's encoder holds all of the amortization; what else a family learns (the IAF's
steps) it holds itself.

A family is built as ``Class(in_dim, z_dim, **options)`` with the options it names in its
signature (``steps``: --flow-steps). A new one is one class and one line in ``GUIDES`` (and, if
its parameters are not a Gaussian's (loc, scale), the head class that makes them), or the user's
own class named as ``--guide path/to/file.py:Class``.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
import torch.nn as nn
from pyro.distributions.transforms import ConditionalAffineAutoregressive
from pyro.nn import ConditionalAutoRegressiveNN

from .networks import GaussianHead, full_precision


class Diagonal(nn.Module):
    """q(z|x) = Normal(loc, diag(scale^2)): the mean-field Gaussian of the textbook VAE."""

    def __init__(self, in_dim: int, z_dim: int):
        super().__init__()
        self.in_dim, self.z_dim = in_dim, z_dim

    def head(self) -> nn.Module:
        """features (batch, in_dim) -> (loc, scale), each (batch, z_dim)."""
        return GaussianHead(self.in_dim, self.z_dim)

    def forward(self, params) -> dist.Distribution:
        """The head's output -> q(z|x): batch (batch...,), event (z_dim,)."""
        loc, scale = params
        return dist.Normal(loc, scale).to_event(1)

    def code(self, params) -> torch.Tensor:
        """The point that stands for an image's q(z|x): its mean, (batch, z_dim)."""
        return params[0]


class FullRankHead(GaussianHead):
    """features -> (loc, scale_tril): a Gaussian's mean and the Cholesky factor of its covariance.

    scale_tril = (I + N) diag(scale): the diagonal is the diagonal head's positive scale, and the
    strictly lower N, one more linear map, says how dimension j leans on the dimensions before it
    in units of their own scale. In those units a small error in N is a small error in the
    correlations, whatever the scales (an additive lower part could swamp a small scale). N
    starts at zero, so training starts from the diagonal Gaussian.
    """

    def __init__(self, in_dim: int, z_dim: int):
        super().__init__(in_dim, z_dim)
        self.lower = nn.Linear(in_dim, z_dim * (z_dim - 1) // 2)
        nn.init.zeros_(self.lower.weight)
        nn.init.zeros_(self.lower.bias)
        rows, cols = torch.tril_indices(z_dim, z_dim, -1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def forward(self, h):
        """h: (batch, in_dim) -> loc (batch, z_dim), scale_tril (batch, z_dim, z_dim)."""
        loc, scale = super().forward(h)
        unit = torch.eye(loc.shape[-1], device=loc.device, dtype=loc.dtype).expand(*loc.shape, loc.shape[-1]).clone()
        unit[..., self.rows, self.cols] = full_precision(self.lower(h))
        return loc, unit * scale.unsqueeze(-2)  # column j times scale_j


class FullRank(Diagonal):
    """q(z|x) = Normal(loc, L L^T): correlations between dimensions, as in a true posterior (PPCA's, for one)."""

    def head(self) -> nn.Module:
        return FullRankHead(self.in_dim, self.z_dim)

    def forward(self, params) -> dist.Distribution:
        loc, scale_tril = params
        return dist.MultivariateNormal(loc, scale_tril=scale_tril)


class IAFHead(GaussianHead):
    """features h (batch, in_dim) -> (loc, scale, h): the base Gaussian's (batch, z_dim) each, and h as the
    flow's context."""

    def forward(self, h):
        return (*super().forward(h), full_precision(h))


class IAF(Diagonal):
    """The diagonal Gaussian followed by ``steps`` inverse autoregressive flow steps (Kingma et al., 2016).

    Each step is z <- sigma * z + (1 - sigma) * m with (m, logit sigma) from a masked autoregressive
    network of z and the context h (the "numerically stable" form of the paper). Dimension i of
    the output depends on dimensions < i of the input, so the Jacobian is triangular and
    log q(z|x) = log N(z0; loc, scale) - sum over steps of sum_i log sigma_i: a sample and its
    density come in one parallel pass. Each step orders the dimensions at random (fixed at build
    time, saved with the weights), so that together the steps mix all dimensions.
    """

    def __init__(self, in_dim: int, z_dim: int, steps: int = 2):
        super().__init__(in_dim, z_dim)
        width = max(in_dim, 2 * z_dim)  # a MADE layer needs at least z_dim - 1 units to reach every dimension
        self.steps = nn.ModuleList(
            ConditionalAffineAutoregressive(ConditionalAutoRegressiveNN(z_dim, in_dim, [width]), stable=True)
            for _ in range(steps)
        )

    def head(self) -> nn.Module:
        return IAFHead(self.in_dim, self.z_dim)

    def forward(self, params) -> dist.Distribution:
        loc, scale, h = params
        return dist.TransformedDistribution(
            dist.Normal(loc, scale).to_event(1), [step.condition(h) for step in self.steps]
        )

    def code(self, params) -> torch.Tensor:
        """The flow at zero noise: z0 = loc carried through every step. (Its mean has no closed form.)"""
        loc, _, h = params
        z = loc
        for step in self.steps:
            z = step.condition(h)(z)
        return z


GUIDES = {"diagonal": Diagonal, "full-rank": FullRank, "iaf": IAF}
