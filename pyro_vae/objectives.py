"""Training objectives: which Pyro ELBO estimates the bound, and how much the KL term weighs.

``--elbo`` picks the estimator of a lower bound on log p(x) for each image:

- ``trace``: Trace_ELBO, the ELBO E_q[log p(x,z) - log q(z|x)] from ``--particles`` draws of z;
- ``meanfield``: the same bound with KL(q || p) in closed form where it is known (less noise),
  and a Monte Carlo estimate where it is not (a mixture, VampPrior or flow prior; a full-rank or
  IAF guide against a diagonal prior): :func:`monte_carlo_sites` names those sites;
- ``jit``: Trace_ELBO compiled with torch.jit (the same numbers, less Python work per step);
- ``renyi``: the Renyi bound of order ``--alpha`` (Li and Turner, 2016), from ``--particles`` draws;
- ``iwae``: the importance-weighted bound log (1/K) sum_k p(x,z_k)/q(z_k|x) (Burda et al., 2016),
  which is the Renyi bound with alpha = 0; it tightens as K = ``--particles`` grows.

Particles are vectorized: the K draws run as one batch, (K, batch, z_dim).

``--beta`` weighs the KL term (a beta-VAE). The models hold only the math; the trainer runs both
programs under the effect handler :class:`KLWeight`, which scales the log-density of every latent
site, log p(z) in the model and log q(z|x) in the guide, so the weight multiplies
log p(z) - log q(z|x) and nothing else, in any model. ``--kl-warmup E`` raises the weight linearly
from near 0 to beta over the first E epochs, a standard remedy for latent units that switch off early.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch
from pyro import poutine
from pyro.infer import ELBO, JitTrace_ELBO, RenyiELBO, Trace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

# a semi-supervised model's batch whose labels are all known has nothing to enumerate: as meant
warnings.filterwarnings("ignore", message="TraceEnum_ELBO found no sample sites configured for enumeration")

# --elbo choices: name -> a function of the Config making the Pyro ELBO
ELBOS: dict[str, Callable[..., ELBO]] = {
    "trace": lambda c: Trace_ELBO(num_particles=c.particles, vectorize_particles=True, max_plate_nesting=1),
    "meanfield": lambda c: TraceMeanField_ELBO(
        num_particles=c.particles, vectorize_particles=True, max_plate_nesting=1
    ),
    "jit": lambda c: JitTrace_ELBO(
        num_particles=c.particles, vectorize_particles=True, max_plate_nesting=1, ignore_jit_warnings=True
    ),
    "renyi": lambda c: RenyiELBO(
        alpha=c.alpha, num_particles=c.particles, vectorize_particles=True, max_plate_nesting=1
    ),
    "iwae": lambda c: RenyiELBO(alpha=0.0, num_particles=c.particles, vectorize_particles=True, max_plate_nesting=1),
}


@torch.no_grad()
def monte_carlo_sites(model, guide, x, y) -> list[str]:
    """The latent sites whose KL(q || p) has no closed form (``torch.distributions.kl_divergence``
    knows no rule for the pair): TraceMeanField_ELBO estimates those terms by sampling instead.
    Each entry reads "site (GuideDistribution || PriorDistribution)"."""
    guide_trace = poutine.trace(guide).get_trace(x, y)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x, y)
    sites = []
    for name, site in model_trace.nodes.items():
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site):
            q, p = guide_trace.nodes[name]["fn"], site["fn"]
            try:
                torch.distributions.kl_divergence(q, p)
            except NotImplementedError:
                sites.append(f"{name} ({_family(q)} || {_family(p)})")
    return sites


def _family(d) -> str:
    """A distribution's name as a reader knows it: Normal(...).to_event(1) is a Normal, not an Independent."""
    while isinstance(d, torch.distributions.Independent):
        d = d.base_dist
    return type(d).__name__


def make_elbo(config, model=None):
    """The Pyro ELBO that ``config.elbo`` names, with its particles.

    model: the model it will train. One that takes missing labels (``missing_labels``, the
    semi-supervised CVAE) sums them out with TraceEnum_ELBO, the enumerating Trace_ELBO, and
    adds its classification term (:class:`ClassifierTerm`) when ``--classify-weight`` is above 0.
    """
    if getattr(model, "missing_labels", False):
        elbo = TraceEnum_ELBO(num_particles=config.particles, vectorize_particles=True, max_plate_nesting=1)
        classify = getattr(model, "classify", None)
        return ClassifierTerm(elbo, classify, config.classify_weight) if classify and config.classify_weight else elbo
    return ELBOS[config.elbo](config)


class ClassifierTerm:
    """A bound's loss plus ``weight`` times -log q(y|x) of the labelled images (Kingma et al., 2014, eq. 9).

    classify: a program with the known labels as its only (observed) sites, ``classify(x, y)``;
    its log-density is sum over labelled images of log q(y|x). Offers what the trainer uses of a
    Pyro ELBO: ``differentiable_loss(model, guide, x, y)``.
    """

    def __init__(self, elbo: ELBO, classify: Callable, weight: float):
        self.elbo, self.classify, self.weight = elbo, classify, weight

    def differentiable_loss(self, model, guide, x, y) -> torch.Tensor:
        log_q = poutine.trace(self.classify).get_trace(x, y).log_prob_sum()
        return self.elbo.differentiable_loss(model, guide, x, y) - self.weight * log_q


def warmup(epochs: int, epoch: int, fraction: float) -> float:
    """A linear ramp over the first ``epochs`` epochs, after ``fraction`` (0 < fraction <= 1) of
    ``epoch`` (1-based): above 0, then 1 from the end of the ramp on (and always 1 when ``epochs`` is 0)."""
    return 1.0 if epochs <= 0 else min(1.0, (epoch - 1 + fraction) / epochs)


def kl_weight(config, epoch: int, fraction: float) -> float:
    """The KL term's weight after ``fraction`` of ``epoch``: --beta, ramped up over --kl-warmup epochs;
    always positive."""
    return config.beta * warmup(config.kl_warmup, epoch, fraction)


class KLWeight(Messenger):
    """An effect handler that weighs the log-densities of the latent sites by ``weight``.

    Like ``poutine.scale``, but observed sites keep their weight: run around both the model and the
    guide, it turns Trace_ELBO's loss -E_q[log p(x|z) + log p(z) - log q(z|x)] into
    -E_q[log p(x|z)] + weight * KL(q(z|x) || p(z)) (the closed-form KL of TraceMeanField_ELBO too).
    ``weight`` may change between steps; at 1 the handler changes nothing. It may be a 0-dim tensor:
    the compiled step (compiled_step.py) passes it so, as an input of its graph, and a tensor
    weight always applies (its value is unknown while the step is traced).

        kl = KLWeight()
        model, guide = kl(vae.model), kl(vae.guide)   # wrap once
        kl.weight = 4.0                               # a beta-VAE from the next call on
    """

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def _process_message(self, msg):
        applies = torch.is_tensor(self.weight) or self.weight != 1
        if msg["type"] == "sample" and not msg["is_observed"] and not site_is_subsample(msg) and applies:
            msg["scale"] = self.weight * msg["scale"]
