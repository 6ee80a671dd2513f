"""The canvas every figure is drawn on: made off screen, held to a size a viewer opens, saved atomically.

Figures are made with matplotlib's object API (``Figure``), not pyplot: no window ever opens, and the caller's
own matplotlib setup (a notebook's inline backend) is left as it is. plots.py draws on them.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .files import atomic_path

DPI = 110
MAX_PIXELS = (
    16e6  # of a figure (4000 x 4000): a larger grid is drawn at a lower resolution, not as a file no viewer opens
)


def subplots(figsize, nrows: int = 1, ncols: int = 1, **kwargs):
    """A figure and its axes, like ``pyplot.subplots`` but owned by the caller alone.

    At most MAX_PIXELS: a grid of 200 x 100 images is drawn at 70 dots per inch, not 110 (at 110 it
    took 5 GB and 90 s to draw).
    """
    fig = blank(figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def blank(figsize):
    """An empty figure of ``figsize`` inches at :func:`dpi`. matplotlib is imported here, on the first figure:
    it takes a second that a command which draws nothing (``--help`` among them) need not pay."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=dpi(*figsize))


def dpi(width: float, height: float) -> float:
    """Dots per inch of a figure of ``width`` x ``height`` inches: DPI, or fewer to stay within MAX_PIXELS."""
    return min(DPI, math.sqrt(MAX_PIXELS / (width * height)))


def save(fig, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` as PNG, through a temporary file renamed into place; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", pad_inches=0.08)  # nothing cut at the edges
    return path


def tile(images: torch.Tensor, ncol: int, pad: int = 0, fill: float = 0.0) -> torch.Tensor:
    """Images (B, C, H, W) laid out in rows of ``ncol``, ``pad`` pixels of ``fill`` between and around them:
    (C', rows * (H + pad) + pad, min(ncol, B) * (W + pad) + pad); one-channel images become grey RGB (C' = 3),
    and a single image is returned as it is. The layout of torchvision's make_grid, without importing
    torchvision (seconds), which every command would otherwise pay for, ``--help`` too."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if len(images) == 1:
        return images[0]
    count, channels, h, w = images.shape
    cols = min(ncol, count)
    rows = -(-count // cols)
    grid = images.new_full((channels, rows * (h + pad) + pad, cols * (w + pad) + pad), fill)
    for k, image in enumerate(images):
        top, left = pad + (k // cols) * (h + pad), pad + (k % cols) * (w + pad)
        grid[:, top : top + h, left : left + w] = image
    return grid
