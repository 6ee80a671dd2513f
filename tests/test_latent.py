import math

import pytest
import torch

from conftest import train_small
from pyro_vae.latent import (
    encode_all,
    interpolate,
    interpolation_pairs,
    interpolation_strip,
    knn_accuracy,
    project,
    quantile_grid,
    traverse,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A VAE and a CVAE with 2-D codes, trained for 3 epochs on 5,000 real MNIST images."""
    root = tmp_path_factory.mktemp("latent")
    settings = dict(z_dim=2, train_size=5000, test_size=1000, epochs=3, hidden_dim=256)
    return {name: train_small(root / name, model=name, **settings) for name in ("vae", "cvae", "ae")}


@pytest.mark.slow
@pytest.mark.parametrize("spherical", [False, True])
@pytest.mark.parametrize("name", ["vae", "cvae", "ae"])
def test_interpolation_ends_at_the_reconstructions(trained, name, spherical):
    trainer = trained[name]
    model, test = trainer.model.eval(), trainer.test_data
    i, j = interpolation_pairs(test.y, 1)[0]
    strip = interpolation_strip(model, test.x, test.y, i, j, steps=7, spherical=spherical)
    assert strip.shape == (7, 1, 28, 28)
    ends = model.reconstruct(test.x[[i, j]], test.y[[i, j]])
    torch.testing.assert_close(strip[[0, -1]], ends, atol=1e-5, rtol=1e-4)
    assert (strip[3] - ends[0]).abs().max() > 0.05 and (strip[3] - ends[1]).abs().max() > 0.05  # it moves


def test_label_path_holds_z_and_moves_the_condition(trained):
    model, test = trained["cvae"].model.eval(), trained["cvae"].test_data
    i, j = interpolation_pairs(test.y, 1)[0]
    strip = interpolation_strip(model, test.x, test.y, i, j, steps=5, label_path=True)
    z = model.encode(test.x[[i]], test.y[[i]])
    torch.testing.assert_close(strip[0], model.decode(z, test.y[[i]])[0])
    torch.testing.assert_close(strip[-1], model.decode(z, test.y[[j]])[0])  # image i's style, class of j


def test_straight_and_great_circle_paths():
    z0, z1 = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    line, arc = interpolate(z0, z1, 5), interpolate(z0, z1, 5, spherical=True)
    torch.testing.assert_close(line[2], torch.tensor([1.5, 1.5]))
    torch.testing.assert_close(arc.norm(dim=1), torch.full((5,), 3.0))  # stays on the sphere
    torch.testing.assert_close(arc[2], torch.full((2,), 3 / math.sqrt(2)))
    torch.testing.assert_close(interpolate(z0, 2 * z0, 3, spherical=True)[1], 1.5 * z0)  # parallel: the line


def test_quantile_grid_spans_equal_prior_mass():
    codes, values = quantile_grid(4, z_dim=3, dims=(2, 0))
    normal = torch.distributions.Normal(0.0, 1.0)
    torch.testing.assert_close(normal.cdf(values), torch.tensor([0.125, 0.375, 0.625, 0.875]))
    assert codes.shape == (16, 3) and torch.equal(codes[:, 1], torch.zeros(16))
    assert codes[0, 2] == values[0] and codes[0, 0] == values[-1]  # top-left: smallest across, largest up
    assert codes[-1, 2] == values[-1] and codes[-1, 0] == values[0]


def test_traverse_changes_one_dimension_per_row():
    z = torch.tensor([0.5, -1.0, 2.0])
    codes = traverse(z, [2, 0], torch.tensor([-1.0, 0.0, 1.0]))
    assert codes.shape == (6, 3)
    torch.testing.assert_close(codes[:3, 2], torch.tensor([-1.0, 0.0, 1.0]))
    torch.testing.assert_close(codes[:3, :2], z[:2].repeat(3, 1))
    torch.testing.assert_close(codes[3:, 0], torch.tensor([-1.0, 0.0, 1.0]))


def test_pca_projection_keeps_the_widest_directions():
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(2000, 5, generator=g) * torch.tensor([0.1, 5.0, 0.1, 2.0, 0.1])
    points, axes = project(codes, "pca")
    assert points.shape == (2000, 2)
    assert points[:, 0].std() == pytest.approx(5.0, rel=0.05) and points[:, 1].std() == pytest.approx(2.0, rel=0.05)
    assert axes[0].startswith("PC1 (86%")  # 25 / (25 + 4 + 0.03)


def test_knn_accuracy_counts_neighbours():
    codes = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2], [0.15]])
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1])  # the last one sits among the zeros
    assert knn_accuracy(codes, labels, codes, labels, k=3) == pytest.approx(6 / 7)
    assert knn_accuracy(codes[:6], labels[:6], torch.tensor([[0.12], [4.9]]), torch.tensor([0, 1]), k=3) == 1.0


def test_vae_codes_separate_the_classes(trained):
    # the full-size bar is measured in the README (z_dim 2, 10 epochs on all of MNIST)
    trainer = trained["vae"]
    reference, test = encode_all(trainer.model, trainer.train_data), encode_all(trainer.model, trainer.test_data)
    accuracy = knn_accuracy(reference, trainer.train_data.y, test, trainer.test_data.y)
    assert accuracy > 0.35  # measured 0.43 on this small run; chance is 0.1


@pytest.mark.parametrize("labels", [["cvae person 22→person 15"] * 3, ["input", "reconstruction", "input"]])
def test_row_labels_are_never_cut_at_the_edge(tmp_path, labels):
    """Long row names (a compare strip's "cvae person 22→person 15") stay inside the saved PNG."""
    import matplotlib.image

    from pyro_vae.plots import image_grid

    image_grid(
        torch.rand(9, 1, 64, 64, generator=torch.Generator().manual_seed(0)),
        tmp_path / "g.png",
        ncol=3,
        title="grid",
        row_labels=labels,
    )
    grey = torch.from_numpy(matplotlib.image.imread(tmp_path / "g.png")[..., :3].mean(-1))
    assert grey[:, :3].min() == 1.0 and grey[:, -3:].min() == 1.0  # white margins: nothing runs off either side
    text_columns = (grey[:, : grey.shape[1] // 4].min(0).values < 0.5).sum()
    assert text_columns > 40  # and the labels are drawn (about 6 pixels per character)


@pytest.mark.slow
def test_figures_leave_the_callers_matplotlib_alone(tmp_path):
    """Figures are drawn on their own Figure objects: importing plots switches no backend, and drawing
    leaves no figure open in pyplot (so a notebook keeps its inline figures)."""
    import subprocess
    import sys

    import matplotlib.pyplot as plt

    from pyro_vae.plots import image_grid

    code = "import matplotlib; matplotlib.use('svg'); import pyro_vae.plots; print(matplotlib.get_backend())"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "svg"
    )
    before = plt.get_fignums()
    path = image_grid(torch.rand(4, 1, 8, 8), tmp_path / "g.png", ncol=2, title="grid")
    assert plt.get_fignums() == before and path.stat().st_size > 1000


@pytest.mark.parametrize("n", [5, 20])
def test_manifold_ticks_name_the_value_each_tile_was_decoded_from(trained, monkeypatch, tmp_path, n):
    """The tiles are spaced in prior mass, so a linear z axis would misplace them (by up to a third of
    a standard deviation at n = 20): each tick sits on a tile and names that tile's own value, which
    decoding at that value reproduces."""
    from pyro_vae import plots

    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig) or path)
    model = trained["vae"].model.eval()
    plots.manifold_figure(model, tmp_path / "m.png", n=n)
    ax = figures[0].axes[0]
    _, values = quantile_grid(n)
    image = torch.as_tensor(ax.images[0].get_array()[..., 0])  # (n * 28, n * 28), row 0 at the top
    assert ax.images[0].get_extent() == [0, n, 0, n]
    ticks = {"x": (ax.get_xticks(), ax.get_xticklabels()), "y": (ax.get_yticks(), ax.get_yticklabels())}
    for axis, (positions, labels) in ticks.items():
        assert len(positions) >= 5 and positions[0] == 0.5 and positions[-1] == n - 0.5
        for position, label in zip(positions, labels):
            i = int(position)
            assert position == i + 0.5 and label.get_text() == f"{values[i].item():.2f}"
            # the tile at tick i along this axis, with the other coordinate at its lowest value
            z = torch.tensor([[values[i], values[0]]] if axis == "x" else [[values[0], values[i]]])
            row, col = (n - 1, i) if axis == "x" else (n - 1 - i, 0)
            tile = image[row * 28 : (row + 1) * 28, col * 28 : (col + 1) * 28]
            with torch.no_grad():
                torch.testing.assert_close(tile, model.decode(z)[0, 0].clamp(0, 1), atol=1e-5, rtol=0)
    # where the old, linear axis put the tiles: off by up to a third of a standard deviation
    lo, hi = values[0].item(), values[-1].item()
    linear = torch.linspace(lo, hi, n)
    assert (linear - values).abs().max() > (0.3 if n == 20 else 0.1)
