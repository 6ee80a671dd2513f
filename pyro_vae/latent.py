"""The latent space: codes of a data set, 2-D projections, grids, paths and traversals.

Everything here is a small tensor computation on codes z: (n, z_dim); the figures that show
the results are in plots.py. Codes of images are the guide's means E_q[z|x] (for the
autoencoder, its deterministic codes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .contract import condition_vectors
from .data import ImageSet
from .errors import UserError

PROJECTIONS = ("pca", "tsne")


@torch.no_grad()
def encode_all(model, data: ImageSet, batch_size: int = 1000) -> torch.Tensor:
    """The guide's mean code of every image in ``data``: (N, z_dim), on the data's device."""
    was_training = model.training
    model.eval()
    codes = torch.cat([model.encode(x, y) for x, y in data.batches(batch_size)])
    model.train(was_training)
    return codes


def describe_codes(model) -> str:
    """What a model's codes of an image are, for titles: the guide q(z|x), q(z|x,y), or plain codes."""
    if not model.generative:
        return "the autoencoder's codes"
    return "q(z|x,y)" if model.conditional else "q(z|x)"


def project(codes: torch.Tensor, method: str = "pca", seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """Codes (N, z_dim) -> points (N, 2) and the names of the two axes.

    Two-dimensional codes are returned as they are. ``pca`` projects onto the two directions of
    largest variance (the axis names give the share of variance each explains); ``tsne`` needs
    scikit-learn.
    """
    if codes.shape[1] == 2:
        return codes, ["z[0]", "z[1]"]
    if method == "pca":
        centred = (codes - codes.mean(0)).double()
        _, s, v = torch.linalg.svd(centred, full_matrices=False)
        share = s.pow(2) / s.pow(2).sum()
        points = (centred @ v[:2].T).to(codes.dtype)
        return points, [f"PC{i + 1} ({100 * share[i]:.0f}% of variance)" for i in range(2)]
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError:
            raise UserError(
                "--method tsne needs scikit-learn: pip install scikit-learn (or use --method pca)"
            ) from None
        points = TSNE(n_components=2, init="pca", random_state=seed).fit_transform(codes.cpu().numpy())
        return torch.as_tensor(points, dtype=codes.dtype), ["t-SNE 1", "t-SNE 2"]
    raise UserError(f"unknown projection {method!r}; use one of {', '.join(PROJECTIONS)}")


@dataclass(frozen=True)
class LatentPanel:
    """One scatter plot of codes (plots.latent_figure): ``points`` (N, 2), coloured by ``labels`` (N,) whose
    names are ``classes``; ``axes``: the two axis names; ``legend``: the legend's title."""

    points: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    axes: list[str]
    title: str
    legend: str = "class"


def latent_panels(model, test: ImageSet, method: str = "pca", seed: int = 0) -> list[LatentPanel]:
    """The codes of ``test`` (the guide's means), projected to 2-D by ``method`` where z_dim > 2 and coloured by
    class; for a conditional model, a second panel: 100 images encoded under every condition, coloured by the
    condition, to show what the label moves."""
    points, axes = project(encode_all(model, test), method, seed)
    panels = [
        LatentPanel(points, test.y, test.classes, axes, f"{describe_codes(model)}, coloured by the image's class")
    ]
    if model.conditional:
        few = test.head(100)
        codes = torch.cat([model.encode(few.x, torch.full_like(few.y, c)) for c in range(len(test.classes))])
        condition = torch.arange(len(test.classes), device=codes.device).repeat_interleave(len(few))
        points, axes = project(codes, method, seed)
        title = "100 images encoded under every condition y"
        panels.append(LatentPanel(points, condition, test.classes, axes, title, legend="condition y"))
    return panels


def quantile_grid(n: int, z_dim: int = 2, dims: tuple[int, int] = (0, 1), base: torch.Tensor | None = None):
    """An n x n grid of codes over the standard normal's quantiles in two latent dimensions.

    The grid runs over the quantiles 0.5/n .. 1 - 0.5/n in dims[0] (columns) and dims[1] (rows,
    top = largest), so equal steps hold equal prior mass. Other dimensions keep ``base``
    (default 0, the prior's mean). Returns codes (n * n, z_dim), row by row, and the values (n,).
    """
    q = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    values = torch.distributions.Normal(0.0, 1.0).icdf(q).float()
    base = torch.zeros(z_dim) if base is None else base.detach().cpu().float()
    codes = base.repeat(n * n, 1)
    rows, cols = torch.meshgrid(values.flip(0), values, indexing="ij")
    codes[:, dims[0]] = cols.reshape(-1)
    codes[:, dims[1]] = rows.reshape(-1)
    return codes, values


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int, spherical: bool = False) -> torch.Tensor:
    """Codes on the way from z0 to z1 (each (z_dim,)), end points included: (steps, z_dim).

    Linear: the straight line. Spherical: the great circle (slerp), which keeps the norm near that
    of the end points; under a Gaussian prior most mass lies near a sphere, and the straight line's
    midpoint is closer to the origin than typical codes are.
    """
    t = torch.linspace(0, 1, steps, device=z0.device, dtype=z0.dtype).unsqueeze(1)
    if not spherical:
        return (1 - t) * z0 + t * z1
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))
    if omega.abs() < 1e-4:  # (nearly) the same direction: the arc is the line
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def interpolation_pairs(y: torch.Tensor, n: int, seed: int = 0) -> list[tuple[int, int]]:
    """``n`` pairs of test indices whose images are of different classes, drawn with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=g)[: 4 * n + 8].tolist()
    pairs = []
    for a, b in zip(order[0::2], order[1::2]):
        if y[a] != y[b]:
            pairs.append((a, b))
        if len(pairs) == n:
            break
    return pairs


@torch.no_grad()
def interpolation_strip(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    i: int,
    j: int,
    steps: int,
    spherical: bool = False,
    label_path: bool = False,
) -> torch.Tensor:
    """Decoded codes on the path from test image i to test image j: (steps, C, H, W).

    A conditional model's condition moves with z, from one label's one-hot vector to the
    other's; with ``label_path``, z stays at image i's code and only the condition moves.
    """
    z = model.encode(x[[i, j]], y[[i, j]])
    path = z[0].repeat(steps, 1) if label_path else interpolate(z[0], z[1], steps, spherical)
    condition = None
    if model.conditional:
        ends = condition_vectors(y[[i, j]], model.num_classes, z.dtype)
        t = torch.linspace(0, 1, steps, device=z.device).unsqueeze(1)
        condition = (1 - t) * ends[0] + t * ends[1]
    return model.decode(path, condition)


def interpolation_strips(
    model,
    test: ImageSet,
    pairs: list[tuple[int, int]],
    steps: int,
    *,
    label_path: bool = False,
    spherical: bool = False,
) -> tuple[list[torch.Tensor], list[str]]:
    """The strips of ``interpolate``: for each pair (i, j) of test images, :func:`interpolation_strip` along the
    line (and, with ``spherical``, along the great circle too), or with ``label_path`` the condition moving
    with z fixed; returns (strips, each (steps, C, H, W), and their names, "#i (class) → #j (class), line")."""
    classes, strips, names = test.classes, [], []
    for i, j in pairs:
        pair = f"#{i} ({classes[test.y[i]]}) → #{j} ({classes[test.y[j]]})"
        if label_path:
            strips.append(interpolation_strip(model, test.x, test.y, i, j, steps, label_path=True))
            names.append(f"{pair}, z fixed")
            continue
        strips.append(interpolation_strip(model, test.x, test.y, i, j, steps))
        names.append(f"{pair}, line" if spherical else pair)
        if spherical:
            strips.append(interpolation_strip(model, test.x, test.y, i, j, steps, spherical=True))
            names.append(f"{pair}, great circle")
    return strips, names


def traverse(z: torch.Tensor, dims: list[int], values: torch.Tensor) -> torch.Tensor:
    """Vary one latent dimension at a time around the code z (z_dim,).

    Returns (len(dims) * len(values), z_dim): row i sets dimension dims[i] to each value in turn.
    """
    codes = z.repeat(len(dims) * len(values), 1)
    for i, d in enumerate(dims):
        codes[i * len(values) : (i + 1) * len(values), d] = values.to(z)
    return codes


def knn_accuracy(
    reference: torch.Tensor,
    reference_labels: torch.Tensor,
    codes: torch.Tensor,
    labels: torch.Tensor,
    k: int = 5,
    chunk: int = 1000,
) -> float:
    """Accuracy of a k-nearest-neighbour classifier fitted on ``reference`` codes, on ``codes``.

    A measure of how well classes separate in the latent space: each code (N, d) takes the
    majority label of its k nearest reference codes (M, d) in Euclidean distance, ties going to
    the smaller label. Pass the same set twice to leave each code out of its own vote.
    """
    same = reference is codes
    num_classes = int(max(reference_labels.max(), labels.max())) + 1
    correct = 0
    for start in range(0, codes.shape[0], chunk):
        d = torch.cdist(codes[start : start + chunk], reference)
        if same:
            d[torch.arange(d.shape[0]), torch.arange(start, start + d.shape[0])] = float("inf")
        neighbours = reference_labels[d.topk(k, largest=False).indices]  # (chunk, k)
        votes = torch.zeros(d.shape[0], num_classes, device=codes.device)
        votes.scatter_add_(1, neighbours, torch.ones_like(neighbours, dtype=votes.dtype))
        correct += (votes.argmax(1) == labels[start : start + chunk]).sum().item()
    return correct / codes.shape[0]
