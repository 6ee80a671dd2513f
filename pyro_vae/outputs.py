"""Where a command's pictures go, and when they are also sound.

``sample``, ``reconstruct`` and ``interpolate`` each draw a grid of images. For a run on pixels
that grid is the output: one PNG. For a run on spectrograms (its checkpoint holds the ``features``
that turn them back into sound) the images are also written as 16 kHz WAV files, so the output is
a folder: the WAV files and the grid, drawn as spectrograms, beside them.

Every ``--out`` is checked by :func:`check_out` before anything is computed: a command never
writes over the files a run is made of, and never writes one format under another's name.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable

import torch

from . import checkpoint, lock, recipes
from .errors import UserError
from .plots import column_shares, draw_samples, image_grid, sample_figure

# the files a run folder is made of: an output written over one of them would destroy the run
RUN_FILES = {
    checkpoint.CHECKPOINT: "its checkpoint",
    checkpoint.BEST: "its best epoch's checkpoint",
    checkpoint.CONFIG: "its settings",
    checkpoint.METRICS: "its training history",
    lock.PID: "the pid of the process training it",
    recipes.COPY: "the recipe it was trained from",
}
KINDS = {"png": ".png", "json": ".json", "png or folder": ".png", "folder": ""}  # what each --out takes, and its suffix


NAME_BYTES = 255  # the longest file or folder name that Linux, macOS and Windows file systems take


def check_out(path: Path | None, kind: str, option: str = "--out") -> Path | None:
    """``path`` as an --out may take it (None: the command's default), or a UserError of one line.

    kind: "png" (a picture), "json", "png or folder" (a picture; a folder of WAV files for a run on
    spectrograms) or "folder". Refused: a run's own files (RUN_FILES, in any folder that holds a run),
    an existing folder where a file goes (or a file where a folder goes), a suffix that is not the
    format written (PNG bytes under .jpg would mislead every viewer), and a name too long to create.
    """
    if path is None:
        return None
    suffix = KINDS[kind]
    long = next((part for part in path.parts if len(os.fsencode(part)) > NAME_BYTES), None)
    if long is not None:
        raise UserError(
            f"{option} {_short(path)}: the name {_short(Path(long))} is {len(os.fsencode(long))} bytes long, "
            f"more than the {NAME_BYTES} a file system takes; choose a shorter name"
        )
    is_run = (path.parent / checkpoint.CHECKPOINT).exists() or (path.parent / checkpoint.CONFIG).exists()
    own = next((name for name in RUN_FILES if name.lower() == path.name.lower()), None)  # macOS and Windows ignore case
    if own and is_run:
        raise UserError(
            f"{option} {path} is {RUN_FILES[own]} in the run {path.parent}; writing there would destroy the run: "
            f"name another file (the default, with {option} left out, is safe)"
        )
    if kind == "folder":
        if path.exists() and not path.is_dir():
            raise UserError(
                f"{option} {path} is a file, and this command writes a folder: name a folder (a new one is made)"
            )
        return path
    if path.is_dir() and kind != "png or folder":
        raise UserError(f"{option} {path} is a folder; name the file to write, such as {path / ('out' + suffix)}")
    if path.suffix.lower() != suffix and not (kind == "png or folder" and (path.suffix == "" or path.is_dir())):
        also = ", or a folder for a run on spectrograms (without a suffix)" if kind == "png or folder" else ""
        raise UserError(f"{option} {path}: this command writes {suffix[1:].upper()}, so name the file *{suffix}{also}")
    return path


def run_folder(value: str | os.PathLike | None, option: str = "--run-dir") -> Path | None:
    """The folder a --run-dir names (None: the default), or a UserError of one line.

    Taken as text: Path("") is the current folder, and an empty value (an unset shell variable,
    most often) would train into wherever the command was started.
    """
    if value is None:
        return None
    if not os.fspath(value).strip():
        raise UserError(
            f"{option} is empty (an unset variable?); name the folder for the run, "
            f"or leave {option} out for runs/<name>-<time>"
        )
    return check_out(Path(value), "folder", option)


def _short(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 60 else f"{text[:40]}...{text[-12:]}"


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
        if out is not None and out.is_dir():
            raise UserError(
                f"--out {out} is a folder, and {run} holds images, written as one PNG: "
                f"name it, such as {out / (name + '.png')}"
            )
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


def write_samples(
    model,
    run: Path,
    out: Path | None,
    classes: list[str],
    labels,
    n: int,
    seed: int,
    features: dict | None,
    attributes: bool,
    log: Callable[[str], None] = print,
) -> None:
    """What ``sample`` writes: ``n`` images drawn from the prior (for each of ``labels``: class labels, or an
    attribute vector where ``attributes``) as a grid, or, for spectrograms (``features``), WAV files and their
    picture (:func:`write_pictures_or_sound`)."""
    drawn = functools.cache(lambda: draw_samples(model, n, labels, seed))  # spectrograms: (images, row labels)

    def figure(path: Path, spectrogram: dict | bool) -> Path:
        if not spectrogram:
            return sample_figure(model, classes, path, ncol=n, labels=labels, seed=seed, attributes=attributes)
        images, rows = drawn()
        title = (
            "samples from the prior" if rows is None else f"samples per class (a column shares {column_shares(model)})"
        )
        names = None if rows is None or n > 10 else [classes[c] for c in rows]
        return image_grid(images, path, ncol=min(n, 10), title=title, row_labels=names, spectrogram=spectrogram)

    def clips():
        images, rows = drawn()
        names = (
            [f"sample-{i}" for i in range(n)] if rows is None else [f"{classes[c]}-{i}" for c in rows for i in range(n)]
        )
        return images, names

    write_pictures_or_sound(
        run, out, "sample", features, figure=figure, clips=clips, picture="spectrograms.png", seed=seed, log=log
    )
