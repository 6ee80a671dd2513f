"""Figures: image grids, samples, reconstructions, latent codes, manifolds, strips and training curves,
drawn off screen on figures.py's canvas and written atomically as PNG files."""

from __future__ import annotations

import math
from pathlib import Path

import pyro.distributions as dist
import torch

from .contract import device_of
from .figures import blank, save, subplots, tile
from .history import EpochRecord
from .latent import LatentPanel, quantile_grid


def image_grid(
    images: torch.Tensor, path: str | Path, *, ncol: int, title: str, row_labels=None, spectrogram: bool | dict = False
) -> Path:
    """Save ``images`` (N, C, H, W) in [0, 1] as a grid of ``ncol`` columns with a title.

    row_labels: one name per row, shown on the left (classes, or "input" / "reconstruction").
    spectrogram: the images are log-mel spectrograms (1, mels, frames), drawn by
    :func:`spectrogram_grid`: one tile per clip with time and frequency axes and a colour bar. Given
    the data set's features (``MelFeatures.to_dict()``, as ``ImageSet.features`` and checkpoints hold
    them) the axes are in seconds, hertz and decibels; ``True``: in frames, mel bands and image values.
    """
    images = images.detach().float().cpu().clamp(0, 1)
    if spectrogram:
        features = spectrogram if isinstance(spectrogram, dict) else None
        return spectrogram_grid(images, path, ncol=ncol, title=title, row_labels=row_labels, features=features)
    pad = 2
    grid = tile(images, ncol, pad, fill=1.0)
    nrow = -(-images.shape[0] // ncol)
    h, w = images.shape[-2:]
    # inches for the labels on the left: about 0.06 per character at font size 8
    label_room = 0.3 + 0.06 * max(map(len, row_labels)) if row_labels else 0.3
    scale = 0.55 / 28  # inches per pixel
    fig, ax = subplots((label_room + ncol * w * scale, 0.6 + nrow * h * scale))
    # as 8-bit colours, as the PNG stores them: matplotlib draws a large grid of bytes faster than one of floats
    ax.imshow(grid.permute(1, 2, 0).mul(255).round().to(torch.uint8).numpy())
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
    return save(fig, path)


SPECTROGRAM_INCHES = 0.018  # per frame and per mel band: a 64 x 64 tile is 1.15 inches, ten fit across a laptop screen


def spectrogram_grid(
    images: torch.Tensor, path: str | Path, *, ncol: int, title: str, row_labels=None, features: dict | None = None
) -> Path:
    """Save log-mel spectrograms ``images`` (N, 1, n_mels, frames) in [0, 1] as a grid of labelled tiles.

    Each tile is one clip, low frequencies at the bottom. The outer tiles carry the ticks (time under the
    bottom row, frequency beside the left column, with the row's name); one colour bar gives the level, in
    the units of ``features`` (``MelFeatures.to_dict()``; :func:`_spectrogram_units`).
    """
    images = images.detach().float().cpu().clamp(0, 1)
    n, _, mels, frames = images.shape
    ncol = min(ncol, n)
    nrow = -(-n // ncol)
    values, levels, extent, yticks, names = _spectrogram_units(images, features)
    xticks = _round_ticks(extent[1])

    # the layout in inches: tiles and the gaps between them, room for labels on the left, the colour bar on the right
    tile_w, tile_h = frames * SPECTROGRAM_INCHES, mels * SPECTROGRAM_INCHES
    gap_x, gap_y = 0.14, 0.08  # a tile's last time label and the next tile's first must not touch
    left = 0.75 + (0.1 + 0.065 * max(map(len, row_labels)) if row_labels else 0)
    grid_w, grid_h = ncol * tile_w + (ncol - 1) * gap_x, nrow * tile_h + (nrow - 1) * gap_y
    width, height = left + grid_w + 1.0, 0.6 + grid_h + 0.5
    fig = blank((width, height))
    for i in range(n):
        row, col = divmod(i, ncol)
        x0, y0 = left + col * (tile_w + gap_x), 0.6 + (nrow - 1 - row) * (tile_h + gap_y)
        ax = fig.add_axes((x0 / width, y0 / height, tile_w / width, tile_h / height))
        shown = ax.imshow(
            values[i, 0].numpy(),
            origin="lower",
            cmap="magma",
            vmin=levels[0],
            vmax=levels[1],
            extent=extent,
            aspect="auto",
            interpolation="nearest",
        )
        ax.set_xticks(xticks, [f"{t:g}" for t in xticks])
        ax.set_yticks(list(yticks), list(yticks.values()))
        bottom = i + ncol >= n  # the lowest tile of its column
        ax.tick_params(labelsize=8, length=2.5, pad=2, labelbottom=bottom, labelleft=col == 0)
        if col == 0 and row_labels and row < len(row_labels):
            ax.set_ylabel(
                row_labels[row], fontsize=9, fontweight="bold", rotation=0, ha="right", va="center", labelpad=10
            )
    # one label per axis for the whole grid, outside the outer tiles' tick labels
    fig.text((left + grid_w / 2) / width, 0.12 / height, names[0], fontsize=9, ha="center", va="bottom")
    fig.text(0.08 / width, (0.6 + grid_h / 2) / height, names[1], rotation=90, fontsize=9, ha="left", va="center")
    fig.text((left + grid_w / 2) / width, (0.6 + grid_h + 0.12) / height, title, fontsize=10, ha="center", va="bottom")
    bar_h = min(grid_h, 3.0)
    cax = fig.add_axes(
        ((left + grid_w + 0.15) / width, (0.6 + (grid_h - bar_h) / 2) / height, 0.13 / width, bar_h / height)
    )
    bar = fig.colorbar(shown, cax=cax, extend="min" if features is not None else "neither")  # min: quieter is clipped
    bar.set_label(names[2], fontsize=9)
    bar.ax.tick_params(labelsize=8)
    return save(fig, path)


def _spectrogram_units(images: torch.Tensor, features: dict | None):
    """What the tiles of :func:`spectrogram_grid` show: (values, their colour range, a tile's extent, the
    frequency ticks, the axes' names).

    With ``features`` the units are those of the pipeline in audio.py: frame t covers [t, t + 1) hops, so the
    time axis ends at frames * hop / sample_rate seconds (the clip's duration); band b, drawn over [b, b + 1),
    is ticked at the Hz of its centre on the HTK mel scale from 0 Hz to sample_rate / 2 (torchaudio's
    MelSpectrogram); the colour bar runs over the dB range mapped to [0, 1], db_max - top_db to db_max
    (quieter is 0). Without features: frames, mel bands and the image's values.
    """
    from .audio import MelFeatures

    _, _, mels, frames = images.shape
    if features is not None:
        f = MelFeatures.from_dict(features)
        low = f.db_max - f.top_db
        values, levels = images * f.top_db + low, (low, f.db_max)  # image value v is low + v * top_db dB
        extent = (0, frames * f.hop / f.sample_rate, 0, mels)
        top_mel = 2595 * math.log10(1 + f.sample_rate / 2 / 700)  # HTK mel scale, f_max = sample_rate / 2
        bands = {
            hz: 2595 * math.log10(1 + hz / 700) * (mels + 1) / top_mel - 1
            for hz in (500, 1000, 2000, 4000, 8000, 16000)
        }
        yticks = {
            band + 0.5: f"{hz:g}" if hz < 1000 else f"{hz / 1000:g}k"
            for hz, band in bands.items()
            if 0 < band + 0.5 < mels
        }
        names = ("time (s)", "frequency (Hz)", "level (dB)")
    else:
        values, levels, extent = images, (0.0, 1.0), (0, frames, 0, mels)
        yticks = {b + 0.5: f"{b}" for b in range(0, mels, max(mels // 4, 1))}
        names = ("frame", "mel band", "image value (0 to 1)")
    return values, levels, extent, yticks, names


def _round_ticks(stop: float) -> list[float]:
    """Two to four round ticks from 0 to ``stop``, the last at ``stop`` when it is round (1 s: 0, 0.5, 1)."""
    step = next((s for s in (0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 20, 25, 50, 100) if stop / s <= 3 + 1e-9), stop)
    return [round(k * step, 6) for k in range(int(stop / step + 1e-9) + 1)]


def interleave_rows(top: torch.Tensor, bottom: torch.Tensor, ncol: int) -> torch.Tensor:
    """Stack images so each row of ``top`` is followed by the same row of ``bottom``: (2N, C, H, W)."""
    rows = []
    for start in range(0, top.shape[0], ncol):
        rows += [top[start : start + ncol], bottom[start : start + ncol]]
    return torch.cat(rows)


MAX_ROWS = 10  # a sample grid shows at most this many classes unless asked for others


def condition_name(classes: list[str], condition) -> str:
    """A row's name: the class of a label, or the attributes switched on in an attribute vector."""
    if isinstance(condition, int):
        return classes[condition]
    on = [name for name, value in zip(classes, condition.tolist()) if value > 0.5]
    return " + ".join(on) if on else "no attribute"


def default_conditions(model, attributes: bool = False) -> list:
    """The rows of a conditional sample grid: the first classes; or, conditioned on attributes,
    every attribute off, then each attribute alone switched on."""
    if not attributes:
        return list(range(min(model.num_classes, MAX_ROWS)))
    eye = torch.eye(model.num_classes, device=device_of(model))
    return [torch.zeros_like(eye[0])] + list(eye[: MAX_ROWS - 1])


@torch.no_grad()
def draw_samples(model, n: int, labels=None, seed: int = 0) -> tuple[torch.Tensor, list]:
    """The model's samples, drawn with ``seed`` without disturbing the global RNG.

    Returns (images, row conditions). Unconditional models: ``n`` images and None.
    Conditional models: ``n`` per condition, condition by condition, with the same noise for every
    one (each reseeds before drawing z), so the i-th image of each shares one style. A condition
    is a class label (int) or an attribute vector (num_classes,); None: :func:`default_conditions`.
    """
    device = device_of(model)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if not model.conditional:
            torch.manual_seed(seed)
            return model.sample(n), None
        labels = default_conditions(model) if labels is None else list(labels)
        rows = []
        for label in labels:
            torch.manual_seed(seed)
            y = torch.full((n,), label, device=device) if isinstance(label, int) else label.to(device).expand(n, -1)
            rows.append(model.sample(n, y))
    return torch.cat(rows), labels


@torch.no_grad()
def sample_figure(
    model,
    classes: list[str],
    path,
    *,
    ncol: int = 10,
    labels=None,
    seed: int = 0,
    spectrogram: bool | dict = False,
    attributes: bool = False,
) -> Path:
    """A grid of the model's samples: n x n from the prior, or for a conditional model one row per
    condition (a column holds one style given each condition). ``attributes``: the model is
    conditioned on attribute vectors named by ``classes``, not on class labels."""
    if not model.conditional:
        nrow = 2 if spectrogram else ncol  # spectrograms are large: two rows say enough
        images, _ = draw_samples(model, ncol * nrow, seed=seed)
        return image_grid(
            images, path, ncol=ncol, title=f"{ncol * nrow} samples from the prior", spectrogram=spectrogram
        )
    first = labels is None and not attributes and model.num_classes > MAX_ROWS
    images, labels = draw_samples(
        model, ncol, default_conditions(model, attributes) if labels is None else labels, seed
    )
    names = [condition_name(classes, c) for c in labels]
    if len(labels) == 1:
        title = f"samples given {names[0]}"
    else:
        title = f"samples per {'condition' if attributes else 'class'} (a column shares {column_shares(model)})"
        title += f"; the first {len(labels)} of {model.num_classes} classes" if first else ""
    return image_grid(images, path, ncol=ncol, title=title, row_labels=names, spectrogram=spectrogram)


def column_shares(model) -> str:
    """What one column of a per-class sample grid holds fixed: draw_samples uses one noise draw per
    column, which is the same z under a prior that ignores y and its image under p(z|y) otherwise."""
    return "one noise draw" if getattr(getattr(model, "p_z", None), "conditional", False) else "one z"


@torch.no_grad()
def reconstruction_figure(
    model, x: torch.Tensor, y: torch.Tensor, path, *, ncol: int = 10, spectrogram: bool | dict = False
) -> Path:
    """Inputs (odd rows) above their reconstructions (even rows). x: (N, C, H, W) with N a multiple of ncol."""
    recon = model.reconstruct(x, y)
    rows = x.shape[0] // ncol
    labels = ["input", "reconstruction"] * rows
    return image_grid(
        interleave_rows(x, recon, ncol),
        path,
        ncol=ncol,
        title="test images and their reconstructions",
        row_labels=labels,
        spectrogram=spectrogram,
    )


def _scatter(
    ax, points: torch.Tensor, labels: torch.Tensor, classes: list[str], axis_names, title: str, legend_title: str
):
    points, labels = points.detach().float().cpu(), labels.cpu()
    from matplotlib import colormaps  # as in figures.blank

    cmap = colormaps["tab10" if len(classes) <= 10 else "tab20"]
    for i, name in enumerate(classes):
        mask = labels == i
        if mask.any():
            ax.scatter(
                points[mask, 0], points[mask, 1], s=3, alpha=0.6, color=cmap(i % cmap.N), label=name, rasterized=True
            )
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.legend(
        title=legend_title,
        markerscale=4,
        fontsize=7,
        title_fontsize=8,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        ncol=1 if len(classes) <= 12 else 2,
        frameon=False,
    )


def latent_figure(panels: list, path, *, title: str) -> Path:
    """Scatter plots of codes side by side, coloured by class: one per panel, a latent.LatentPanel (or a dict
    of its fields: points (N, 2), labels (N,), classes, axes, title, and optionally legend)."""
    panels = [panel if isinstance(panel, LatentPanel) else LatentPanel(**panel) for panel in panels]
    fig, axes = subplots((5.6 * len(panels), 4.6), 1, len(panels), squeeze=False)
    for ax, p in zip(axes[0], panels):
        _scatter(ax, p.points, p.labels, p.classes, p.axes, p.title, p.legend)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save(fig, path)


def grid_codes(prior, standard: torch.Tensor) -> torch.Tensor:
    """Codes for a grid of standard-normal values ``standard`` (m, z_dim): the prior's mean plus
    ``standard`` of its standard deviations; for a flow prior, the grid over its base N(0, I)
    carried through the flow (its mean has no closed form)."""
    if isinstance(prior, dist.TransformedDistribution):
        codes = prior.base_dist.mean + prior.base_dist.stddev * standard
        for transform in prior.transforms:
            codes = transform(codes)
        return codes
    return prior.mean + prior.stddev * standard


@torch.no_grad()
def manifold_figure(model, path, *, n: int = 20, labels=None, classes=None, dims=(0, 1)) -> Path:
    """Decode an n x n grid over the prior's quantiles in two latent dimensions: the familiar "manifold".

    The grid is laid over the prior itself: for a learned p(z|y) each class's grid is centred on
    its prior mean and spaced in its prior standard deviations (other dimensions at the mean).
    labels: for a conditional model, one grid per label, five to a row.
    """
    device = device_of(model)
    standard, values = quantile_grid(n, model.z_dim, dims)
    panels = labels if labels is not None else [None]
    ncols = min(len(panels), 5)
    nrows = -(-len(panels) // ncols)
    fig, axes = subplots((0.6 + 4.2 * ncols, 0.5 + 4.4 * nrows), nrows, ncols, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, label in zip(axes.flat, panels):
        y = None if label is None else torch.full((1,), label, device=device)
        codes = grid_codes(model.prior(1, y), standard.to(device))
        images = model.decode(codes, None if y is None else y.expand(n * n)).float().cpu().clamp(0, 1)
        grid = tile(images, n)
        # the tiles are equally spaced in prior mass, not in z: the axes count tiles (tile i spans [i, i + 1],
        # bottom to top and left to right), and a tick names the value its tile was decoded from
        ax.imshow(
            grid.permute(1, 2, 0).numpy(),
            cmap="gray" if images.shape[1] == 1 else None,
            extent=(0, n, 0, n),
            vmin=0,
            vmax=1,
        )
        positions, names = quantile_ticks(values)
        ax.set_xticks(positions, names, fontsize=7)
        ax.set_yticks(positions, names, fontsize=7)
        ax.set_xlabel(f"z[{dims[0]}] in prior sd from its mean (tiles: equal prior mass)", fontsize=8)
        ax.set_ylabel(f"z[{dims[1]}] in prior sd from its mean (tiles: equal prior mass)", fontsize=8)
        if label is not None:
            ax.set_title(f"class {classes[label] if classes else label}", fontsize=10)
    what = (
        "the 2-D latent space"
        if model.z_dim == 2
        else f"a slice through z[{dims[0]}], z[{dims[1]}], other dimensions at the prior mean"
    )
    fig.suptitle(f"decoded grid over the prior's quantiles: {what}", fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def quantile_ticks(values: torch.Tensor, count: int = 7) -> tuple[list[float], list[str]]:
    """Ticks for an axis of n tiles decoded at ``values`` (n,), tile i spanning [i, i + 1]: about ``count``
    tile centres, mirror images about the middle from both ends inward, each labelled with its tile's value."""
    n = len(values)
    step = max(1, math.ceil((n - 1) / (count - 1)))
    left = [i for i in range(0, n, step) if i < (n - 1) / 2]
    tiles = sorted({*left, *(n - 1 - i for i in left), *([(n - 1) // 2] if n % 2 else [])})
    return [i + 0.5 for i in tiles], [f"{values[i].item():.2f}" for i in tiles]


def strips_figure(
    strips: list[torch.Tensor], row_labels: list[str], path, *, title: str, spectrogram: bool | dict = False
) -> Path:
    """Rows of images of equal length, e.g. interpolations (each strip (steps, C, H, W))."""
    steps = strips[0].shape[0]
    return image_grid(torch.cat(strips), path, ncol=steps, title=title, row_labels=row_labels, spectrogram=spectrogram)


def curves_figure(history: list[EpochRecord], path, *, title: str = "training curves") -> Path:
    """-ELBO (train and test) and the test reconstruction and KL terms against epochs."""
    epochs = [r.epoch for r in history]
    fig, (left, right) = subplots((10, 4), 1, 2)
    left.plot(epochs, [r.train_neg_elbo for r in history], "o-", label="train")
    left.plot(epochs, [r.test_neg_elbo for r in history], "s-", label="test")
    left.set_title("-ELBO (lower is better)", fontsize=10)
    left.set_ylabel("nats per image")
    right.plot(epochs, [r.test_recon for r in history], "o-", color="tab:green", label="reconstruction  -E[log p(x|z)]")
    right.set_ylabel("reconstruction, nats per image")
    kl_axis = right.twinx()
    kl_axis.plot(epochs, [r.test_kl for r in history], "s-", color="tab:red", label="KL(q(z|x) || p(z))")
    kl_axis.set_ylabel("KL, nats per image")
    right.set_title("test -ELBO = reconstruction + KL", fontsize=10)
    lines = right.get_lines() + kl_axis.get_lines()
    right.legend(lines, [line.get_label() for line in lines], fontsize=8)
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save(fig, path)
