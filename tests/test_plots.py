"""The figures' axes say what their numbers are."""

import pytest
import torch
import torchaudio
from torchvision.utils import make_grid  # the reference for figures.tile

from pyro_vae import figures, plots
from pyro_vae.audio import MelFeatures


@pytest.fixture
def drawn(monkeypatch):
    """The figure each call of plots.save writes, kept for inspection."""
    figures = []
    real_save = plots.save
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig) or real_save(fig, path))
    return figures


def number(text) -> float:
    return float(text.get_text().replace("\u2212", "-"))


def test_a_spectrogram_grid_is_labelled_in_seconds_hertz_and_decibels(tmp_path, drawn):
    features = MelFeatures(duration=1.5, db_max=44.0)  # 1.5 s at 16 kHz, hop 250: 64 mels x 96 frames
    images = torch.rand(7, *features.shape)
    images[4] = 1.0  # the loudest image: db_max everywhere
    path = plots.image_grid(
        images, tmp_path / "grid.png", ncol=3, title="clips", row_labels=["a", "b", "c"], spectrogram=features.to_dict()
    )
    assert path.stat().st_size > 10_000
    fig = drawn[0]
    *tiles, bar = fig.axes
    assert len(tiles) == 7  # one tile per clip, none for the two empty places of the last row
    # seconds: every tile spans the clip's duration, frames * hop / sample_rate, and the ticks reach it
    assert features.frames * features.hop / features.sample_rate == pytest.approx(1.5)
    for ax in tiles:
        assert ax.get_xlim() == pytest.approx((0, features.duration))
    # the time labels are on the lowest tile of each column only (7 clips in 3 columns: tiles 4, 5 and 6),
    # Hz on the left
    assert [i for i, ax in enumerate(tiles) if ax.get_xticklabels()] == [4, 5, 6]  # the visible labels
    assert [i for i, ax in enumerate(tiles) if ax.get_yticklabels()] == [0, 3, 6]
    assert [number(t) for t in tiles[4].get_xticklabels()] == [0, 0.5, 1, 1.5]
    assert [tiles[i].get_ylabel() for i in (0, 3, 6)] == ["a", "b", "c"]
    # hertz: each tick sits on the band whose centre torchaudio's filter bank puts at that frequency
    n_freqs = features.n_fft // 2 + 1
    bank = torchaudio.functional.melscale_fbanks(
        n_freqs, 0.0, features.sample_rate / 2, features.n_mels, features.sample_rate
    )
    centres = bank.argmax(0).float() * features.sample_rate / features.n_fft  # (n_mels,) Hz at each band's peak
    ticks = {t.get_text(): y for t, y in zip(tiles[0].get_yticklabels(), tiles[0].get_yticks())}
    assert list(ticks) == ["500", "1k", "2k", "4k"]
    for label, hz in zip(ticks, (500, 1000, 2000, 4000)):
        band = ticks[label] - 0.5  # band b is drawn over [b, b + 1)
        i = int(band)
        between = centres[i] + (band - i) * (centres[i + 1] - centres[i])  # Hz at that height, by the filter bank
        assert abs(between - hz) < 16 + 0.1 * (centres[i + 1] - centres[i])  # one FFT bin, a tenth of a band
    # decibels: the colours run from db_max - top_db to db_max, and image value 1 is db_max
    shown = tiles[0].get_images()[0]
    assert shown.get_clim() == (features.db_max - features.top_db, features.db_max)
    assert float(tiles[4].get_images()[0].get_array().min()) == features.db_max
    assert bar.get_ylim() == pytest.approx((features.db_max - features.top_db, features.db_max))
    assert "dB" in bar.get_ylabel() and "s" in fig.texts[0].get_text() and "Hz" in fig.texts[1].get_text()
    # readable: every piece of text at 8 pt or more, tiles over an inch
    fig.draw_without_rendering()
    sizes = [
        t.get_fontsize() for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and a.get_visible() and a.get_text())
    ]
    assert len(sizes) > 30 and min(sizes) >= 8
    box = tiles[0].get_position()
    assert box.width * fig.get_figwidth() > 1.0 and box.height * fig.get_figheight() > 1.0


def test_spectrograms_without_features_count_frames_and_bands(tmp_path, drawn):
    images = torch.rand(4, 1, 32, 40)
    plots.image_grid(images, tmp_path / "grid.png", ncol=4, title="clips", spectrogram=True)
    *tiles, bar = drawn[0].axes
    assert tiles[0].get_xlim() == (0, 40) and tiles[0].get_ylim() == (0, 32)
    assert bar.get_ylim() == (0, 1) and "value" in bar.get_ylabel()


def test_other_images_are_still_one_picture(tmp_path, drawn):
    plots.image_grid(torch.rand(20, 1, 28, 28), tmp_path / "grid.png", ncol=10, title="digits", row_labels=["a", "b"])
    (ax,) = drawn[0].axes
    assert ax.get_xticks().tolist() == [] and [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert drawn[0].get_size_inches().tolist() == pytest.approx(
        [0.3 + 0.06 + 10 * 28 * 0.55 / 28, 0.6 + 2 * 28 * 0.55 / 28]
    )


@pytest.mark.parametrize(
    "shape,ncol,pad,fill",
    [((7, 1, 5, 4), 3, 2, 1.0), ((6, 3, 4, 4), 6, 0, 0.0), ((1, 1, 5, 5), 4, 2, 1.0), ((4, 3, 2, 3), 10, 1, 0.5)],
)
def test_tile_lays_images_out_as_torchvision_does(shape, ncol, pad, fill):
    images = torch.rand(shape)
    expected = make_grid(images, nrow=ncol, padding=pad, pad_value=fill)
    assert torch.equal(figures.tile(images, ncol, pad, fill), expected)
