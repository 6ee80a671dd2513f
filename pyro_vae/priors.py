"""Priors p(z) and p(z|y): each a small module that, called as ``prior(n, c)``, gives the distribution of n codes.

    standard      p(z)   = Normal(0, I)
    conditional   p(z|y) = Normal(prior_net(y))                          conditional models only
    mixture       p(z)   = sum_k pi_k Normal(mu_k, diag(sigma_k^2))      K learned Gaussians
    vamp          p(z)   = (1/K) sum_k q(z|u_k)                          the guide at K learned pseudo-inputs u_k
                                                                         (VampPrior, Tomczak and Welling, 2018)
    flow          p(z)   = Normal(0, I) pushed through learned autoregressive flow steps

The returned distribution has batch (n,) and event (z_dim,); c is the condition vectors
(n, num_classes) of a conditional model, or None. A prior that ignores c is a p(z) shared by all
classes, which a CVAE may use too.

A prior is built as ``Class(z_dim, **options)`` with the options it names in its signature:
``components`` (--prior-components), ``steps`` (--flow-steps), ``cond_dim`` (the condition's
width) and ``model`` (the model it belongs to, for a prior made of the model's own guide). A new
prior is one class and one line in ``PRIORS``, or the user's own class named as
``--prior path/to/file.py:Class``.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn as nn
from pyro.distributions.transforms import AffineAutoregressive
from pyro.nn import AutoRegressiveNN
from torch.distributions import constraints

from .errors import UserError
from .guides import IAF
from .networks import PriorNet


class GaussianMixture(dist.TorchDistribution):
    """sum_k w_k Normal(loc_k, diag(scale_k^2)) over R^D, whose log-density is a few matrix products.

    The same distribution as ``MixtureSameFamily(Categorical(logits), Normal(loc, scale).to_event(1))``,
    whose ``log_prob`` builds tensors of (codes, K, D), and more of them once expanded to a batch: at
    K = 500 that was 9 of every 10 milliseconds of a VampPrior training step. Here the squared
    distances come from ||(z - mu_k) / sigma_k||^2 = z^2 . p_k - 2 z . (mu_k p_k) + mu_k^2 . p_k with
    p_k = sigma_k^-2, summed in float64: the three terms can be large and nearly cancel.

    logits: (K,); loc, scale: (K, D). Any batch shape (as a plate expands it) costs nothing.
    """

    arg_constraints = {}
    support = constraints.independent(constraints.real, 1)
    has_rsample = False

    def __init__(self, logits, loc, scale, batch_shape=(), validate_args=None):
        self.logits, self.loc, self.scale = logits, loc, scale
        super().__init__(torch.Size(batch_shape), loc.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return GaussianMixture(self.logits, self.loc, self.scale, batch_shape, validate_args=False)

    def log_prob(self, value):
        """value: (..., D) -> (...) nats."""
        z, loc, precision = value.double(), self.loc.double(), self.scale.double().pow(-2)
        squared = z.pow(2) @ precision.T - 2 * z @ (loc * precision).T + (loc.pow(2) * precision).sum(-1)  # (..., K)
        log_normal = -0.5 * squared - self.scale.double().log().sum(-1) - 0.5 * loc.shape[-1] * math.log(2 * math.pi)
        log_p = torch.logsumexp(log_normal + torch.log_softmax(self.logits.double(), -1), -1).to(value.dtype)
        return log_p.expand(torch.broadcast_shapes(log_p.shape, self.batch_shape))

    def sample(self, sample_shape=torch.Size()):
        with torch.no_grad():
            shape = self._extended_shape(sample_shape)[:-1]
            k = torch.distributions.Categorical(logits=self.logits).sample(shape)
            return self.loc[k] + self.scale[k] * torch.randn(*shape, self.loc.shape[-1], device=self.loc.device)

    @property
    def mean(self):
        return (torch.softmax(self.logits, -1) @ self.loc).expand(self._extended_shape())

    @property
    def variance(self):
        w = torch.softmax(self.logits, -1)
        second = w @ (self.scale.pow(2) + self.loc.pow(2))
        return (second - (w @ self.loc).pow(2)).expand(self._extended_shape())


def mixture(logits, components: dist.Distribution) -> dist.Distribution:
    """The mixture of ``components`` (batch (K,), event (D,)) weighted by softmax(logits): a
    :class:`GaussianMixture` when they are diagonal Gaussians, else torch's MixtureSameFamily."""
    base = components.base_dist if isinstance(components, dist.Independent) else None
    if isinstance(base, dist.Normal) and components.reinterpreted_batch_ndims == 1:
        return GaussianMixture(logits, base.loc, base.scale)
    return dist.MixtureSameFamily(dist.Categorical(logits=logits), components)


class Standard(nn.Module):
    """p(z) = Normal(0, I)."""

    def __init__(self, z_dim: int):
        super().__init__()
        # constants, not saved: they move with the model's device
        self.register_buffer("loc", torch.zeros(z_dim), persistent=False)
        self.register_buffer("scale", torch.ones(z_dim), persistent=False)

    def forward(self, n: int, c=None) -> dist.Distribution:
        """n codes -> batch (n,), event (z_dim,); c (condition vectors, or None) is ignored."""
        return dist.Normal(self.loc, self.scale).expand([n, len(self.loc)]).to_event(1)


class Conditional(nn.Module):
    """p(z|y) = Normal(prior_net(y)): each class its own Gaussian, learned."""

    conditional = True  # it depends on y (the other priors here are one p(z) for all classes)

    def __init__(self, z_dim: int, cond_dim: int):
        super().__init__()
        self.net = PriorNet(cond_dim, z_dim)

    def forward(self, n: int, c) -> dist.Distribution:
        """c: (n, cond_dim) condition vectors -> batch (n,), event (z_dim,)."""
        loc, scale = self.net(c)
        return dist.Normal(loc, scale).to_event(1)


class Mixture(nn.Module):
    """p(z) = sum_k pi_k Normal(mu_k, diag(sigma_k^2)): K Gaussians whose weights, means and scales are learned.

    The means start at random draws of N(0, I) and the scales at 1, so the prior starts as a spread
    of unit Gaussians about as wide as N(0, 2I); with one component at mean 0 it is exactly N(0, I).
    """

    def __init__(self, z_dim: int, components: int = 10):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(components))
        self.locs = nn.Parameter(torch.randn(components, z_dim))
        self.log_scales = nn.Parameter(torch.zeros(components, z_dim))

    def forward(self, n: int, c=None) -> dist.Distribution:
        return GaussianMixture(self.logits, self.locs, self.log_scales.exp()).expand([n])


class Vamp(nn.Module):
    """The VampPrior: p(z) = (1/K) sum_k q(z|u_k), the model's own guide at K learned pseudo-inputs.

    The pseudo-inputs u_k are images, (K, C, H, W), with pixel values sigmoid(logits) in (0, 1);
    they start near 0.05 as in Tomczak and Welling's code. The aggregate posterior
    (1/N) sum_n q(z|x_n) is the prior that maximizes the ELBO; the VampPrior is its learned, K-point
    summary, and shares the encoder, so the prior moves with what the guide learns. The model is
    held as a plain reference (not a submodule): its encoder and guide are saved once, as its own.
    """

    def __init__(self, z_dim: int, components: int = 500, model=None):
        super().__init__()
        if model is None:
            raise ValueError("the VampPrior is made of a model's encoder and guide: pass model=")
        self.check_combination(type(model), type(model.q_z))
        if getattr(model.q_z, "z_dim", z_dim) != z_dim:  # a user's model whose guide's codes are not the prior's
            raise UserError(
                f"--prior vamp needs a guide of the prior's {z_dim} dimensions that reads the image; "
                f"{type(model).__name__}'s gives {model.q_z.z_dim}: use --prior mixture or flow with it"
            )
        start = (0.05 + 0.01 * torch.randn(components, *model.image_shape)).clamp(1e-3, 1 - 1e-3)
        self.pseudo_logits = nn.Parameter(torch.logit(start))
        object.__setattr__(self, "model", model)

    @staticmethod
    def check_combination(model: type, guide: type) -> None:
        """Refuse, before anything is built, a model or guide the VampPrior cannot be made of: its
        guide must read an image alone and give the density of z at any point cheaply."""
        name = model.__name__
        if model.conditional:
            raise UserError(
                f"--prior vamp is the guide at pseudo-inputs, and the {name}'s guide needs a label as well; "
                "use --prior mixture or flow (or conditional) with a conditional model"
            )
        if getattr(model, "stochastic_layers", 1) > 1:
            raise UserError(
                f"--prior vamp needs the guide of the top latent layer to read the image, and the {name}'s reads "
                "another latent layer; use --prior mixture or flow with it, or vamp with --model vae"
            )
        if issubclass(guide, IAF):
            raise UserError(
                "--prior vamp with --guide iaf would invert the flow at every pseudo-input on every step "
                "(z_dim passes each); use --guide diagonal or full-rank with vamp"
            )

    def pseudo_inputs(self) -> torch.Tensor:
        """The K pseudo-inputs as images: (K, C, H, W)."""
        return torch.sigmoid(self.pseudo_logits)

    def forward(self, n: int, c=None) -> dist.Distribution:
        q = self.model.q_z(self.model.encoder(self.pseudo_inputs()))  # q(z|u_k): batch (K,)
        return mixture(self.pseudo_logits.new_zeros(len(self.pseudo_logits)), q).expand([n])


class Flow(nn.Module):
    """p(z) = Normal(0, I) pushed through ``steps`` learned affine autoregressive steps.

    The steps are a masked autoregressive flow (Papamakarios et al., 2017): the density of a code,
    which every training step needs, is one parallel pass of each step's network; drawing a sample
    inverts the steps one dimension at a time (z_dim passes), which only sampling pays for. The
    steps are Pyro's "stable" form (scale = sigmoid(network output)), which starts near 0.88: the
    untrained prior is N(0, I) widened a little, not N(0, I) itself.
    """

    def __init__(self, z_dim: int, steps: int = 2):
        super().__init__()
        self.register_buffer("loc", torch.zeros(z_dim), persistent=False)
        self.register_buffer("scale", torch.ones(z_dim), persistent=False)
        # each step's network maps z (towards the base) -> its shift and scale; .inv below makes it the
        # direction from the base to z, so log_prob runs the networks' fast direction
        self.steps = nn.ModuleList(
            AffineAutoregressive(AutoRegressiveNN(z_dim, [max(64, 4 * z_dim)]), stable=True) for _ in range(steps)
        )

    def forward(self, n: int, c=None) -> dist.Distribution:
        base = dist.Normal(self.loc, self.scale).expand([n, len(self.loc)]).to_event(1)
        return dist.TransformedDistribution(base, [step.inv for step in self.steps])


PRIORS = {"standard": Standard, "conditional": Conditional, "mixture": Mixture, "vamp": Vamp, "flow": Flow}
