"""A training batch as the model sees it: binarized (or dequantized) afresh, and flipped."""

from __future__ import annotations

import torch

from .imageset import dequantize


def augment(x: torch.Tensor, config, generator: torch.Generator) -> torch.Tensor:
    """A training batch as the model sees it: x (B, C, H, W) in [0, 1] -> (B, C, H, W).

    ``--binarize dynamic``: every pixel becomes 0 or 1, 1 with its grey level as probability (a
    fresh binary image every time); ``dequantize``: every pixel moves uniformly within its 8-bit
    level (data.imageset.dequantize), fresh every time. ``--flip``: a random half of the images is mirrored left-right
    (a face seen in a mirror is still a face). Both draw from ``generator``, the run's data
    generator, so that every process draws the same global batch. ``config``: the run's settings.
    """
    if config.binarize == "dynamic":
        x = torch.bernoulli(x, generator=generator)
    elif config.binarize == "dequantize":
        x = dequantize(x, generator)
    if config.flip:
        mirror = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5  # (B,)
        x = torch.where(mirror.view(-1, 1, 1, 1), x.flip(-1), x)
    return x
