"""A prior and a variational family of your own, as parts: heavy tails on both sides of the ELBO.

    p(z)   = prod_d StudentT(z_d; nu, 0, 1)       nu learned (--prior examples/heavy_tails.py:StudentT)
    q(z|x) = prod_d Laplace(z_d; loc(x), b(x))    (--guide examples/heavy_tails.py:Laplace)

Each is one small class that any model taking parts (vae, cvae, hvae) combines with any other:

    python cli.py train --model vae --prior examples/heavy_tails.py:StudentT --guide examples/heavy_tails.py:Laplace

A prior is built as ``Class(z_dim, **options)`` and called as ``prior(n, c)``; a family is built as
``Class(in_dim, z_dim, **options)``, makes the encoder's last layer with ``head()``, and turns
that layer's output into q(z|x) (``forward``) and into one code per image (``code``). See
pyro_vae/contract.py.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
import torch.nn as nn
import torch.nn.functional as F

from pyro_vae.networks import GaussianHead


class StudentT(nn.Module):
    """p(z) = prod_d StudentT(nu, 0, 1): N(0, I) as nu grows, heavier tails below; nu = 2 + softplus(raw) > 2."""

    def __init__(self, z_dim: int):
        super().__init__()
        self.z_dim = z_dim
        self.raw_df = nn.Parameter(torch.tensor(3.0))  # nu starts near 5

    @property
    def df(self) -> torch.Tensor:
        return 2 + F.softplus(self.raw_df)

    def forward(self, n: int, c=None) -> dist.Distribution:
        zero = self.raw_df.new_zeros(())
        return dist.StudentT(self.df, zero, zero + 1).expand([n, self.z_dim]).to_event(1)


class Laplace(nn.Module):
    """q(z|x) = prod_d Laplace(loc_d, b_d): the encoder's two heads read as a location and a scale."""

    def __init__(self, in_dim: int, z_dim: int):
        super().__init__()
        self.in_dim, self.z_dim = in_dim, z_dim

    def head(self) -> nn.Module:
        return GaussianHead(self.in_dim, self.z_dim)  # features -> (loc, b), b > 0

    def forward(self, params) -> dist.Distribution:
        loc, b = params
        return dist.Laplace(loc, b).to_event(1)

    def code(self, params) -> torch.Tensor:
        return params[0]  # its mean
