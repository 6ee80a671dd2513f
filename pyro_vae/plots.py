"""Figures, drawn with matplotlib off screen and written atomically as PNG files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # never open a window
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from .files import atomic_path  # noqa: E402


def image_grid(images: torch.Tensor, path: str | Path, *, ncol: int, title: str, row_labels=None) -> Path:
    """Save ``images`` (N, C, H, W) in [0, 1] as a grid of ``ncol`` columns with a title.

    row_labels: one name per row, shown on the left (classes, or "input" / "reconstruction").
    """
    images = images.detach().float().cpu().clamp(0, 1)
    pad = 2
    grid = make_grid(images, nrow=ncol, padding=pad, pad_value=1.0)
    nrow = -(-images.shape[0] // ncol)
    h, w = images.shape[-2:]
    label_room = 1.2 if row_labels else 0.3
    fig, ax = plt.subplots(figsize=(label_room + ncol * w / 28 * 0.55, 0.6 + nrow * h / 28 * 0.55), dpi=110)
    ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray" if images.shape[1] == 1 else None, vmin=0, vmax=1)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    if row_labels:
        ax.set_yticks([pad + (h + pad) * (i + 0.5) for i in range(len(row_labels))])
        ax.set_yticklabels(row_labels, fontsize=8)
        ax.tick_params(axis="y", length=0)
    else:
        ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def interleave_rows(top: torch.Tensor, bottom: torch.Tensor, ncol: int) -> torch.Tensor:
    """Stack images so each row of ``top`` is followed by the same row of ``bottom``: (2N, C, H, W)."""
    rows = []
    for start in range(0, top.shape[0], ncol):
        rows += [top[start : start + ncol], bottom[start : start + ncol]]
    return torch.cat(rows)


@torch.no_grad()
def sample_figure(model, classes: list[str], path, *, ncol: int = 10, labels=None, seed: int = 0) -> Path:
    """A grid of the model's samples, drawn with ``seed`` without disturbing the global RNG.

    Conditional models: one row per label, and the same noise in every row (each row reseeds
    before drawing z), so a column holds one style written as each class.
    """
    device = model.z_loc.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if not model.conditional:
            torch.manual_seed(seed)
            images = model.sample(ncol * ncol)
            return image_grid(images, path, ncol=ncol, title=f"{ncol * ncol} samples from the prior")
        labels = list(range(model.num_classes)) if labels is None else list(labels)
        rows = []
        for label in labels:
            torch.manual_seed(seed)
            rows.append(model.sample(ncol, torch.full((ncol,), label, device=device)))
    title = f"samples of class {classes[labels[0]]}" if len(labels) == 1 else "samples per class (a column shares one z)"
    return image_grid(torch.cat(rows), path, ncol=ncol, title=title, row_labels=[classes[i] for i in labels])


@torch.no_grad()
def reconstruction_figure(model, x: torch.Tensor, y: torch.Tensor, path, *, ncol: int = 10) -> Path:
    """Inputs (odd rows) above their reconstructions (even rows). x: (N, C, H, W) with N a multiple of ncol."""
    recon = model.reconstruct(x, y)
    rows = x.shape[0] // ncol
    labels = ["input", "reconstruction"] * rows
    return image_grid(interleave_rows(x, recon, ncol), path, ncol=ncol, title="test images and their reconstructions",
                      row_labels=labels)  # fmt: skip
