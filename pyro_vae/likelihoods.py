"""Likelihoods p(x|z): each maps the decoder's output to a distribution over whole images.

The decoder's output has the image's shape, (batch, C, H, W). A likelihood treats the C, H, W
dimensions as one event, so ``log_prob`` is one number per image, in nats.

A likelihood is a small ``nn.Module``: built from the image shape, called on the decoder's
output, it returns the distribution. Modules so that a likelihood can learn parameters of its
own (the Gaussian's noise scale); the models register it with ``pyro.module("likelihood", ...)``.
A new likelihood is one such class plus one line in ``LIKELIHOODS`` (or, outside the package, a
class named as ``--likelihood path/to/file.py:Class``); a forward of
``dist.Normal(params, 0.1).to_event(3)`` would be a complete one, with ``discrete = False``.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import constraints

from .networks import PixelContext


class BernoulliImage(dist.TorchDistribution):
    """Independent Bernoulli pixels with the given logits; one event is one whole image.

    The same distribution as ``dist.Bernoulli(logits=logits).to_event(3)``: its ``log_prob`` is
    minus the binary cross-entropy summed over each image. Written out as one class because the
    likelihood is the largest tensor of every training step: the cross-entropy and the per-image
    sum run as two fused kernels, with no full-size negation or broadcast in the forward or
    backward pass (about 5% of a step on the CPU; see benchmarks/train_throughput.py).

    logits: (batch..., C, H, W); the last ``event_dim`` dimensions form the event.
    """

    arg_constraints = {"logits": constraints.real}
    has_rsample = False

    def __init__(self, logits: torch.Tensor, event_dim: int = 3, validate_args=None):
        self.logits = logits
        batch_shape, event_shape = logits.shape[: logits.dim() - event_dim], logits.shape[logits.dim() - event_dim :]
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @constraints.dependent_property
    def support(self):
        return constraints.independent(constraints.boolean, len(self.event_shape))

    @property
    def mean(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    @property
    def variance(self) -> torch.Tensor:
        p = self.mean
        return p * (1 - p)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        logits = self.logits.expand(batch_shape + self.event_shape)
        return BernoulliImage(logits, len(self.event_shape), validate_args=False)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return torch.bernoulli(self.mean.expand(self._extended_shape(sample_shape)))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """value: (..., C, H, W) -> (...,): log p(x|z) of each image."""
        if self._validate_args:
            self._validate_sample(value)
        logits = self.logits
        if value.shape != logits.shape:  # e.g. one image against the logits of several particles
            logits, value = torch.broadcast_tensors(logits, value)
        cross_entropy = F.binary_cross_entropy_with_logits(logits, value, reduction="none")
        return -cross_entropy.flatten(-len(self.event_shape)).sum(-1) if self.event_shape else -cross_entropy


class Bernoulli(nn.Module):
    """Independent Bernoulli pixels, parameterized by logits (cheaper and stabler than probs).

    With grey-level targets (``--binarize none``) the log-probability is the binary
    cross-entropy, as in most VAE code; that is not a normalized density over grey levels,
    so argument validation, which would refuse non-binary values, is off.
    """

    discrete = True  # a probability of each pixel value, not a density

    def __init__(self, image_shape=None):
        super().__init__()

    def forward(self, logits: torch.Tensor) -> dist.Distribution:
        return BernoulliImage(logits, event_dim=3, validate_args=False)


class ContinuousBernoulli(nn.Module):
    """Continuous Bernoulli pixels (Loaiza-Ganem and Cunningham, 2019): a proper density on [0, 1].

    The binary cross-entropy of grey levels plus the log of the normalizing constant C(lambda)
    that makes it integrate to one; its mean, the image decoded, is not sigmoid(logits) but
    pulled towards 0.5 where lambda is moderate.
    """

    discrete = False

    def __init__(self, image_shape=None):
        super().__init__()

    def forward(self, logits: torch.Tensor) -> dist.Distribution:
        return dist.ContinuousBernoulli(logits=logits, validate_args=False).to_event(3)


class _LocationScale(nn.Module):
    """x ~ D(loc = decoder output, scale) per pixel, with one scale for every pixel.

    The scale is learned, unless ``scale`` fixes it (``--likelihood-scale``). One shared scale,
    not one per pixel: spectrograms and photographs have regions of constant value (silence,
    background) where a per-pixel scale would shrink without bound.
    """

    family = dist.Normal
    discrete = False

    def __init__(self, image_shape=None, scale: float | None = None, init_scale: float = 0.1):
        super().__init__()
        if scale is None:
            self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        else:
            self.register_buffer("log_scale", torch.tensor(math.log(scale)))

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def forward(self, loc: torch.Tensor) -> dist.Distribution:
        return self.family(loc, self.scale.expand_as(loc)).to_event(3)


class Gaussian(_LocationScale):
    """Normal(loc, sigma) pixels: log p(x|z) = -||x - loc||^2 / (2 sigma^2) - D log(sigma sqrt(2 pi))."""

    family = dist.Normal


class Laplace(_LocationScale):
    """Laplace(loc, b) pixels: an L1 reconstruction error, less swayed by outlying pixels."""

    family = dist.Laplace


class AutoregressiveBernoulliImage(dist.TorchDistribution):
    """Bernoulli pixels, each depending on the pixels before it (raster order) as well as on z:

        p(x|z) = prod_i Bernoulli(x_i | sigmoid(a_i + (1 + s_i) g_i)),   (a_i, s_i) = context(x_<i)

    g: the decoder's output, (batch..., C, H, W), which z (and a condition) decides; context: a
    :class:`~pyro_vae.networks.PixelContext`. The context reads the image alone, so its cost is paid
    once per image however many codes z are scored against it (importance sampling with k = 5000).

    ``sample()`` draws pixel by pixel (H x W passes of the context); ``mean`` is the probability of
    each pixel along the most probable path (each pixel set to its likelier value in turn), a
    deterministic picture of what the decoder's code says.
    """

    arg_constraints = {"decoded": constraints.real}
    has_rsample = False

    def __init__(self, decoded: torch.Tensor, context: nn.Module, validate_args=None):
        self.decoded, self.context = decoded, context
        super().__init__(decoded.shape[:-3], decoded.shape[-3:], validate_args=validate_args)

    @constraints.dependent_property
    def support(self):
        return constraints.independent(constraints.boolean, 3)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        return AutoregressiveBernoulliImage(
            self.decoded.expand(batch_shape + self.event_shape), self.context, validate_args=False
        )

    def offset_and_gain(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The context's (a, s) at every pixel of ``x`` (..., C, H, W), each shaped like x."""
        return self.context(x.reshape(-1, *x.shape[-3:])).view(*x.shape[:-3], 2, *x.shape[-3:]).unbind(-4)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Every pixel's logit given the pixels of ``x`` before it: x (..., C, H, W) -> broadcast with the decoded."""
        offset, gain = self.offset_and_gain(x)
        return offset + (1 + gain) * self.decoded

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """value: (..., C, H, W) binary -> (...,): log p(x|z) of each image."""
        logits = self.logits(value)
        logits, value = torch.broadcast_tensors(logits, value)
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none").flatten(-3).sum(-1)

    @torch.no_grad()
    def _decode(self, greedy: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel by pixel: (the image, the probability each pixel had when it was set)."""
        x, p = torch.zeros_like(self.decoded), torch.zeros_like(self.decoded)
        _, height, width = self.event_shape
        above = getattr(self.context, "rows_above", height)  # a pixel's logit reads no row further up
        for i in range(height):
            for j in range(width):
                offset, gain = self.offset_and_gain(x[..., max(i - above, 0) : i + 1, :])  # the rows it reads
                q = torch.sigmoid(offset[..., -1, j] + (1 + gain[..., -1, j]) * self.decoded[..., i, j])
                p[..., i, j] = q
                x[..., i, j] = (q > 0.5).to(x.dtype) if greedy else torch.bernoulli(q)
        return x, p

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        if sample_shape:
            return AutoregressiveBernoulliImage(
                self.decoded.expand(sample_shape + self.decoded.shape), self.context
            ).sample()
        return self._decode(greedy=False)[0]

    @property
    def mean(self) -> torch.Tensor:
        return self._decode(greedy=True)[1]


class Autoregressive(nn.Module):
    """Bernoulli pixels that also depend on the pixels before them (:class:`AutoregressiveBernoulliImage`):
    the decoder's code says what the image is, a small masked-convolution network over the image
    itself (its weights are this part's) says how strokes continue from pixel to pixel, which a
    factorized likelihood cannot. For binary images, with any decoder, guide and prior."""

    discrete = True

    def __init__(self, image_shape):
        super().__init__()
        self.context = PixelContext(image_shape[0])

    def forward(self, decoded: torch.Tensor) -> dist.Distribution:
        return AutoregressiveBernoulliImage(decoded, self.context, validate_args=False)


LIKELIHOODS = {
    "bernoulli": Bernoulli,
    "continuous-bernoulli": ContinuousBernoulli,
    "gaussian": Gaussian,
    "laplace": Laplace,
    "autoregressive": Autoregressive,
}
