"""A judge for conditional generation: a small convolutional classifier, trained once per data set.

A CVAE asked for a 7 should draw a 7. ``evaluate`` measures that by labelling the CVAE's samples
with this classifier, so the classifier's own test accuracy is reported beside that number: the
conditional accuracy can't be trusted further than the judge.

The classifier is trained on the grey-level training images on first use (about a minute on
2 CPU cores for MNIST) and cached beside the prepared data, so every run is judged by the same one.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data
from .data.cache import data_home
from .files import save_torch


class Classifier(nn.Module):
    """x: (batch, C, H, W) in [0, 1] -> class logits (batch, num_classes); any image size."""

    def __init__(self, image_shape, num_classes: int):
        super().__init__()
        self.image_shape, self.num_classes = tuple(image_shape), num_classes
        self.features = nn.Sequential(
            nn.Conv2d(image_shape[0], 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(7), nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Linear(32 * 49, 128), nn.ReLU(), nn.Linear(128, num_classes))

    def forward(self, x):
        return self.head(self.features(x))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Most likely label of each image: (batch,) int64."""
        return torch.cat([self(x[i : i + batch_size]).argmax(-1) for i in range(0, len(x), batch_size)])


def accuracy(classifier: Classifier, images: data.ImageSet) -> float:
    return (classifier.predict(images.x) == images.y).float().mean().item()


def train_classifier(
    train: data.ImageSet,
    test: data.ImageSet,
    *,
    epochs: int = 2,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> tuple[Classifier, float]:
    """Train on ``train`` with Adam, cosine-annealed; returns (classifier in eval mode, its accuracy on ``test``)."""
    generator = torch.Generator(device=train.x.device).manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = Classifier(train.image_shape, train.num_classes).to(train.x.device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
    # the learning rate falls to zero along a cosine: the last epoch's weights are settled, not a lucky or unlucky step
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * train.num_batches(batch_size))
    for epoch in range(1, epochs + 1):
        classifier.train()
        for x, y in train.batches(batch_size, shuffle=True, generator=generator):
            loss = F.cross_entropy(classifier(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        classifier.eval()
        log(f"classifier epoch {epoch}/{epochs}: test accuracy {accuracy(classifier, test):.2%}")
    return classifier, accuracy(classifier, test)


def load_classifier(
    dataset: str,
    device: torch.device | str = "cpu",
    *,
    train_size: int | None = None,
    epochs: int | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Classifier, float]:
    """The cached classifier of ``dataset`` (trained and cached on first use); returns (classifier, test accuracy).

    ``train_size`` trains on the first N images only (a quick judge for tests), cached apart.
    ``epochs``: by default the data set's own (:class:`pyro_vae.data.Source`): more for small sets.
    """
    epochs = epochs or data.DATASETS[dataset].classifier_epochs
    name = f"classifier-{dataset}" + (f"-{train_size}" if train_size else "") + f"-{epochs}ep.pt"
    path = data_home() / name
    if path.exists():
        try:
            state = torch.load(path, map_location=device, weights_only=True)
            classifier = Classifier(state["image_shape"], state["num_classes"]).to(device)
            classifier.load_state_dict(state["weights"])
            return classifier.eval(), state["test_accuracy"]
        except Exception as e:  # truncated, or saved by another version of this network: train it again
            log(f"ignoring the cached classifier {path} ({type(e).__name__})")
    train, test = data.load(dataset, device, binarize="none")
    log(f"training a classifier for {dataset} to judge conditional samples (once; cached in {path})")
    classifier, test_accuracy = train_classifier(train.head(train_size), test, epochs=epochs, log=log)
    state = {
        "weights": classifier.state_dict(),
        "image_shape": list(train.image_shape),
        "num_classes": train.num_classes,
        "test_accuracy": test_accuracy,
    }
    save_torch(state, path)
    return classifier, test_accuracy
