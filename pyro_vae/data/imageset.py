"""One split of an image data set, held whole as tensors on the training device."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch


@dataclass
class ImageSet:
    """Images and their labels, whole, on one device; batches are taken by index.

    x: (N, C, H, W) float in [0, 1]
    y: (N,) int64 class labels in [0, num_classes); or, for a data set conditioned on attributes
        (CelebA's ``--condition Smiling,Eyeglasses``), (N, num_classes) float 0/1 attribute vectors
    classes: a display name for each label (or each attribute)
    features: for spectrograms of sound, the settings that turn an image back into a clip
        (``MelFeatures.to_dict()``, see pyro_vae/audio.py); None for pictures
    """

    x: torch.Tensor
    y: torch.Tensor
    classes: list[str] = field(default_factory=list)
    features: dict | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def attributes(self) -> bool:
        """Whether y holds attribute vectors rather than class labels."""
        return self.y.dim() == 2

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device) -> "ImageSet":
        return ImageSet(self.x.to(device), self.y.to(device), self.classes, self.features)

    def head(self, n: int | None) -> "ImageSet":
        """The first ``n`` images (all of them when ``n`` is None)."""
        if n is None:
            return self
        return ImageSet(self.x[:n], self.y[:n], self.classes, self.features)

    def binarized(self, generator: torch.Generator) -> "ImageSet":
        """One Bernoulli draw of every pixel: a fixed binary copy of the split."""
        return ImageSet(torch.bernoulli(self.x, generator=generator), self.y, self.classes, self.features)

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` batches, in a random order drawn from ``generator`` when ``shuffle``."""
        n = len(self)
        if shuffle:
            order = torch.randperm(n, generator=generator, device=self.x.device)
        else:
            order = torch.arange(n, device=self.x.device)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            index = order[start : start + batch_size]
            yield self.x[index], self.y[index]

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        return len(self) // batch_size if drop_last else -(-len(self) // batch_size)
