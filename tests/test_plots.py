"""The figures' axes say what their numbers are."""

import torch
import torchaudio

from pyro_vae import plots
from pyro_vae.audio import MelFeatures


def test_a_spectrogram_grid_is_labelled_in_seconds_hertz_and_decibels(tmp_path, monkeypatch):
    features = MelFeatures(db_max=44.0)  # 1 s at 16 kHz, 64 mels x 64 frames
    drawn = {}
    real_save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: drawn.setdefault("fig", fig) and real_save(fig, path))
    path = plots.image_grid(torch.rand(6, *features.shape), tmp_path / "grid.png", ncol=3, title="clips",
                            row_labels=["a", "b"], spectrogram=features.to_dict())  # fmt: skip
    assert path.stat().st_size > 10_000
    ax, bar = drawn["fig"].axes[0], drawn["fig"].axes[-1]
    # seconds: the last tick, 1 s, sits at the clip's last frame boundary of the first tile
    seconds = {t.get_text(): t.get_position()[0] for t in ax.get_xticklabels()}
    assert list(seconds) == ["0", "0.5", "1"] and seconds["1"] - seconds["0"] == features.sample_rate / features.hop
    # hertz: each label sits on the row of the first tile whose mel band is centred there, by torchaudio's filter bank
    n_freqs = features.n_fft // 2 + 1
    bank = torchaudio.functional.melscale_fbanks(n_freqs, 0.0, features.sample_rate / 2, features.n_mels, features.sample_rate)
    centres = bank.argmax(0).float() * features.sample_rate / features.n_fft  # (n_mels,) Hz at each band's peak
    centres = torch.cat([centres, torch.tensor([features.sample_rate / 2])])  # and the top band's upper edge
    rows = {t.get_text(): t.xy[1] for t in ax.texts}
    assert list(rows) == ["500", "1k", "2k", "4k", "8k", "Hz"]
    for label, hz in zip(rows, (500, 1000, 2000, 4000, 8000)):
        band = 2 + features.n_mels - 1 - rows[label]  # pad 2; low frequencies at the bottom of the tile
        i = min(int(band), features.n_mels - 1)
        between = centres[i] + (band - i) * (centres[i + 1] - centres[i])  # Hz of that row, by the filter bank
        assert abs(between - hz) < 16 + 0.1 * (centres[i + 1] - centres[i])  # one FFT bin, a tenth of a band
    # decibels: the colour bar runs from db_max - top_db to db_max
    labels = [float(t.get_text().replace("\u2212", "-")) for t in bar.get_yticklabels()]
    assert labels[0] == features.db_max - features.top_db and labels[-1] == features.db_max
