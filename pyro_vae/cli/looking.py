"""The commands that look inside a trained run: sample, reconstruct, plot-latent, manifold, interpolate, traverse,
curves."""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional, Tuple

import typer

from .. import checkpoint
from ..devices import resolve_device
from ..errors import UserError
from ..outputs import check_out, write_pictures_or_sound
from .app import app, command, reports_errors
from .options import (
    MAX_SPAN,
    CheckpointName,
    DeviceName,
    ProjectionName,
    RunDir,
    TrustCode,
    WhichCheckpoint,
    _open_run,
    count_option,
    seed_option,
)


def _labels(model, classes: list[str], labels: Optional[List[int]]) -> Optional[List[int]]:
    if not labels:
        return None
    if not model.conditional:
        raise UserError("--label needs a conditional model: this run is not a cvae (train one with --model cvae)")
    bad = [label for label in labels if not 0 <= label < len(classes)]
    if bad:
        raise UserError(f"label {bad[0]} is not a class of this data set; use 0..{len(classes) - 1}")
    return labels


def _attribute_vector(model, names: list[str], settings: List[str]) -> list:
    """--attr Smiling=1,Eyeglasses=0 -> [one attribute vector (num_attributes,)], or a UserError."""
    if not model.conditional or model.num_classes != len(names):
        raise UserError(
            "--attr needs a cvae conditioned on attributes (train one with --dataset celeba --condition ...)"
        )
    import torch

    vector = torch.zeros(len(names))
    for item in (part.strip() for setting in settings for part in setting.split(",") if part.strip()):
        name, _, value = item.partition("=")
        if name not in names or value not in ("0", "1"):
            raise UserError(f"--attr {item!r}: write NAME=1 or NAME=0 with NAME one of {', '.join(names)}")
        vector[names.index(name)] = float(value)
    return [vector]


@command(app)
@reports_errors
def sample(
    run: Path = RunDir,
    n: int = count_option(
        10,
        "Images per row (per class for a cvae; the grid is n x n for a vae). Spoken digits: clips per class.",
        1,
        100,
        "--n",
    ),
    label: Optional[List[int]] = typer.Option(
        None,
        help="cvae: draw only this class (repeat for several); faces: the person.",
        show_default="every class (the first 10)",
    ),
    attr: Optional[List[str]] = typer.Option(
        None,
        help=(
            "cvae conditioned on attributes (celeba): NAME=1 or NAME=0, repeatable or comma-separated; "
            "attributes not named are 0."
        ),
        show_default="none, then each alone",
    ),
    seed: int = seed_option(0, help="Seed of the prior draws."),
    out: Optional[Path] = typer.Option(
        None,
        help="PNG to write; for spoken digits, a folder for the WAV files and spectrograms.png.",
        show_default="<run>/sample.png, or <run>/sample/",
    ),
    device: DeviceName = typer.Option("cpu", help="Where to run the decoder."),
    which: CheckpointName = WhichCheckpoint,
    trust_code: bool = TrustCode,
):
    """Draw new images from the model's prior and save them as a grid (for a cvae: one row per class).

    For spoken digits, each sample is also turned back into sound (inverse mel scale and
    Griffin-Lim) and written as a 16 kHz WAV file: `sample RUN --label 7 --n 8 --out sevens/`.
    """
    from ..outputs import write_samples

    out = check_out(out, "png or folder")
    model, config, state = checkpoint.load_model(run, resolve_device(device.value), which.value, trust_code)
    if not model.generative:
        raise UserError(
            f"{run} holds an autoencoder, which has no prior to sample from; use `reconstruct`, or a vae/cvae run"
        )
    attributes = config.condition is not None
    if attributes and label:
        raise UserError(f"{run} is conditioned on attributes ({config.condition}), not labels; use --attr NAME=1")
    classes = state["classes"]
    labels = _attribute_vector(model, classes, attr) if attr else _labels(model, classes, label)
    write_samples(model, run, out, classes, labels, n, seed, state.get("features"), attributes, log=typer.echo)


@command(app)
@reports_errors
def reconstruct(
    run: Path = RunDir,
    n: int = count_option(20, "How many test images (rounded up to a multiple of 10).", 1, 1000, "--n"),
    start: int = typer.Option(0, help="Index of the first test image."),
    out: Optional[Path] = typer.Option(
        None,
        help="PNG to write; for spoken digits, a folder for WAV files and reconstructions.png.",
        show_default="<run>/reconstruct.png, or <run>/reconstruct/",
    ),
    device: DeviceName = typer.Option("cpu", help="Where to run the networks."),
    which: CheckpointName = WhichCheckpoint,
    trust_code: bool = TrustCode,
):
    """Show test images beside their reconstructions (decoded from the guide's mean code).

    For spoken digits, each test clip and its reconstruction are also written as WAV files
    (both made from spectrograms, so they sound alike apart from what the model changed).
    """
    import torch

    from ..plots import reconstruction_figure

    out = check_out(out, "png or folder")
    model, _, state, test = _open_run(run, device, which, trust_code)
    if not 0 <= start < len(test):
        raise UserError(f"--start must be within 0..{len(test) - 1}, not {start}")
    ncol = min(n, 10)
    n = -(-n // ncol) * ncol
    x, y = test.x[start : start + n], test.y[start : start + n]
    if len(x) < n:
        raise UserError(f"only {len(x)} test images from --start {start}; lower --start or --n")

    def clips():
        with torch.no_grad():
            recon = model.reconstruct(x, y)
        names = [f"{start + i}-{test.classes[y[i]]}-{kind}" for kind in ("input", "reconstruction") for i in range(n)]
        return torch.cat([x, recon]), names

    write_pictures_or_sound(
        run,
        out,
        "reconstruct",
        state.get("features"),
        clips=clips,
        picture="reconstructions.png",
        log=typer.echo,
        figure=lambda path, spectrogram: reconstruction_figure(model, x, y, path, ncol=ncol, spectrogram=spectrogram),
    )


def _index(i: int, test, option: str) -> int:
    if not 0 <= i < len(test):
        raise UserError(f"{option} {i} is not a test image index; use 0..{len(test) - 1}")
    return i


def _class_index(name: str, test, option: str) -> int:
    """A class given by number or by name -> the index of its first test image."""
    classes = test.classes
    label = int(name) if name.isdigit() else (classes.index(name) if name in classes else -1)
    if not 0 <= label < len(classes):
        raise UserError(
            f"{option} {name!r} is not a class of this data set; "
            f"use 0..{len(classes) - 1} or one of {', '.join(classes)}"
        )
    return int((test.y == label).nonzero()[0])


def _pairs(test, from_, to, from_class, to_class) -> list[tuple[int, int]]:
    """The (start, end) test-image indices that --from/--to and --from-class/--to-class name, in order."""
    starts = [_index(i, test, "--from") for i in from_ or []]
    starts += [_class_index(c, test, "--from-class") for c in from_class or []]
    ends = [_index(i, test, "--to") for i in to or []] + [_class_index(c, test, "--to-class") for c in to_class or []]
    if len(starts) != len(ends):
        raise UserError(
            f"{len(starts)} start images but {len(ends)} end images; "
            "give --to (or --to-class) once for every --from (or --from-class)"
        )
    return list(zip(starts, ends))


@command(app, "plot-latent")
@reports_errors
def plot_latent(
    run: Path = RunDir,
    method: ProjectionName = typer.Option(
        "pca", help="How to draw codes of more than 2 dimensions in 2 (tsne needs scikit-learn)."
    ),
    n: Optional[int] = typer.Option(
        None, "--n", help="Use the first N test images.", show_default="the run's whole test set"
    ),
    seed: int = seed_option(0, help="Seed of the t-SNE layout."),
    out: Optional[Path] = typer.Option(None, help="PNG to write.", show_default="<run>/latent.png"),
    device: DeviceName = typer.Option("cpu", help="Where to run the encoder."),
    which: CheckpointName = WhichCheckpoint,
    trust_code: bool = TrustCode,
):
    """Scatter the test set's codes (the guide's means), coloured by class.

    z_dim 2 is drawn as it is; more dimensions are projected. For a cvae a second panel encodes
    the same 100 images under every condition, coloured by the condition, to show what the label moves.
    """
    from ..latent import latent_panels
    from ..plots import latent_figure

    out = check_out(out, "png")
    model, config, state, test = _open_run(run, device, which, trust_code)
    if n is not None:
        if n < 2:
            raise UserError(f"--n must be at least 2, not {n}")
        test = test.head(n)
    panels = latent_panels(model, test, method.value, seed)
    path = latent_figure(
        panels, out or run / "latent.png", title=f"{config.model} on {config.dataset}: codes of {len(test)} test images"
    )
    typer.echo(f"wrote {path}")


@command(app)
@reports_errors
def manifold(
    run: Path = RunDir,
    n: Optional[int] = count_option(
        None, "Grid points per side.", 2, 100, "--n", show_default="20 for one grid, 8 for several"
    ),
    label: Optional[List[int]] = typer.Option(
        None, help="cvae: one grid for this class (repeat for several).", show_default="every class"
    ),
    dims: Tuple[int, int] = typer.Option(
        (0, 1), help="The two latent dimensions to vary (for z_dim > 2; the others stay at 0)."
    ),
    out: Optional[Path] = typer.Option(None, help="PNG to write.", show_default="<run>/manifold.png"),
    device: DeviceName = typer.Option("cpu", help="Where to run the decoder."),
    which: CheckpointName = WhichCheckpoint,
    trust_code: bool = TrustCode,
):
    """Decode a regular grid over the prior's quantiles: the learned manifold of a 2-D latent space.

    With z_dim 2 this is the whole latent space; with more it is a 2-D slice through --dims.
    """
    from ..plots import manifold_figure

    out = check_out(out, "png")
    model, _, state, _ = _open_run(run, device, which, trust_code)
    if not model.generative:
        raise UserError(
            f"{run} holds an autoencoder, whose codes have no prior to take quantiles of; use a vae or cvae run"
        )
    if not all(0 <= d < model.z_dim for d in dims) or dims[0] == dims[1]:
        raise UserError(
            f"--dims must be two different latent dimensions in 0..{model.z_dim - 1}, not {dims[0]} {dims[1]}"
        )
    labels = _labels(model, state["classes"], label)
    if model.conditional and labels is None:
        labels = list(range(len(state["classes"])))
    n = n or (8 if labels and len(labels) > 1 else 20)
    path = manifold_figure(model, out or run / "manifold.png", n=n, labels=labels, classes=state["classes"], dims=dims)
    typer.echo(f"wrote {path}")


@command(app)
@reports_errors
def interpolate(
    run: Path = RunDir,
    from_: Optional[List[int]] = typer.Option(
        None, "--from", help="Test image index to start at (repeat, with --to, for several pairs)."
    ),
    to: Optional[List[int]] = typer.Option(None, help="Test image index to end at."),
    from_class: Optional[List[str]] = typer.Option(
        None, help="Start at the first test image of this class (number or name)."
    ),
    to_class: Optional[List[str]] = typer.Option(None, help="End at the first test image of this class."),
    steps: int = count_option(10, "Images per strip, end points included.", 2, 100),
    spherical: bool = typer.Option(False, help="Also follow the great circle (slerp) under each straight line."),
    label_path: bool = typer.Option(
        False, help="cvae: hold z at the first image's code and move only the condition (morph one class into another)."
    ),
    pairs: int = count_option(
        4, "Without --from/--to: how many random pairs of test images of different classes.", 1, 100
    ),
    seed: int = seed_option(0, help="Seed of the random pairs."),
    out: Optional[Path] = typer.Option(
        None,
        help="PNG to write; for spoken digits, a folder for WAV files and interpolate.png.",
        show_default="<run>/interpolate.png, or <run>/interpolate/",
    ),
    device: DeviceName = typer.Option("cpu", help="Where to run the networks."),
    which: CheckpointName = WhichCheckpoint,
    trust_code: bool = TrustCode,
):
    """Decode codes on the line between two test images' codes, one strip per pair.

    The strip's end points are the two images' reconstructions. For a cvae the condition moves
    from one label to the other along the way. For spoken digits every step is also written as
    a WAV file, strip-<row>-step-<k>.wav.
    """
    import torch

    from ..latent import interpolation_pairs, interpolation_strips
    from ..plots import strips_figure

    out = check_out(out, "png or folder")
    model, _, state, test = _open_run(run, device, which, trust_code)
    if label_path and not model.conditional:
        raise UserError("--label-path needs a conditional model: this run is not a cvae")
    chosen = _pairs(test, from_, to, from_class, to_class) or interpolation_pairs(test.y.cpu(), pairs, seed)
    strips, names = interpolation_strips(model, test, chosen, steps, label_path=label_path, spherical=spherical)
    what = "the condition, with z fixed" if label_path else "codes between test images (end points: reconstructions)"
    wav_names = [f"strip-{row}-step-{k}" for row in range(len(strips)) for k in range(steps)]
    write_pictures_or_sound(
        run,
        out,
        "interpolate",
        state.get("features"),
        clips=lambda: (torch.cat(strips), wav_names),
        picture="interpolate.png",
        figure=lambda path, spectrogram: strips_figure(
            strips, names, path, title=f"interpolating {what}", spectrogram=spectrogram
        ),
        log=typer.echo,
    )


@command(app)
@reports_errors
def traverse(
    run: Path = RunDir,
    index: int = typer.Option(0, help="The test image whose code is the centre."),
    dim: Optional[List[int]] = typer.Option(
        None, help="Latent dimension to vary (repeatable).", show_default="the first 10"
    ),
    steps: int = count_option(9, "Values per dimension.", 2, 100),
    span: float = typer.Option(
        3.0, help=f"Values run from -span to +span (prior standard deviations; at most {MAX_SPAN:g})."
    ),
    out: Optional[Path] = typer.Option(None, help="PNG to write.", show_default="<run>/traverse.png"),
    device: DeviceName = typer.Option("cpu", help="Where to run the networks."),
    which: CheckpointName = WhichCheckpoint,
    trust_code: bool = TrustCode,
):
    """Vary one latent dimension at a time around a test image's code; one row per dimension."""
    import torch

    from ..latent import traverse as traverse_codes
    from ..plots import image_grid

    if not (math.isfinite(span) and 0 < span <= MAX_SPAN):
        raise UserError(
            f"--span must be a number above 0 and at most {MAX_SPAN:g} (prior standard deviations), not {span}"
        )
    out = check_out(out, "png")
    model, _, _, test = _open_run(run, device, which, trust_code)
    index = _index(index, test, "--index")
    dims = list(dim) if dim else list(range(min(model.z_dim, 10)))
    bad = [d for d in dims if not 0 <= d < model.z_dim]
    if bad:
        raise UserError(f"--dim {bad[0]} is not a latent dimension; use 0..{model.z_dim - 1}")
    x, y = test.x[index : index + 1], test.y[index : index + 1]
    with torch.no_grad():
        codes = traverse_codes(model.encode(x, y)[0], dims, torch.linspace(-span, span, steps))
        images = model.decode(codes, y.expand(len(codes)))
    title = f"traversal around test image #{index} ({test.classes[y.item()]}): columns z[d] = {-span:g} .. {span:g}"
    path = image_grid(
        images, out or run / "traverse.png", ncol=steps, title=title, row_labels=[f"z[{d}]" for d in dims]
    )
    typer.echo(f"wrote {path}")
