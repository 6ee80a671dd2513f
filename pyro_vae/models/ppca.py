"""Probabilistic PCA (Tipping and Bishop, 1999): a latent-variable model with an exact answer.

    p(z)   = Normal(0, I)                           z: (batch, z_dim)
    p(x|z) = Normal(W z + mu, sigma^2 I)            x: (batch, data_dim)
    q(z|x) = MultivariateNormal(A x + b, L L^T)     amortized, linear, full covariance
             or a family of guides.py on a linear head (``guide="diagonal" | "full-rank" | "iaf"``)

Everything a VAE only estimates is known here in closed form:

    p(x)   = Normal(mu, W W^T + sigma^2 I)
    p(z|x) = Normal(M^-1 W^T (x - mu), sigma^2 M^-1),   M = W^T W + sigma^2 I

so the ELBO, the importance-weighted bound and their gaps can be checked against the truth:
``log_likelihood``, ``posterior`` and ``elbo`` (the guide's ELBO without sampling) compute them.
The guide's family contains the exact posterior (which is linear in x with a covariance that is
the same for every x), so a well-trained guide closes the gap entirely. The same is true of the
``full-rank`` family of guides.py (its head is linear in x here); the ``diagonal`` one cannot
close it where p(z|x) is correlated (rotate W: the likelihood stays, the posterior turns), which
makes PPCA the exact check of a variational family. Not an image model: it is for tests,
teaching (notebooks/01) and checking new estimators.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn as nn

from ..build import build
from ..guides import GUIDES


class PPCA(nn.Module):
    conditional = False
    generative = True

    def __init__(self, data_dim: int, z_dim: int, guide: str | None = None, flow_steps: int = 2):
        """guide: None for the linear full-covariance guide below, or the name of a family in
        guides.GUIDES, fed x itself (its head is then a linear map of x); flow_steps: for ``iaf``."""
        super().__init__()
        self.data_dim, self.z_dim = data_dim, z_dim
        # the generative model's parameters (fit them with ``fit`` or learn them by SVI)
        self.W = nn.Parameter(torch.randn(data_dim, z_dim) / data_dim**0.5)
        self.mu = nn.Parameter(torch.zeros(data_dim))
        self.log_sigma = nn.Parameter(torch.zeros(()))
        # the guide's parameters: q(z|x) = N(A x + b, L L^T), L lower-triangular with a positive diagonal
        self.A = nn.Parameter(torch.zeros(z_dim, data_dim))
        self.b = nn.Parameter(torch.zeros(z_dim))
        self.L_raw = nn.Parameter(torch.zeros(z_dim, z_dim))
        if guide is not None and guide not in GUIDES:
            raise ValueError(f"unknown guide {guide!r}; choose one of: {', '.join(GUIDES)}")
        self.family = None if guide is None else build("guide", GUIDES[guide], data_dim, z_dim, steps=flow_steps)
        self.head = None if guide is None else self.family.head()

    @property
    def sigma(self) -> torch.Tensor:
        return self.log_sigma.exp()

    @property
    def L(self) -> torch.Tensor:
        return self.L_raw.tril(-1) + torch.diag(self.L_raw.diagonal().exp())

    def prior(self, n: int, y=None):
        return dist.Normal(self.W.new_zeros(self.z_dim), 1.0).expand([n, self.z_dim]).to_event(1)

    def model(self, x, y=None):
        """x: (batch, data_dim)."""
        pyro.module("ppca", self)  # registers the weights with Pyro (JitTrace_ELBO reads them from there)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.prior(x.shape[0]))  # z ~ p(z)
            pyro.sample("x", dist.Normal(z @ self.W.T + self.mu, self.sigma).to_event(1), obs=x)  # x ~ p(x|z)

    def guide(self, x, y=None):
        pyro.module("ppca", self)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", self.variational(x))  # z ~ q(z|x)

    def variational(self, x: torch.Tensor) -> dist.Distribution:
        """The guide's q(z|x) = Normal(A x + b, L L^T) of each row (or the named family's): batch (batch,),
        event (z_dim,)."""
        if self.family is not None:
            return self.family(self.head(x))
        return dist.MultivariateNormal(x @ self.A.T + self.b, scale_tril=self.L)

    def guide_parameters(self) -> list[nn.Parameter]:
        """The guide's weights alone (to train q(z|x) with the model held fixed)."""
        if self.family is not None:
            return [*self.head.parameters(), *self.family.parameters()]
        return [self.A, self.b, self.L_raw]

    # the closed forms

    def marginal(self) -> dist.MultivariateNormal:
        """p(x) = Normal(mu, W W^T + sigma^2 I), event (data_dim,)."""
        covariance = self.W @ self.W.T + self.sigma**2 * torch.eye(self.data_dim, device=self.W.device)
        return dist.MultivariateNormal(self.mu, covariance_matrix=covariance)

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) of each row: (batch,), in nats."""
        return self.marginal().log_prob(x)

    def posterior(self, x: torch.Tensor) -> dist.MultivariateNormal:
        """The exact p(z|x) = Normal(M^-1 W^T (x - mu), sigma^2 M^-1) of each row: batch (batch,), event (z_dim,)."""
        M = self.W.T @ self.W + self.sigma**2 * torch.eye(self.z_dim, device=self.W.device)
        M_inv = torch.linalg.inv(M)
        return dist.MultivariateNormal((x - self.mu) @ (M_inv @ self.W.T).T, covariance_matrix=self.sigma**2 * M_inv)

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """The guide's ELBO of each row in closed form, no sampling: (batch,) nats, differentiable.

        With q(z|x) = Normal(m, S), S = L L^T:

            E_q[log p(x|z)] = -D/2 log(2 pi sigma^2) - (|x - W m - mu|^2 + tr(W S W^T)) / (2 sigma^2)
            KL(q || p(z))   = (tr S + |m|^2 - z_dim - log det S) / 2

        It equals log p(x) - KL(q(z|x) || p(z|x)), so it reaches log p(x) at the exact posterior.
        For the linear guide only (a family of guides.py is measured by sampling: evaluate.mean_elbo).
        """
        if self.family is not None:
            raise ValueError(
                "the closed-form ELBO is that of the linear guide; estimate this guide's with evaluate.mean_elbo"
            )
        m, L, sigma2 = x @ self.A.T + self.b, self.L, self.sigma**2
        residual = (x - m @ self.W.T - self.mu).pow(2).sum(-1)
        trace = (self.W @ L).pow(2).sum()  # tr(W S W^T)
        expected_log_lik = -0.5 * self.data_dim * torch.log(2 * torch.pi * sigma2) - (residual + trace) / (2 * sigma2)
        kl = 0.5 * (L.pow(2).sum() + m.pow(2).sum(-1) - self.z_dim - 2 * L.diagonal().log().sum())
        return expected_log_lik - kl

    @torch.no_grad()
    def set_exact_posterior(self) -> "PPCA":
        """Set the guide to the true posterior p(z|x); its ELBO then equals log p(x) for every x."""
        M = self.W.T @ self.W + self.sigma**2 * torch.eye(self.z_dim, device=self.W.device)
        M_inv = torch.linalg.inv(M)
        self.A.copy_(M_inv @ self.W.T)
        self.b.copy_(-(M_inv @ self.W.T @ self.mu))
        L = torch.linalg.cholesky(self.sigma**2 * M_inv)
        self.L_raw.copy_(L.tril(-1) + torch.diag(L.diagonal().log()))
        return self

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> "PPCA":
        """Set W, mu and sigma to their maximum-likelihood values for the rows of x (closed form).

        sigma^2 is the mean of the covariance's discarded eigenvalues, and W spans the leading
        eigenvectors, scaled by sqrt(eigenvalue - sigma^2) (Tipping and Bishop, 1999, eq. 7-8).
        """
        mu = x.mean(0)
        eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov((x - mu).T))  # ascending order
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
        sigma2 = eigenvalues[self.z_dim :].mean()
        self.W.copy_(eigenvectors[:, : self.z_dim] * (eigenvalues[: self.z_dim] - sigma2).clamp_min(0).sqrt())
        self.mu.copy_(mu)
        self.log_sigma.copy_(0.5 * sigma2.log())
        return self

    def encode(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """The guide's mean code: (batch, data_dim) -> (batch, z_dim)."""
        if self.family is not None:
            return self.family.code(self.head(x))
        return x @ self.A.T + self.b
