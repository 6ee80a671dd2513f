"""pyro-vae's command line: train VAEs as Pyro programs, then look inside them from a run directory.

    python cli.py train --model cvae            # train a conditional VAE on MNIST
    python cli.py sample runs/<name> --label 7  # draw sevens from it
    python cli.py reconstruct runs/<name>
    python cli.py plot-latent runs/<name>       # the test set's codes, coloured by class
    python cli.py interpolate runs/<name> --from-class 1 --to-class 7
    python cli.py evaluate runs/<name> --k 1000 # -log p(x) by importance sampling, active units
    python cli.py compare --epochs 10           # ae vs vae vs cvae, as a Markdown report
    python cli.py complete                      # quadrant completion: baseline vs CVAE
    python cli.py data prepare fashion-mnist

The same commands run as ``python -m pyro_vae ...`` and as the ``pyro-vae`` console script; the
root cli.py is a shim that calls :func:`main`. This module only parses and prints: the work is
done in the package (training in training/, a run opened by checkpoint.open_run, the evaluation
table in evaluate.summary_rows, pictures or sound in outputs.py).

The options of ``train`` and ``compare`` are made from the fields of :class:`Config`, whose help
is written beside each field (config.option), so the two commands cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import signal
import sys
import typing
from enum import Enum
from pathlib import Path
from typing import List, Optional, Tuple

import typer

from . import checkpoint, data, parts
from .compare import MODELS as COMPARED
from .config import Config, check_seed
from .contract import device_of
from .devices import resolve_device
from .errors import Interrupted, UserError
from .latent import PROJECTIONS
from .outputs import check_out, run_folder, write_pictures_or_sound
from .spec import choices, resolve, spelled_as_options

app = typer.Typer(
    help=(
        "Variational autoencoders written as Pyro probabilistic programs: "
        "train, sample, reconstruct, study the latent space, compare."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Fetch and cache data sets (train does this on first use).", no_args_is_help=True)
app.add_typer(data_app, name="data")
reproductions_app = typer.Typer(
    help="The reproductions table (docs/reproductions.md): published numbers beside those of our recipe runs.",
    no_args_is_help=True,
)
app.add_typer(reproductions_app, name="reproductions")


def _enum(name: str, values) -> type[Enum]:
    """A str Enum of an option's allowed values, so --help lists them and typos are refused."""
    return Enum(name.title().replace("_", ""), {v: v for v in values}, type=str)


CHOICES = {name: _enum(name, values) for name, values in choices().items()}  # Config field -> its Enum
DatasetName, DeviceName = CHOICES["dataset"], CHOICES["device"]
ProjectionName = _enum("projection", PROJECTIONS)


def prose(text: str | None) -> str | None:
    """A docstring as paragraphs of one line each, so that --help wraps them at the terminal's width.

    Typer's rich help keeps a docstring's line breaks, which cut sentences short on a wide
    terminal and leave ragged lines on a narrow one; blank lines still separate paragraphs.
    """
    if not text:
        return text
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in inspect.cleandoc(text).split("\n\n"))


def command(group: typer.Typer, name: str | None = None):
    """``group.command(name)``, with the function's docstring given to Typer as :func:`prose`."""
    return lambda function: group.command(name, help=prose(function.__doc__))(function)


# --- the training options, made from Config's fields -------------------------------------------

FIELDS = {f.name: f for f in dataclasses.fields(Config)}
_HINTS = typing.get_type_hints(Config)


def config_option(name: str):
    """The typer.Option of Config field ``name`` (``z_dim`` -> ``--z-dim``): default and help from the field.

    Choices are refused by their Enum (see :data:`CHOICES`); model and likelihood stay free strings,
    since they also take installed plug-ins and the user's classes (prior and guide too), and their help lists the names
    known here. Booleans are switches: ``--flip/--no-flip``.
    """
    field = FIELDS[name]
    help = field.metadata["help"]
    if name in ("model", "likelihood", "prior", "guide"):
        help += f" Built in or installed: {', '.join(parts.names(name))}; {parts.HOW}."
    switch = _HINTS[name] in (bool, Optional[bool])
    flag = name.replace("_", "-")
    declarations = [f"--{flag}/--no-{flag}"] if switch else []
    if name == "seed":  # train's, compare's and complete's --seed are every command's
        return seed_option(field.default, help=help)
    return typer.Option(field.default, *declarations, help=help, show_default=field.metadata["show_default"] or True)


def _config_parameter(name: str) -> inspect.Parameter:
    hint = _HINTS[name]
    if name in CHOICES:
        hint = Optional[CHOICES[name]] if FIELDS[name].default is None else CHOICES[name]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=config_option(name), annotation=hint)


def _compared_models() -> inspect.Parameter:
    """compare's --model: repeatable, with the help of Config.model."""
    option = config_option("model")
    option.default = list(COMPARED)
    option.help = f"A model to train and compare, into <out>/<model>; repeat for several. {option.help}"
    return inspect.Parameter("model", inspect.Parameter.KEYWORD_ONLY, default=option, annotation=List[str])


def takes_config(*, repeated_model: bool = False):
    """Give a command an option for every Config field, before its own options; the command receives
    their values as its first argument, ``settings``: {field name: value}, choices as plain strings.

    repeated_model: ``--model`` may be given several times; settings["model"] is then a list.
    """

    def decorate(function):
        own = list(inspect.signature(function, eval_str=True).parameters.values())[1:]  # all but settings
        generated = [
            _compared_models() if name == "model" and repeated_model else _config_parameter(name) for name in FIELDS
        ]
        signature = inspect.Signature([*generated, *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own)])

        @functools.wraps(function)
        def with_settings(**given):
            settings = {name: _plain(given.pop(name)) for name in FIELDS}
            return function(settings, **given)

        with_settings.__signature__ = signature  # what Typer reads the options from
        with_settings.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        return with_settings

    return decorate


def given_options(context: typer.Context, names) -> list[str]:
    """Those of ``names`` (parameters of the running command) that the user set, on the command line
    or through the environment, rather than left at their defaults."""
    return [name for name in names if context.get_parameter_source(name).name not in ("DEFAULT", "DEFAULT_MAP")]


def _plain(value):
    """An option's value as Config takes it: an Enum member as its string."""
    return value.value if isinstance(value, Enum) else value


# --- errors ------------------------------------------------------------------------------------

DEBUG = {"on": False}  # set by --debug (or PYRO_VAE_DEBUG=1): show tracebacks instead of one-line errors


@app.callback()
def options(
    debug: bool = typer.Option(
        False,
        "--debug",
        envvar="PYRO_VAE_DEBUG",
        help="Show the full traceback of an error, not only its one-line message.",
    ),
):
    DEBUG["on"] = debug


def reports_errors(command):
    """Turn a UserError into one line on stderr and exit status 2, and Ctrl-C into exit status 130
    (SIGTERM 143, SIGHUP 129), instead of a traceback (``--debug`` shows it)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with spelled_as_options():  # a setting is named as its option (--lr), not as Python names it (lr)
                return command(*args, **kwargs)
        except UserError as e:
            if DEBUG["on"]:
                raise
            typer.secho(f"error: {one_line(str(e))}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        except MemoryError:  # torch.OutOfMemoryError too: a size no check foresaw, on this machine's memory
            if DEBUG["on"]:
                raise
            typer.secho(
                f"error: {command.__name__.replace('_', '-')} ran out of memory; lower the sizes it was given "
                "(--n, --steps, --pairs, --batch-size, --hidden-dim, --max-rows) or use a device with more memory",
                fg=typer.colors.RED,
                err=True,
            )
            raise typer.Exit(2) from None
        except Interrupted as e:  # Ctrl-C, SIGTERM or SIGHUP during training, after a checkpoint was saved
            by = "" if e.signum == signal.SIGINT else f" by {signal.Signals(e.signum).name}"
            typer.secho(f"interrupted{by}: {e}", fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(128 + e.signum) from None
        except KeyboardInterrupt:
            if DEBUG["on"]:
                raise
            typer.secho("interrupted (nothing of this command was saved)", fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(130) from None

    return wrapper


def one_line(message: str) -> str:
    """``message`` with its control characters written as escapes: a newline in a path stays inside the line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


@reports_errors  # a callback runs as the options are parsed, before the command and its own reports_errors
def _checked_seed(value: Optional[int]) -> Optional[int]:
    return value if value is None else check_seed(value)


def seed_option(default: Optional[int], help: str, **options):
    """A command's --seed: every command's is checked alike, as it is parsed (config.check_seed)."""
    return typer.Option(default, "--seed", help=help, callback=_checked_seed, **options)


def count_option(default: Optional[int], help: str, low: int, high: int, *names: str, **options):
    """An option that counts images, steps or pairs: ``low``..``high``, the bounds named in --help and in the error.

    The maximum keeps a slip of the keyboard from asking for hours of work or more memory than
    the machine has (interpolate --steps 100000 once grew to 19.7 GB before the kernel killed it).
    """

    @reports_errors
    def checked(parameter: typer.CallbackParam, value: Optional[int]) -> Optional[int]:
        if value is not None and not low <= value <= high:
            raise UserError(f"{parameter.opts[0]} must be {low}..{high}, not {value}")
        return value

    return typer.Option(default, *names, help=f"{help} ({low}..{high})", callback=checked, **options)


RunDir = typer.Argument(..., help="A run directory written by `train` (it holds checkpoint.pt).", show_default=False)
TrustCode = typer.Option(
    False,
    "--trust-code",
    help=(
        "Import the model file or module that the run (or recipe) names even though you have not trusted it yet; it "
        "is remembered by its content. Read the code first: a run from someone else can name any code. Never code "
        "inside the run folder."
    ),
)


MAX_SPAN = 10.0  # traverse --span: prior standard deviations; the prior has no mass to show beyond
CheckpointName = _enum("checkpoint", checkpoint.CHECKPOINTS)
WhichCheckpoint = typer.Option(
    "last",
    "--checkpoint",
    help=(
        "last: where training stands (checkpoint.pt); "
        "best: the epoch with the lowest validation -ELBO (best.pt, kept by train --validation N)."
    ),
)


def _open_run(run: Path, device: Enum, which: Enum, trust_code: bool):
    """(model, config, state, test set) of ``run`` on the device named by a --device option, from the
    checkpoint a --checkpoint option names, its code as far as --trust-code allows."""
    return checkpoint.open_run(run, resolve_device(device.value), which.value, trust_code)


# --- commands ----------------------------------------------------------------------------------


@command(app)
@reports_errors
@takes_config()
def train(
    settings: dict,
    context: typer.Context,
    config_file: Optional[Path] = typer.Option(
        None,
        "--config",
        help=(
            "A recipe: a TOML file of settings (recipes/*.toml); "
            "the options given here override it, and the run keeps a copy."
        ),
        show_default=False,
    ),
    run_dir: Optional[str] = typer.Option(
        None,
        help="Where to write the run (a folder).",
        show_default="runs/<model>-<dataset>-<time>, or runs/<recipe>-<time>",
    ),
    resume: Optional[Path] = typer.Option(
        None,
        help=(
            "Continue the run in this directory from its last checkpoint, "
            "with its saved settings (only --epochs may change)."
        ),
    ),
    progress: bool = typer.Option(True, help="Show a progress bar for each epoch."),
    trust_code: bool = TrustCode,
):
    """Train a model with stochastic variational inference (Pyro SVI) and save it in a run directory.

    After every epoch the run directory gets checkpoint.pt, metrics.csv, samples.png and
    reconstructions.png; an interrupted run continues with --resume.

    Recipes that reproduce published numbers: train --config recipes/burda-vae.toml (docs/reproductions.md).

    Several processes (GPUs, or CPU workers): torchrun --nproc-per-node N cli.py train ...; --batch-size
    is then the global batch.
    """
    from . import distributed, lock, recipes, trust
    from .training import Trainer, default_run_dir
    from .training.writers import writes, writing

    try:  # under torchrun, leave the process group however the run ends
        if resume is not None:
            if config_file is not None:
                raise UserError(f"--resume goes on with the settings {resume} was started with; leave --config out")
            # held from loading the checkpoint to the end: no other writer saves in between
            with writing(resume, create=False):
                Trainer.resume(resume, epochs=settings["epochs"], progress=progress, trust_code=trust_code).fit()
            return
        run_dir = run_folder(run_dir)  # refuses an empty one, a file and a name too long to make
        overrides = {name: settings[name] for name in given_options(context, FIELDS)}
        for part in checkpoint.PARTS:  # code the user names here is their own choice, trusted as it is now
            if part in overrides:
                trust.grant(overrides[part], run_dir)
        processes = distributed.launched_size()
        recipe = recipes.load(config_file, overrides, trust_code, world_size=processes) if config_file else None
        spec = recipe.spec if recipe else resolve(Config(**settings), processes)
        run_dir = run_dir or default_run_dir(spec.config, recipe.name if recipe else None)
        if writes():
            lock.check_free(run_dir)  # a run being trained is named as such, before anything is loaded
        _refuse_a_trained_run(run_dir)
        trainer = Trainer(spec, run_dir, progress=progress)
        # held from the check to the end: a run finished or started meanwhile is never written over
        with writing(run_dir):
            _refuse_a_trained_run(run_dir)
            if recipe:
                recipes.keep(recipe, run_dir, overrides)
            trainer.fit()
    finally:
        distributed.stop()


def _refuse_a_trained_run(run_dir: Path) -> None:
    if (run_dir / checkpoint.CHECKPOINT).exists():
        raise UserError(
            f"{run_dir} already holds a trained run; continue it with --resume {run_dir}, or pick another --run-dir"
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
    from .plots import column_shares, draw_samples, image_grid, sample_figure

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
    drawn = functools.cache(
        lambda: draw_samples(model, n, labels, seed)
    )  # spectrograms: (images, row labels), for the WAVs and the grid

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
        return images, [f"sample-{i}" for i in range(n)] if rows is None else [
            f"{classes[c]}-{i}" for c in rows for i in range(n)
        ]

    write_pictures_or_sound(
        run,
        out,
        "sample",
        state.get("features"),
        figure=figure,
        clips=clips,
        picture="spectrograms.png",
        seed=seed,
        log=typer.echo,
    )


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

    from .plots import reconstruction_figure

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
    import torch

    from .latent import describe_codes, encode_all, project
    from .plots import latent_figure

    out = check_out(out, "png")
    model, config, state, test = _open_run(run, device, which, trust_code)
    if n is not None:
        if n < 2:
            raise UserError(f"--n must be at least 2, not {n}")
        test = test.head(n)
    points, axes = project(encode_all(model, test), method.value, seed)
    panels = [
        {
            "points": points,
            "labels": test.y,
            "classes": test.classes,
            "axes": axes,
            "title": f"{describe_codes(model)}, coloured by the image's class",
        }
    ]
    if model.conditional:
        few = test.head(100)
        codes = torch.cat([model.encode(few.x, torch.full_like(few.y, c)) for c in range(len(test.classes))])
        condition = torch.arange(len(test.classes), device=codes.device).repeat_interleave(len(few))
        cond_points, cond_axes = project(codes, method.value, seed)
        panels.append(
            {
                "points": cond_points,
                "labels": condition,
                "classes": test.classes,
                "axes": cond_axes,
                "title": "100 images encoded under every condition y",
                "legend": "condition y",
            }
        )
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
    from .plots import manifold_figure

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

    from .latent import interpolation_pairs, interpolation_strip
    from .plots import strips_figure

    out = check_out(out, "png or folder")
    model, _, state, test = _open_run(run, device, which, trust_code)
    if label_path and not model.conditional:
        raise UserError("--label-path needs a conditional model: this run is not a cvae")
    starts = [_index(i, test, "--from") for i in from_ or []] + [
        _class_index(c, test, "--from-class") for c in from_class or []
    ]
    ends = [_index(i, test, "--to") for i in to or []] + [_class_index(c, test, "--to-class") for c in to_class or []]
    if len(starts) != len(ends):
        raise UserError(
            f"{len(starts)} start images but {len(ends)} end images; "
            "give --to (or --to-class) once for every --from (or --from-class)"
        )
    chosen = list(zip(starts, ends)) or interpolation_pairs(test.y.cpu(), pairs, seed)
    classes, strips, names = test.classes, [], []
    for i, j in chosen:
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

    from .latent import traverse as traverse_codes
    from .plots import image_grid

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


@command(app)
@reports_errors
def curves(
    run: Path = RunDir,
    out: Optional[Path] = typer.Option(None, help="PNG to write.", show_default="<run>/curves.png"),
    trust_code: bool = TrustCode,
):
    """Plot the training and test -ELBO, and its reconstruction and KL parts, against epochs."""
    from .plots import curves_figure

    out = check_out(out, "png")
    state = checkpoint.load(run, trust_code=trust_code)
    config = state["config"]
    path = curves_figure(
        state["history"], out or run / "curves.png", title=f"{config['model']} on {config['dataset']}: {run.name}"
    )
    typer.echo(f"wrote {path}")


@command(app)
@reports_errors
def evaluate(
    run: Path = RunDir,
    split: str = typer.Option("test", help="Which split to measure: test or train."),
    k: int = typer.Option(1000, "--k", help="Importance samples per image for log p(x) (5000 for numbers to report)."),
    n: Optional[int] = typer.Option(
        None, "--n", help="Use the first N images of the split.", show_default="the whole split"
    ),
    samples_per_class: int = typer.Option(100, help="cvae: samples drawn per class to measure conditional accuracy."),
    max_rows: int = typer.Option(
        8192, help="Rows per batch of the importance sampler (lower it when memory is short)."
    ),
    out: Optional[Path] = typer.Option(
        None, help="JSON file to write.", show_default="<run>/evaluation-<split>-k<k>.json"
    ),
    device: DeviceName = typer.Option("auto", help="Where to run the networks (auto: a GPU when there is one)."),
    which: CheckpointName = WhichCheckpoint,
    trust_code: bool = TrustCode,
):
    """Measure a trained model: ELBO and its parts, -log p(x) by importance sampling, active units,
    conditional accuracy.

    Prints a table and saves the numbers as JSON in the run directory. For a cvae the likelihood is
    log p(x|y), and a classifier trained once per data set (cached) labels the model's samples of
    each class; its own test accuracy is printed beside.
    """
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from .classifier import load_classifier
    from .evaluate import evaluate as run_evaluate
    from .evaluate import summary_rows
    from .files import save_json

    if split not in ("test", "train"):
        raise UserError(f"--split must be test or train, not {split!r}")
    for name, value in (("--k", k), ("--samples-per-class", samples_per_class), ("--max-rows", max_rows)):
        if value < 1:
            raise UserError(f"{name} must be at least 1, not {value}")
    out = check_out(out, "json")
    model, config, state, test = _open_run(run, device, which, trust_code)
    images = test
    if split == "train":
        train, _ = data.load(config.dataset, device_of(model), config.binarize, config.condition)
        images = data.fixed_draw(train, config.binarize)  # one fixed draw, like the test set's: a reproducible number
    if n is not None:
        if n < 1:
            raise UserError(f"--n must be at least 1, not {n}")
        images = images.head(n)
    classifier = accuracy = None
    if model.conditional and model.generative:
        classifier, accuracy = load_classifier(config.dataset, device_of(model), log=typer.echo)
    with Progress(transient=True) as bar:
        task = bar.add_task(f"log p(x), k={k}", total=len(images))
        result = run_evaluate(
            model,
            images,
            k=k,
            classifier=classifier,
            n_per_class=samples_per_class,
            mirror=bool(config.flip),
            max_rows=max_rows,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    result = {
        "run": str(run),
        "checkpoint": which.value,
        "epoch": state["epoch"],
        "model": config.model,
        "dataset": config.dataset,
        "split": split,
    } | result
    if accuracy is not None:
        result["classifier_test_accuracy"] = accuracy

    table = Table(title=f"{config.model} on {config.dataset}, {split} split ({len(images)} images): nats per image")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for row in summary_rows(result, test.classes, conditional=model.conditional):
        table.add_row(*row)
    Console().print(table)
    path = out or run / f"evaluation-{split}-k{k}{'-best' if which.value == 'best' else ''}.json"
    save_json(result, path)
    typer.echo(f"wrote {path}")


@command(app)
@reports_errors
@takes_config(repeated_model=True)
def compare(
    settings: dict,
    pairs: int = count_option(4, "Pairs of test images to interpolate between.", 1, 100),
    out: Optional[Path] = typer.Option(
        None, help="Folder for the runs (one per model) and the report.", show_default="runs/compare-<dataset>"
    ),
    progress: bool = typer.Option(True, help="Show progress bars."),
    trust_code: bool = TrustCode,
):
    """Train ae, vae and cvae (or the models --model names) with the same settings, reusing runs already
    in --out, and write a Markdown report.

    The report, <out>/report.md, holds a table of test -ELBO, reconstruction and KL, the latent
    codes side by side, interpolation strips side by side, and the samples of every model that has
    a prior. A model of your own takes part as --model path/to/file.py:Class.
    """
    from .compare import compare as run_compare

    out = check_out(out, "folder")
    models = settings.pop("model")
    given = {name for name, value in settings.items() if value is not None}  # None: left out, each model's own
    spec = resolve(Config(**settings))
    run_compare(
        spec,
        out or Path("runs") / f"compare-{spec.dataset}",
        models=models,
        given=given,
        pairs=pairs,
        shared_lr=settings["lr"] is not None,
        progress=progress,
        log=typer.echo,
        trust_code=trust_code,
    )


@command(app)
@reports_errors
def complete(
    quadrants: Optional[List[int]] = typer.Option(
        None,
        help="Visible quadrants: 1 (bottom-left), 2 (left half) or 3 (all but bottom-right); repeatable.",
        show_default="1 2 3",
    ),
    epochs: int = typer.Option(10, help="Epochs for the baseline and again for the CVAE."),
    k: int = typer.Option(
        100, "--k", help="Importance samples per test image for the CVAE's -log p(hidden | visible)."
    ),
    z_dim: int = typer.Option(50, help="Latent dimensions of the CVAE."),
    hidden_dim: int = typer.Option(500, help="Width of every network's hidden layers."),
    batch_size: int = typer.Option(128, help="Images per step."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    seed: int = config_option("seed"),
    device: DeviceName = config_option("device"),
    train_size: Optional[int] = config_option("train_size"),
    test_size: Optional[int] = config_option("test_size"),
    out: Path = typer.Option(Path("runs/completion"), help="Folder for the report, the figure and the checkpoints."),
    progress: bool = typer.Option(True, help="Show progress bars."),
):
    """Complete MNIST digits from 1, 2 or 3 visible quadrants: a deterministic baseline against a CVAE.

    Writes <out>/report.md with -log p(hidden | visible) for both beside Pyro's tutorial numbers,
    and completion.png: inputs, truth, the baseline's guess and three CVAE samples each.
    """
    from .completion import run

    out = check_out(out, "folder")
    quadrants = quadrants or [1, 2, 3]
    bad = [q for q in quadrants if q not in (1, 2, 3)]
    if bad:
        raise UserError(f"--quadrants {bad[0]} is not 1, 2 or 3")
    if k < 1:
        raise UserError(f"--k must be at least 1, not {k}")
    # the settings a training run shares get the training run's own checks and messages
    resolve(
        Config(
            z_dim=z_dim,
            hidden_dim=hidden_dim,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            train_size=train_size,
            test_size=test_size,
        )
    )
    run(
        out,
        quadrants=tuple(quadrants),
        epochs=epochs,
        k=k,
        z_dim=z_dim,
        hidden_dim=hidden_dim,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=resolve_device(device.value),
        train_size=train_size,
        test_size=test_size,
        progress=progress,
        log=typer.echo,
    )


def _flags(options) -> str:
    """Data-preparation keyword names as the command line spells them: source -> --from."""
    spelled = {"source": "from", "features": "n-mels/--hop/--duration"}
    return ", ".join("--" + spelled.get(k, k).replace("_", "-") for k in options)


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
    limit: Optional[int] = typer.Option(
        None, help="image-folder, celeba: read only the first N images (in file-name order).", show_default="all"
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
        from .audio import MelFeatures

        options["features"] = MelFeatures(**audio)
    takes = data.DATASETS[name.value].options
    refused = [k for k in options if k not in takes]
    if refused:
        raise UserError(
            f"{name.value} does not take {_flags(refused)}"
            + (f"; it takes {_flags(takes)}" if takes else "; it has no options")
        )
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1 (or left out for all), not {limit}")
    path, source = data.prepare(name.value, force=force, **options)
    typer.echo(f"{name.value}: {path} (from {source})")


@command(reproductions_app, "record")
@reports_errors
def reproductions_record(
    run: Path = RunDir,
    which: CheckpointName = WhichCheckpoint,
    k: int = typer.Option(
        5000, "--k", help="The importance samples of the evaluation to read (evaluate --k K wrote it)."
    ),
    hardware: Optional[str] = typer.Option(
        None, help="Where the run trained, in a few words.", show_default="this machine: its GPU, or its CPU and cores"
    ),
    notes: Optional[str] = typer.Option(
        None, help="A sentence for the row: what was cut short, what differs from the paper."
    ),
    rows: Path = typer.Option(Path("docs/reproductions.json"), help="The table's rows."),
    trust_code: bool = TrustCode,
):
    """Add the row of a recipe run (trained with train --config, measured with evaluate --k 5000) to the
    table's rows, and write the table again.

    A row of the same recipe is replaced. The published number comes from the run's copy of the recipe,
    ours from its evaluation JSON, epochs and minutes from its checkpoint.
    """
    from . import reproductions

    row = reproductions.row_of(run, which.value, k, hardware or reproductions.hardware(), trust_code)
    if notes:
        row["notes"] = notes
    reproductions.record(row, rows)
    table = reproductions.write_table(rows, rows.with_suffix(".md"))
    typer.echo(
        f"{row['recipe']}: published {row['published']:.2f}, ours {row['ours']:.2f} ± {row['stderr']:.2f}; "
        f"wrote {rows} and {table}"
    )


@command(reproductions_app, "table")
@reports_errors
def reproductions_table(rows: Path = typer.Option(Path("docs/reproductions.json"), help="The table's rows.")):
    """Write docs/reproductions.md again from the rows in docs/reproductions.json."""
    from . import reproductions

    typer.echo(f"wrote {reproductions.write_table(rows, rows.with_suffix('.md'))}")


def main() -> int:
    """The console script: ``app()``, except that a mistyped command or option is one line too."""
    for name in ("SIGTERM", "SIGHUP"):  # stop as Ctrl-C does: training saves its point, and every lock is let go
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.default_int_handler)
    try:
        return app(standalone_mode=False) or 0
    except typer.TyperException as e:  # Click's usage errors (Typer's public base class of them)
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError":  # nothing was asked for: show what can be
            typer.echo(ctx.get_help() if ctx else str(e), err=True)
        else:
            where = f" (see `{ctx.command_path} --help`)" if ctx else ""
            typer.secho(f"error: {e.format_message()}{where}", fg=typer.colors.RED, err=True)
        return e.exit_code
    except typer.Abort:
        typer.secho("interrupted", fg=typer.colors.YELLOW, err=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
