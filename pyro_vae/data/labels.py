"""Semi-supervised training data: a few labels kept, the rest hidden, and the labelled images in every batch.

``train --labels N`` keeps N training labels, N / K of each of the K classes (the first N mod K
classes one more), chosen by the run's seed, and writes -1 for every other label: the model then
learns from those images without their class (models/semi_supervised.py).

With 100 labels among 60,000 images a batch of 256 would hold one labelled image in two on
average; :class:`LabelledShare` adds a fixed number of labelled images to every batch instead,
drawn afresh each step, so that every step has labels to learn from.
"""

from __future__ import annotations

import torch

from ..errors import UserError
from .imageset import ImageSet

MISSING = -1  # the label of an image whose class is hidden


def keep_labels(train: ImageSet, n: int, seed: int) -> ImageSet:
    """``train`` with all but ``n`` labels replaced by MISSING: as many of each class as can be
    (n // K, and one more for the first n % K classes), chosen at random by ``seed``."""
    k = train.num_classes
    if train.attributes:
        raise UserError(
            "--labels hides class labels, and this data set is conditioned on attributes; leave --labels out"
        )
    if not k <= n <= len(train):
        raise UserError(f"--labels must be between {k} (one per class) and {len(train)} (all), not {n}")
    generator = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(k):
        members = (train.y == c).nonzero().flatten().cpu()
        wanted = n // k + (c < n % k)
        if len(members) < wanted:
            raise UserError(
                f"--labels {n} asks for {wanted} images of class {train.classes[c]!r}, "
                f"which has {len(members)}; ask for fewer"
            )
        keep.append(members[torch.randperm(len(members), generator=generator)[:wanted]])
    y = torch.full_like(train.y, MISSING)
    index = torch.cat(keep).to(train.y.device)
    y[index] = train.y[index]
    return ImageSet(train.x, y, train.classes, train.features)


class LabelledShare:
    """The labelled images of a semi-supervised training set, ``size`` of them added to each batch.

    train: the set from :func:`keep_labels`. The images are drawn without replacement within a
    step and anew each step, from the run's data generator (so a resumed run draws the same ones).
    """

    def __init__(self, train: ImageSet, size: int):
        self.index = (train.y != MISSING).nonzero().flatten()
        self.x, self.y = train.x[self.index], train.y[self.index]
        self.size = min(size, len(self.index))

    def join(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W), y (B,) -> the same with ``size`` labelled images after them: (B + size, ...)."""
        pick = torch.randperm(len(self.index), generator=generator, device=generator.device)[: self.size]
        return torch.cat([x, self.x[pick]]), torch.cat([y, self.y[pick]])
