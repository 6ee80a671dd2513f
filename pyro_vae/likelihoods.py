"""Likelihoods p(x|z): each maps the decoder's output to a distribution over whole images.

The decoder's output has the image's shape, (batch, C, H, W); ``.to_event`` declares the
C, H, W dimensions as one event, so ``log_prob`` is one number per image, in nats.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch


def bernoulli(logits: torch.Tensor) -> dist.Distribution:
    """Independent Bernoulli pixels, parameterized by logits (cheaper and stabler than probs).

    With grey-level targets (``--binarize none``) the log-probability is the binary
    cross-entropy, as in most VAE code; that is not a normalized density over grey levels,
    so argument validation, which would refuse non-binary values, is off.
    """
    return dist.Bernoulli(logits=logits, validate_args=False).to_event(logits.dim() - 1)


LIKELIHOODS = {"bernoulli": bernoulli}
