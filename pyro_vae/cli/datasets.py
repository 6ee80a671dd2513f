"""data prepare: fetch and cache a data set."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .. import data
from ..errors import UserError
from .app import command, data_app, reports_errors
from .options import DatasetName, count_option, seed_option


def _flags(options) -> str:
    """Data-preparation keyword names as the command line spells them: source -> --from."""
    spelled = {"source": "from", "features": "n-mels/--hop/--duration"}
    return ", ".join("--" + spelled.get(k, k).replace("_", "-") for k in options)


def _refuse_others(name: str, options: dict) -> None:
    """A UserError naming the options given that data set ``name`` does not take."""
    takes = data.DATASETS[name].options
    refused = [k for k in options if k not in takes]
    if refused:
        raise UserError(
            f"{name} does not take {_flags(refused)}"
            + (f"; it takes {_flags(takes)}" if takes else "; it has no options")
        )


@command(data_app, "prepare")
@reports_errors
def data_prepare(
    name: DatasetName = typer.Argument(..., help="The data set to fetch, check and cache."),
    force: bool = typer.Option(False, help="Fetch again even when it is cached."),
    clips: Optional[int] = typer.Option(
        None, help="spoken-digits: how many clips to synthesize, as many per digit.", show_default="3000"
    ),
    seed: Optional[int] = seed_option(
        None, help="spoken-digits: seed of the voices, speeds and pitches.", show_default="0"
    ),
    from_: Optional[Path] = typer.Option(
        None,
        "--from",
        help=(
            "spoken-digits: your own labelled WAV files ({digit}_{speaker}_{n}.wav as in the Free Spoken Digit "
            "Dataset, or one subfolder per label as in Speech Commands). image-folder: your folder of pictures (one "
            "subfolder per label, or all in one). celeba: the folder in torchvision's CelebA layout "
            "(img_align_celeba/ and list_attr_celeba.txt)."
        ),
    ),
    n_mels: Optional[int] = typer.Option(
        None, help="spoken-digits: mel bands (image height; 8..512).", show_default="64"
    ),
    hop: Optional[int] = typer.Option(
        None, help="spoken-digits: samples between spectrogram frames (16 kHz).", show_default="250"
    ),
    duration: Optional[float] = typer.Option(
        None,
        help="spoken-digits: seconds per clip (at most 10); frames = duration x 16000 / hop, 8..2048.",
        show_default="1.0",
    ),
    image_size: Optional[int] = typer.Option(
        None, help="faces, image-folder, celeba: side of the square images, in pixels (8..512).", show_default="64"
    ),
    crop: Optional[int] = typer.Option(
        None,
        help="faces, image-folder, celeba: side of the centre square cut out before resizing.",
        show_default="the shorter side; 148 for celeba",
    ),
    limit: Optional[int] = count_option(
        None, "image-folder, celeba: read only the first N images (in file-name order).", 1, 10**7, show_default="all"
    ),
):
    """Fetch a data set from the first source that answers, check it, and cache it under $PYRO_VAE_DATA.

    spoken-digits is synthesized with espeak-ng (about 30 s for 3000 clips), or read from --from;
    its clips are also kept as WAV files beside the cache. image-folder and celeba read your own
    pictures from --from. Preparing a data set with options replaces the cached copy; runs
    trained on the old one need it back to be read.
    """
    given = {"clips": clips, "seed": seed, "source": from_, "image_size": image_size, "crop": crop, "limit": limit}
    options = {k: v for k, v in given.items() if v is not None}
    audio = {k: v for k, v in {"n_mels": n_mels, "hop": hop, "duration": duration}.items() if v is not None}
    if audio:
        from ..audio import MelFeatures

        options["features"] = MelFeatures(**audio)
    _refuse_others(name.value, options)
    path, source = data.prepare(name.value, force=force, **options)
    typer.echo(f"{name.value}: {path} (from {source})")
