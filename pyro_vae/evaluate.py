"""Measuring a trained model: the ELBO per image and its two parts.

    ELBO(x) = E_q[log p(x|z)] - E_q[log q(z|x) - log p(z)]
            = -reconstruction                - KL

Each term is estimated with one z drawn from the guide, as Trace_ELBO does in training, and
read off Pyro traces, so this works for any model/guide pair without model-specific code.
"""

from __future__ import annotations

import pyro
import torch
from pyro import poutine

from .data import ImageSet


def elbo_terms(model, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Single-sample estimates of -log p(x|z) and KL(q(z|x) || p(z)), each (batch,) in nats."""
    guide_trace = poutine.trace(model.guide).get_trace(x, y)
    model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(x, y)
    recon = x.new_zeros(x.shape[0])
    kl = x.new_zeros(x.shape[0])
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample":
            continue
        log_p = site["fn"].log_prob(site["value"])
        if site["is_observed"]:
            recon = recon - log_p
        else:
            kl = kl + guide_trace.nodes[name]["fn"].log_prob(site["value"]) - log_p
    return recon, kl


@torch.no_grad()
def evaluate_elbo(model, data: ImageSet, batch_size: int = 1000) -> dict[str, float]:
    """Mean -ELBO, reconstruction and KL over ``data``, in nats per image (lower -ELBO is better)."""
    totals = torch.zeros(2, device=data.x.device)
    was_training = model.training
    model.eval()
    with pyro.validation_enabled(False):
        for x, y in data.batches(batch_size):
            recon, kl = elbo_terms(model, x, y)
            totals += torch.stack([recon.sum(), kl.sum()])
    model.train(was_training)
    recon, kl = (totals / len(data)).tolist()
    return {"neg_elbo": recon + kl, "recon": recon, "kl": kl}
