"""Where a command's pictures go, and when they are also sound.

``sample``, ``reconstruct`` and ``interpolate`` each draw a grid of images. For a run on pixels
that grid is the output: one PNG. For a run on spectrograms (its checkpoint holds the ``features``
that turn them back into sound) the images are also written as 16 kHz WAV files, so the output is
a folder: the WAV files and the grid, drawn as spectrograms, beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch


def write_pictures_or_sound(
    run: Path,
    out: Path | None,
    name: str,
    features: dict | None,
    *,
    figure: Callable[..., Path],
    clips: Callable[[], tuple[torch.Tensor, list[str]]],
    picture: str,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> Path:
    """Write a command's output and log one line saying what was written; returns the PNG or the folder.

    run, out, name: the output goes to ``out``, or by default <run>/<name>.png (pixels) or the
    folder <run>/<name>/ (spectrograms).
    features: the run's ``state["features"]``; None for pixels.
    figure: ``figure(path, spectrogram=...)`` draws the grid as a PNG at ``path`` and returns it (spectrogram:
    False for pixels, else the features, which plots.image_grid turns into axes).
    clips: called only for spectrograms: (images (N, 1, n_mels, frames), N file names without .wav).
    picture: the grid's file name inside the folder (spectrograms).
    seed: of Griffin-Lim's random start phases, so the same call writes the same sound.
    """
    if features is None:
        path = figure(out or run / f"{name}.png", spectrogram=False)
        log(f"wrote {path}")
        return path
    from .audio import write_clips

    folder = out or run / name
    images, names = clips()
    wavs = write_clips(images, names, folder, features, seed=seed)
    png = figure(folder / picture, spectrogram=features)  # the features label its axes
    log(f"wrote {len(wavs)} WAV files and {png.name} to {folder}")
    return folder
