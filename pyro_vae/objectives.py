"""Training objectives: which Pyro ELBO estimates the bound, and how much the KL term weighs.

``--elbo`` picks the estimator of a lower bound on log p(x) for each image:

- ``trace``: Trace_ELBO, the ELBO E_q[log p(x,z) - log q(z|x)] from ``--particles`` draws of z;
- ``meanfield``: the same bound with KL(q || p) in closed form where it is known (less noise);
- ``jit``: Trace_ELBO compiled with torch.jit (the same numbers, less Python work per step);
- ``renyi``: the Renyi bound of order ``--alpha`` (Li and Turner, 2016), from ``--particles`` draws;
- ``iwae``: the importance-weighted bound log (1/K) sum_k p(x,z_k)/q(z_k|x) (Burda et al., 2016),
  which is the Renyi bound with alpha = 0; it tightens as K = ``--particles`` grows.

Particles are vectorized: the K draws run as one batch, (K, batch, z_dim).

``--beta`` weighs the KL term (a beta-VAE): the models wrap their latent site in
``poutine.scale(scale=model.kl_weight)`` in both the model and the guide, so the weight multiplies
log p(z) - log q(z|x) and nothing else. ``--kl-warmup E`` raises the weight linearly from near 0 to
beta over the first E epochs, a standard remedy for latent units that switch off early.
"""

from __future__ import annotations

from typing import Callable

from pyro.infer import ELBO, JitTrace_ELBO, RenyiELBO, Trace_ELBO, TraceMeanField_ELBO

# --elbo choices: name -> a function of the Config making the Pyro ELBO
ELBOS: dict[str, Callable[..., ELBO]] = {
    "trace": lambda c: Trace_ELBO(num_particles=c.particles, vectorize_particles=True, max_plate_nesting=1),
    "meanfield": lambda c: TraceMeanField_ELBO(num_particles=c.particles, vectorize_particles=True, max_plate_nesting=1),
    "jit": lambda c: JitTrace_ELBO(
        num_particles=c.particles, vectorize_particles=True, max_plate_nesting=1, ignore_jit_warnings=True
    ),
    "renyi": lambda c: RenyiELBO(alpha=c.alpha, num_particles=c.particles, vectorize_particles=True, max_plate_nesting=1),
    "iwae": lambda c: RenyiELBO(alpha=0.0, num_particles=c.particles, vectorize_particles=True, max_plate_nesting=1),
}


def make_elbo(config) -> ELBO:
    """The Pyro ELBO that ``config.elbo`` names, with its particles."""
    return ELBOS[config.elbo](config)


def warmup(epochs: int, epoch: int, fraction: float) -> float:
    """A linear ramp over the first ``epochs`` epochs, after ``fraction`` (0 < fraction <= 1) of
    ``epoch`` (1-based): above 0, then 1 from the end of the ramp on (and always 1 when ``epochs`` is 0)."""
    return 1.0 if epochs <= 0 else min(1.0, (epoch - 1 + fraction) / epochs)


def kl_weight(config, epoch: int, fraction: float) -> float:
    """The KL term's weight after ``fraction`` of ``epoch``: --beta, ramped up over --kl-warmup epochs; always positive."""
    return config.beta * warmup(config.kl_warmup, epoch, fraction)
