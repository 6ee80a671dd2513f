"""One split of an image data set, held whole as tensors on the training device."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch

from ..errors import UserError


def _describe(t) -> str:
    name = type(t).__name__
    return (
        f"a {t.dtype} tensor of shape {tuple(t.shape)}"
        if torch.is_tensor(t)
        else f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
    )


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

    def check(self, name: str = "the data set") -> "ImageSet":
        """Raise a UserError naming the first thing wrong with these tensors; returns self when all is well.

        Run on every set a loader hands out, so that odd data (NaN pixels, labels that are not
        integers) is refused where it enters, not found later as a NaN loss.
        """
        x, y = self.x, self.y
        if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() != 4:
            raise UserError(f"{name}: images must be a float tensor (N, C, H, W), not {_describe(x)}; prepare it again")
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
            raise UserError(f"{name}: {bad} images hold NaN or infinite values; remove them or prepare the data again")
        if x.numel() and not (x.min() >= 0 and x.max() <= 1):
            raise UserError(
                f"{name}: pixel values must lie in [0, 1], found {x.min().item():g}..{x.max().item():g}; "
                "divide 8-bit images by 255"
            )
        if not torch.is_tensor(y) or y.shape[:1] != x.shape[:1]:
            raise UserError(f"{name}: {len(x)} images but labels {_describe(y)}; give one label per image")
        if y.dim() == 1:
            if y.is_floating_point() or y.dtype == torch.bool:
                raise UserError(
                    f"{name}: class labels must be integers 0..{max(len(self.classes) - 1, 0)}, not {y.dtype}; "
                    "map each class to an integer"
                )
            if len(y) and not (y.min() >= 0 and y.max() < len(self.classes)):
                raise UserError(
                    f"{name}: labels {y.min().item()}..{y.max().item()} do not fit its {len(self.classes)} "
                    "classes; number the classes 0..K-1"
                )
        elif y.dim() == 2:
            if y.shape[1] != len(self.classes) or not ((y == 0) | (y == 1)).all():
                raise UserError(
                    f"{name}: attribute vectors must be 0/1, one column per attribute name ({len(self.classes)})"
                )
        else:
            raise UserError(
                f"{name}: labels must be (N,) class numbers or (N, k) attribute vectors, not {_describe(y)}"
            )
        return self

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

    def take(self, index: torch.Tensor) -> "ImageSet":
        """The images at ``index`` ((n,) int64), in that order."""
        return ImageSet(self.x[index], self.y[index], self.classes, self.features)

    def binarized(self, generator: torch.Generator) -> "ImageSet":
        """One Bernoulli draw of every pixel: a fixed binary copy of the split."""
        return ImageSet(torch.bernoulli(self.x, generator=generator), self.y, self.classes, self.features)

    def dequantized(self, generator: torch.Generator) -> "ImageSet":
        """Every 8-bit grey level v/255 moved uniformly within its level, to [v - 1/2, v + 1/2] / 255: a fixed copy.

        A density fitted to such images bounds the probability of the stored 8-bit ones: the
        density of a value times the level's width 1/255 (Theis, van den Oord and Bethge, 2016).
        """
        return ImageSet(dequantize(self.x, generator), self.y, self.classes, self.features)

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        order: torch.Tensor | None = None,
        start: int = 0,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` batches, in a random order drawn from ``generator`` when ``shuffle``.

        order: a permutation of the images to use instead (an interrupted epoch's, when it goes on);
        start: the first batch to yield (the ones before it were taken already).
        """
        n = len(self)
        if order is None:
            order = self.permutation(generator) if shuffle else torch.arange(n, device=self.x.device)
        stop = n - n % batch_size if drop_last else n
        for first in range(start * batch_size, stop, batch_size):
            index = order[first : first + batch_size]
            yield self.x[index], self.y[index]

    def permutation(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random order of the images, (N,) int64 on their device."""
        return torch.randperm(len(self), generator=generator, device=self.x.device)

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        return len(self) // batch_size if drop_last else -(-len(self) // batch_size)


def dequantize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """x (..., C, H, W) of 8-bit grey levels in [0, 1] -> the same plus uniform noise of one level's width, centred."""
    return x + (torch.rand(x.shape, generator=generator, device=x.device) - 0.5) / 255
