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
"""

from __future__ import annotations

import functools
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional, Tuple

import typer

from pyro_vae import checkpoint, data
from pyro_vae.config import Config, choices
from pyro_vae.contract import device_of
from pyro_vae.errors import Interrupted, UserError
from pyro_vae.latent import PROJECTIONS

app = typer.Typer(
    help="Variational autoencoders written as Pyro probabilistic programs: train, sample, reconstruct, study the latent space, compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Fetch and cache data sets (train does this on first use).", no_args_is_help=True)
app.add_typer(data_app, name="data")

_CHOICES = choices()


def _enum(name: str) -> type[Enum]:
    """A str Enum of an option's allowed values, so --help lists them and typos are refused."""
    return Enum(name.title(), {v: v for v in _CHOICES[name]}, type=str)


DatasetName, NetName, PriorName = _enum("dataset"), _enum("net"), _enum("prior")
BinarizeName, ElboName, DeviceName = _enum("binarize"), _enum("elbo"), _enum("device")
OnNanName, AmpName = _enum("on_nan"), _enum("amp")
ProjectionName = Enum("Projection", {v: v for v in PROJECTIONS}, type=str)
_DEFAULT = Config()


DEBUG = {"on": False}  # set by --debug (or PYRO_VAE_DEBUG=1): show tracebacks instead of one-line errors


@app.callback()
def options(debug: bool = typer.Option(False, "--debug", envvar="PYRO_VAE_DEBUG", help="Show the full traceback of an error, not only its one-line message.")):
    DEBUG["on"] = debug


def reports_errors(command):
    """Turn a UserError into one line on stderr and exit status 2, and Ctrl-C into exit status 130,
    instead of a traceback (``--debug`` shows it)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as e:
            if DEBUG["on"]:
                raise
            typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        except Interrupted as e:  # Ctrl-C during training, after a checkpoint was saved
            typer.secho(f"interrupted: {e}", fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(130) from None
        except KeyboardInterrupt:
            if DEBUG["on"]:
                raise
            typer.secho("interrupted (nothing of this command was saved)", fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(130) from None

    return wrapper


def _value(option: Optional[Enum]) -> Optional[str]:
    """An enum option's value; None (the data set's default) when it was not given."""
    return None if option is None else option.value


RunDir = typer.Argument(..., help="A run directory written by `train` (it holds checkpoint.pt).", show_default=False)


# Training settings that `train` and `compare` share: defined once, so their help and defaults agree.
DatasetOption = typer.Option(_DEFAULT.dataset, help="Data set; prepared and cached on first use.")
NetOption = typer.Option(None, help="Encoder/decoder networks: mlp (784-400-z) or conv (stride-2 convolutions sized from the image).", show_default="the data set's: mlp for digits, conv for faces and spectrograms")
ZDimOption = typer.Option(_DEFAULT.z_dim, help="Latent dimensions (2 for latent-space plots).")
HiddenDimOption = typer.Option(_DEFAULT.hidden_dim, help="Width of the networks' hidden layer.")
PriorOption = typer.Option(_DEFAULT.prior, help="cvae only: standard N(0, I), or a learned conditional p(z|y).")
LikelihoodOption = typer.Option(None, help="p(x|z): bernoulli (logits); continuous-bernoulli (a density on [0, 1]); gaussian / laplace with one noise scale, learned unless --likelihood-scale fixes it.", show_default="the data set's: bernoulli for digits, gaussian for faces and spectrograms")
LikelihoodScaleOption = typer.Option(None, help="gaussian / laplace: fix the noise scale (pixel values are in [0, 1]) instead of learning it.", show_default="learned")
FlipOption = typer.Option(None, "--flip/--no-flip", help="Flip a random half of every training batch left-right (light augmentation for faces).", show_default="the data set's: on for faces, off for digits")
ConditionOption = typer.Option(None, help="celeba: the attributes a cvae is conditioned on, comma-separated, e.g. Smiling,Eyeglasses.", show_default="class labels")
BinarizeOption = typer.Option(None, help="dynamic: a fresh Bernoulli draw of each image every epoch; static: one fixed draw; none: grey levels (spectrograms: always none).", show_default="the data set's: dynamic for digits")
ElboOption = typer.Option(_DEFAULT.elbo, help="trace: Trace_ELBO; meanfield: TraceMeanField_ELBO (closed-form KL); jit: JitTrace_ELBO, Trace_ELBO compiled once (faster on the CPU); renyi: the Renyi bound of order --alpha; iwae: the importance-weighted bound (Renyi, alpha 0) with --particles draws.")
ParticlesOption = typer.Option(_DEFAULT.particles, help="Draws of z per image in each bound estimate, run as one vectorized batch (try 5 with --elbo iwae).")
AlphaOption = typer.Option(_DEFAULT.alpha, help="--elbo renyi only: the order alpha of the Renyi bound (0 is the IWAE bound; 1 would be the ELBO).")
BetaOption = typer.Option(_DEFAULT.beta, help="Weight of the KL term (1: the ELBO; above 1: a beta-VAE).")
KlWarmupOption = typer.Option(_DEFAULT.kl_warmup, help="Raise the KL weight linearly from 0 to --beta over this many epochs (0: off).")
LrWarmupOption = typer.Option(_DEFAULT.lr_warmup, help="Raise the learning rate linearly to --lr over this many epochs (0: off); steadies the faces CVAE's start (try 5).")
BatchSizeOption = typer.Option(None, help="Images per SVI step.", show_default="the data set's: 256 for digits, 32 for faces and spoken digits")
LrOption = typer.Option(None, help="Adam learning rate.", show_default="2e-3; 5e-4 for ae with a learned Gaussian or Laplace scale")
SeedOption = typer.Option(_DEFAULT.seed, help="Seed: the same seed on the same device gives the same numbers.")
OnNanOption = typer.Option(_DEFAULT.on_nan, help="When the loss turns NaN or infinite: stop (keeping the last good checkpoint) or skip that step.")
DeviceOption = typer.Option(_DEFAULT.device, help="auto picks CUDA when a GPU is visible, else the CPU.")
TrainSizeOption = typer.Option(None, help="Train on the first N images only (quick experiments).", show_default="all")
TestSizeOption = typer.Option(None, help="Evaluate on the first N test images only.", show_default="all")
CompileOption = typer.Option(_DEFAULT.compile, "--compile/--no-compile", help="torch.compile the networks (the Pyro program stays eager); the first steps wait for the compiler. Meant for GPUs: on 2 CPU cores it was 6-9% slower than eager (docs/benchmarks.md).")
AmpOption = typer.Option(_DEFAULT.amp, help="bf16: run the networks in bfloat16 under autocast, the ELBO in float32 (for GPUs with bfloat16: A100, H100; on a CPU it is usually slower).")


@app.command()
@reports_errors
def train(
    model: str = typer.Option(_DEFAULT.model, help="vae: p(z)p(x|z); cvae: conditioned on the label; ae: the deterministic baseline."),
    dataset: DatasetName = DatasetOption,
    net: Optional[NetName] = NetOption,
    z_dim: int = ZDimOption,
    hidden_dim: int = HiddenDimOption,
    prior: PriorName = PriorOption,
    likelihood: Optional[str] = LikelihoodOption,
    likelihood_scale: Optional[float] = LikelihoodScaleOption,
    binarize: Optional[BinarizeName] = BinarizeOption,
    flip: Optional[bool] = FlipOption,
    condition: Optional[str] = ConditionOption,
    elbo: ElboName = ElboOption,
    particles: int = ParticlesOption,
    alpha: float = AlphaOption,
    beta: float = BetaOption,
    kl_warmup: int = KlWarmupOption,
    lr_warmup: int = LrWarmupOption,
    epochs: Optional[int] = typer.Option(None, help="Epochs in all.", show_default="the data set's: 20 for digits, 30 for spoken digits, 200 for faces; with --resume, the run's own"),
    batch_size: Optional[int] = BatchSizeOption,
    lr: Optional[float] = LrOption,
    seed: int = SeedOption,
    device: DeviceName = DeviceOption,
    on_nan: OnNanName = OnNanOption,
    train_size: Optional[int] = TrainSizeOption,
    test_size: Optional[int] = TestSizeOption,
    compile: bool = CompileOption,
    amp: AmpName = AmpOption,
    run_dir: Optional[Path] = typer.Option(None, help="Where to write the run.", show_default="runs/<model>-<dataset>-<time>"),
    resume: Optional[Path] = typer.Option(None, help="Continue the run in this directory from its last checkpoint, with its saved settings (only --epochs may change)."),
    progress: bool = typer.Option(True, help="Show a progress bar for each epoch."),
):
    """Train a model with stochastic variational inference (Pyro SVI) and save it in a run directory.

    After every epoch the run directory gets checkpoint.pt, metrics.csv, samples.png and reconstructions.png; an interrupted run continues with --resume.

    Several processes (GPUs, or CPU workers): torchrun --nproc-per-node N cli.py train ...; --batch-size is then the global batch.
    """
    from pyro_vae import distributed
    from pyro_vae.train import Trainer, default_run_dir

    try:  # under torchrun, leave the process group however the run ends
        if resume is not None:
            trainer = Trainer.resume(resume, epochs=epochs, progress=progress)
        else:
            config = Config(
                model=model, dataset=dataset.value, net=_value(net), z_dim=z_dim, hidden_dim=hidden_dim,
                prior=prior.value, likelihood=likelihood, likelihood_scale=likelihood_scale, binarize=_value(binarize), flip=flip, condition=condition, elbo=elbo.value, particles=particles, alpha=alpha,
                beta=beta, kl_warmup=kl_warmup, epochs=epochs, batch_size=batch_size, lr=lr, lr_warmup=lr_warmup, seed=seed,
                device=device.value, on_nan=on_nan.value, train_size=train_size, test_size=test_size,
                compile=compile, amp=amp.value,
            ).validate()  # fmt: skip
            run_dir = run_dir or default_run_dir(config)
            if (run_dir / checkpoint.CHECKPOINT).exists():
                raise UserError(f"{run_dir} already holds a trained run; continue it with --resume {run_dir}, or pick another --run-dir")
            trainer = Trainer(config, run_dir, progress=progress)
        trainer.fit()
    finally:
        distributed.stop()


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
        raise UserError("--attr needs a cvae conditioned on attributes (train one with --dataset celeba --condition ...)")
    import torch

    vector = torch.zeros(len(names))
    for item in (part.strip() for setting in settings for part in setting.split(",") if part.strip()):
        name, _, value = item.partition("=")
        if name not in names or value not in ("0", "1"):
            raise UserError(f"--attr {item!r}: write NAME=1 or NAME=0 with NAME one of {', '.join(names)}")
        vector[names.index(name)] = float(value)
    return [vector]


@app.command()
@reports_errors
def sample(
    run: Path = RunDir,
    n: int = typer.Option(10, "--n", help="Images per row (per class for a cvae; the grid is n x n for a vae). Spoken digits: clips per class."),
    label: Optional[List[int]] = typer.Option(None, help="cvae: draw only this class (repeat for several); faces: the person.", show_default="every class (the first 10)"),
    attr: Optional[List[str]] = typer.Option(None, help="cvae conditioned on attributes (celeba): NAME=1 or NAME=0, repeatable or comma-separated; attributes not named are 0.", show_default="none, then each alone"),
    seed: int = typer.Option(0, help="Seed of the prior draws."),
    out: Optional[Path] = typer.Option(None, help="PNG to write; for spoken digits, a folder for the WAV files and spectrograms.png.", show_default="<run>/sample.png, or <run>/sample/"),
    device: DeviceName = typer.Option("cpu", help="Where to run the decoder."),
):
    """Draw new images from the model's prior and save them as a grid (for a cvae: one row per class).

    For spoken digits, each sample is also turned back into sound (inverse mel scale and
    Griffin-Lim) and written as a 16 kHz WAV file: `sample RUN --label 7 --n 8 --out sevens/`.
    """
    from pyro_vae.checkpoint import load_model
    from pyro_vae.plots import draw_samples, sample_figure
    from pyro_vae.train import resolve_device

    if n < 1:
        raise UserError(f"--n must be at least 1, not {n}")
    model, config, state = load_model(run, resolve_device(device.value))
    if not model.generative:
        raise UserError(f"{run} holds an autoencoder, which has no prior to sample from; use `reconstruct`, or a vae/cvae run")
    attributes = config.condition is not None
    if attributes and label:
        raise UserError(f"{run} is conditioned on attributes ({config.condition}), not labels; use --attr NAME=1")
    labels = _attribute_vector(model, state["classes"], attr) if attr else _labels(model, state["classes"], label)
    if state.get("features") is None:
        path = sample_figure(model, state["classes"], out or run / "sample.png", ncol=n, labels=labels, seed=seed, attributes=attributes)
        typer.echo(f"wrote {path}")
        return
    from pyro_vae.audio import write_clips
    from pyro_vae.plots import image_grid

    folder = out or run / "sample"
    images, labels = draw_samples(model, n, labels, seed)
    classes = state["classes"]
    names = [f"sample-{i}" for i in range(n)] if labels is None else [f"{classes[c]}-{i}" for c in labels for i in range(n)]
    wavs = write_clips(images, names, folder, state["features"], seed=seed)
    rows = None if labels is None else [classes[c] for c in labels]
    title = "samples from the prior" if labels is None else "samples per class (a column shares one z)"
    png = image_grid(images, folder / "spectrograms.png", ncol=min(n, 10), title=title, row_labels=rows if n <= 10 else None, spectrogram=True)
    typer.echo(f"wrote {len(wavs)} WAV files and {png.name} to {folder}")


@app.command()
@reports_errors
def reconstruct(
    run: Path = RunDir,
    n: int = typer.Option(20, "--n", help="How many test images (rounded up to a multiple of 10)."),
    start: int = typer.Option(0, help="Index of the first test image."),
    out: Optional[Path] = typer.Option(None, help="PNG to write; for spoken digits, a folder for WAV files and reconstructions.png.", show_default="<run>/reconstruct.png, or <run>/reconstruct/"),
    device: DeviceName = typer.Option("cpu", help="Where to run the networks."),
):
    """Show test images beside their reconstructions (decoded from the guide's mean code).

    For spoken digits, each test clip and its reconstruction are also written as WAV files
    (both made from spectrograms, so they sound alike apart from what the model changed).
    """
    from pyro_vae.plots import reconstruction_figure

    model, _, state, test = _load_run(run, device.value)
    if n < 1 or not 0 <= start < len(test):
        raise UserError(f"--n must be at least 1 and --start within 0..{len(test) - 1}")
    ncol = min(n, 10)
    n = -(-n // ncol) * ncol
    x, y = test.x[start : start + n], test.y[start : start + n]
    if len(x) < n:
        raise UserError(f"only {len(x)} test images from --start {start}; lower --start or --n")
    if state.get("features") is None:
        path = reconstruction_figure(model, x, y, out or run / "reconstruct.png", ncol=ncol)
        typer.echo(f"wrote {path}")
        return
    import torch

    from pyro_vae.audio import write_clips

    folder = out or run / "reconstruct"
    with torch.no_grad():
        recon = model.reconstruct(x, y)
    names = [f"{start + i}-{test.classes[y[i]]}-{kind}" for kind in ("input", "reconstruction") for i in range(n)]
    wavs = write_clips(torch.cat([x, recon]), names, folder, state["features"])
    png = reconstruction_figure(model, x, y, folder / "reconstructions.png", ncol=ncol, spectrogram=True)
    typer.echo(f"wrote {len(wavs)} WAV files and {png.name} to {folder}")


def _load_run(run: Path, device: str):
    """(model, config, state, test set) of a run directory, on ``device``."""
    from pyro_vae.checkpoint import load_model
    from pyro_vae.train import resolve_device

    torch_device = resolve_device(device)
    model, config, state = load_model(run, torch_device)
    model.eval()
    _, test = data.load(config.dataset, torch_device, config.binarize, config.condition)
    if list(test.image_shape) != list(state["image_shape"]):
        raise UserError(
            f"{config.dataset} is now prepared as {tuple(test.image_shape)} images, but {run} was trained on "
            f"{tuple(state['image_shape'])}; prepare it again with the run's settings (`data prepare {config.dataset} --help`)"
        )
    return model, config, state, test.head(config.test_size)


def _index(i: int, test, option: str) -> int:
    if not 0 <= i < len(test):
        raise UserError(f"{option} {i} is not a test image index; use 0..{len(test) - 1}")
    return i


def _class_index(name: str, test, option: str) -> int:
    """A class given by number or by name -> the index of its first test image."""
    classes = test.classes
    label = int(name) if name.isdigit() else (classes.index(name) if name in classes else -1)
    if not 0 <= label < len(classes):
        raise UserError(f"{option} {name!r} is not a class of this data set; use 0..{len(classes) - 1} or one of {', '.join(classes)}")
    return int((test.y == label).nonzero()[0])


@app.command("plot-latent")
@reports_errors
def plot_latent(
    run: Path = RunDir,
    method: ProjectionName = typer.Option("pca", help="How to draw codes of more than 2 dimensions in 2 (tsne needs scikit-learn)."),
    n: Optional[int] = typer.Option(None, "--n", help="Use the first N test images.", show_default="the run's whole test set"),
    seed: int = typer.Option(0, help="Seed of the t-SNE layout."),
    out: Optional[Path] = typer.Option(None, help="PNG to write.", show_default="<run>/latent.png"),
    device: DeviceName = typer.Option("cpu", help="Where to run the encoder."),
):
    """Scatter the test set's codes (the guide's means), coloured by class.

    z_dim 2 is drawn as it is; more dimensions are projected. For a cvae a second panel encodes
    the same 100 images under every condition, coloured by the condition, to show what the label moves.
    """
    import torch

    from pyro_vae.latent import describe_codes, encode_all, project
    from pyro_vae.plots import latent_figure

    model, config, state, test = _load_run(run, device.value)
    if n is not None:
        if n < 2:
            raise UserError(f"--n must be at least 2, not {n}")
        test = test.head(n)
    points, axes = project(encode_all(model, test), method.value, seed)
    panels = [{"points": points, "labels": test.y, "classes": test.classes, "axes": axes, "title": f"{describe_codes(model)}, coloured by the image's class"}]
    if model.conditional:
        few = test.head(100)
        codes = torch.cat([model.encode(few.x, torch.full_like(few.y, c)) for c in range(len(test.classes))])
        condition = torch.arange(len(test.classes), device=codes.device).repeat_interleave(len(few))
        cond_points, cond_axes = project(codes, method.value, seed)
        panels.append({"points": cond_points, "labels": condition, "classes": test.classes, "axes": cond_axes,
                       "title": "100 images encoded under every condition y", "legend": "condition y"})  # fmt: skip
    path = latent_figure(panels, out or run / "latent.png", title=f"{config.model} on {config.dataset}: codes of {len(test)} test images")
    typer.echo(f"wrote {path}")


@app.command()
@reports_errors
def manifold(
    run: Path = RunDir,
    n: Optional[int] = typer.Option(None, "--n", help="Grid points per side.", show_default="20 for one grid, 8 for several"),
    label: Optional[List[int]] = typer.Option(None, help="cvae: one grid for this class (repeat for several).", show_default="every class"),
    dims: Tuple[int, int] = typer.Option((0, 1), help="The two latent dimensions to vary (for z_dim > 2; the others stay at 0)."),
    out: Optional[Path] = typer.Option(None, help="PNG to write.", show_default="<run>/manifold.png"),
    device: DeviceName = typer.Option("cpu", help="Where to run the decoder."),
):
    """Decode a regular grid over the prior's quantiles: the learned manifold of a 2-D latent space.

    With z_dim 2 this is the whole latent space; with more it is a 2-D slice through --dims.
    """
    from pyro_vae.plots import manifold_figure

    model, _, state, _ = _load_run(run, device.value)
    if not model.generative:
        raise UserError(f"{run} holds an autoencoder, whose codes have no prior to take quantiles of; use a vae or cvae run")
    if n is not None and n < 2:
        raise UserError(f"--n must be at least 2, not {n}")
    if not all(0 <= d < model.z_dim for d in dims) or dims[0] == dims[1]:
        raise UserError(f"--dims must be two different latent dimensions in 0..{model.z_dim - 1}, not {dims[0]} {dims[1]}")
    labels = _labels(model, state["classes"], label)
    if model.conditional and labels is None:
        labels = list(range(len(state["classes"])))
    n = n or (8 if labels and len(labels) > 1 else 20)
    path = manifold_figure(model, out or run / "manifold.png", n=n, labels=labels, classes=state["classes"], dims=dims)
    typer.echo(f"wrote {path}")


@app.command()
@reports_errors
def interpolate(
    run: Path = RunDir,
    from_: Optional[List[int]] = typer.Option(None, "--from", help="Test image index to start at (repeat, with --to, for several pairs)."),
    to: Optional[List[int]] = typer.Option(None, help="Test image index to end at."),
    from_class: Optional[List[str]] = typer.Option(None, help="Start at the first test image of this class (number or name)."),
    to_class: Optional[List[str]] = typer.Option(None, help="End at the first test image of this class."),
    steps: int = typer.Option(10, help="Images per strip, end points included."),
    spherical: bool = typer.Option(False, help="Also follow the great circle (slerp) under each straight line."),
    label_path: bool = typer.Option(False, help="cvae: hold z at the first image's code and move only the condition (morph one class into another)."),
    pairs: int = typer.Option(4, help="Without --from/--to: how many random pairs of test images of different classes."),
    seed: int = typer.Option(0, help="Seed of the random pairs."),
    out: Optional[Path] = typer.Option(None, help="PNG to write; for spoken digits, a folder for WAV files and interpolate.png.", show_default="<run>/interpolate.png, or <run>/interpolate/"),
    device: DeviceName = typer.Option("cpu", help="Where to run the networks."),
):
    """Decode codes on the line between two test images' codes, one strip per pair.

    The strip's end points are the two images' reconstructions. For a cvae the condition moves
    from one label to the other along the way. For spoken digits every step is also written as
    a WAV file, strip-<row>-step-<k>.wav.
    """
    from pyro_vae.latent import interpolation_pairs, interpolation_strip
    from pyro_vae.plots import strips_figure

    model, _, state, test = _load_run(run, device.value)
    if steps < 2:
        raise UserError(f"--steps must be at least 2, not {steps}")
    if label_path and not model.conditional:
        raise UserError("--label-path needs a conditional model: this run is not a cvae")
    starts = [_index(i, test, "--from") for i in from_ or []] + [_class_index(c, test, "--from-class") for c in from_class or []]
    ends = [_index(i, test, "--to") for i in to or []] + [_class_index(c, test, "--to-class") for c in to_class or []]
    if len(starts) != len(ends):
        raise UserError(f"{len(starts)} start images but {len(ends)} end images; give --to (or --to-class) once for every --from (or --from-class)")
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
    if state.get("features") is None:
        path = strips_figure(strips, names, out or run / "interpolate.png", title=f"interpolating {what}")
        typer.echo(f"wrote {path}")
        return
    import torch

    from pyro_vae.audio import write_clips

    folder = out or run / "interpolate"
    wav_names = [f"strip-{row}-step-{k}" for row in range(len(strips)) for k in range(steps)]
    wavs = write_clips(torch.cat(strips), wav_names, folder, state["features"])
    png = strips_figure(strips, names, folder / "interpolate.png", title=f"interpolating {what}", spectrogram=True)
    typer.echo(f"wrote {len(wavs)} WAV files and {png.name} to {folder}")


@app.command()
@reports_errors
def traverse(
    run: Path = RunDir,
    index: int = typer.Option(0, help="The test image whose code is the centre."),
    dim: Optional[List[int]] = typer.Option(None, help="Latent dimension to vary (repeatable).", show_default="the first 10"),
    steps: int = typer.Option(9, help="Values per dimension."),
    span: float = typer.Option(3.0, help="Values run from -span to +span (prior standard deviations)."),
    out: Optional[Path] = typer.Option(None, help="PNG to write.", show_default="<run>/traverse.png"),
    device: DeviceName = typer.Option("cpu", help="Where to run the networks."),
):
    """Vary one latent dimension at a time around a test image's code; one row per dimension."""
    import torch

    from pyro_vae.latent import traverse as traverse_codes
    from pyro_vae.plots import image_grid

    model, _, _, test = _load_run(run, device.value)
    index = _index(index, test, "--index")
    dims = list(dim) if dim else list(range(min(model.z_dim, 10)))
    bad = [d for d in dims if not 0 <= d < model.z_dim]
    if bad:
        raise UserError(f"--dim {bad[0]} is not a latent dimension; use 0..{model.z_dim - 1}")
    if steps < 2 or not span > 0:
        raise UserError("--steps must be at least 2 and --span positive")
    x, y = test.x[index : index + 1], test.y[index : index + 1]
    with torch.no_grad():
        codes = traverse_codes(model.encode(x, y)[0], dims, torch.linspace(-span, span, steps))
        images = model.decode(codes, y.expand(len(codes)))
    title = f"traversal around test image #{index} ({test.classes[y.item()]}): columns z[d] = {-span:g} .. {span:g}"
    path = image_grid(images, out or run / "traverse.png", ncol=steps, title=title, row_labels=[f"z[{d}]" for d in dims])
    typer.echo(f"wrote {path}")


@app.command()
@reports_errors
def curves(
    run: Path = RunDir,
    out: Optional[Path] = typer.Option(None, help="PNG to write.", show_default="<run>/curves.png"),
):
    """Plot the training and test -ELBO, and its reconstruction and KL parts, against epochs."""
    from pyro_vae.plots import curves_figure

    state = checkpoint.load(run)
    config = state["config"]
    path = curves_figure(state["history"], out or run / "curves.png", title=f"{config['model']} on {config['dataset']}: {run.name}")
    typer.echo(f"wrote {path}")


@app.command()
@reports_errors
def evaluate(
    run: Path = RunDir,
    split: str = typer.Option("test", help="Which split to measure: test or train."),
    k: int = typer.Option(1000, "--k", help="Importance samples per image for log p(x) (5000 for numbers to report)."),
    n: Optional[int] = typer.Option(None, "--n", help="Use the first N images of the split.", show_default="the whole split"),
    samples_per_class: int = typer.Option(100, help="cvae: samples drawn per class to measure conditional accuracy."),
    max_rows: int = typer.Option(8192, help="Rows per batch of the importance sampler (lower it when memory is short)."),
    out: Optional[Path] = typer.Option(None, help="JSON file to write.", show_default="<run>/evaluation-<split>-k<k>.json"),
    device: DeviceName = typer.Option("auto", help="Where to run the networks (auto: a GPU when there is one)."),
):
    """Measure a trained model: ELBO and its parts, -log p(x) by importance sampling, active units, conditional accuracy.

    Prints a table and saves the numbers as JSON in the run directory. For a cvae the likelihood is
    log p(x|y), and a classifier trained once per data set (cached) labels the model's samples of
    each class; its own test accuracy is printed beside.
    """
    import torch
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from pyro_vae.classifier import load_classifier
    from pyro_vae.evaluate import evaluate as run_evaluate
    from pyro_vae.files import save_json

    if split not in ("test", "train"):
        raise UserError(f"--split must be test or train, not {split!r}")
    for name, value in (("--k", k), ("--samples-per-class", samples_per_class), ("--max-rows", max_rows)):
        if value < 1:
            raise UserError(f"{name} must be at least 1, not {value}")
    model, config, state, test = _load_run(run, device.value)
    images = test
    if split == "train":
        train, _ = data.load(config.dataset, device_of(model), config.binarize, config.condition)
        if config.binarize == "dynamic":  # one fixed draw, like the test set's, so the number is reproducible
            train = train.binarized(torch.Generator(train.x.device).manual_seed(data.BINARIZE_SEED))
        images = train
    if n is not None:
        if n < 1:
            raise UserError(f"--n must be at least 1, not {n}")
        images = images.head(n)
    classifier = accuracy = None
    if model.conditional and model.generative:
        classifier, accuracy = load_classifier(config.dataset, device_of(model), log=typer.echo)
    with Progress(transient=True) as bar:
        task = bar.add_task(f"log p(x), k={k}", total=len(images))
        result = run_evaluate(model, images, k=k, classifier=classifier, n_per_class=samples_per_class, mirror=bool(config.flip),
                              progress=lambda done, total: bar.update(task, completed=done))  # fmt: skip
    result = {"run": str(run), "model": config.model, "dataset": config.dataset, "split": split} | result
    if accuracy is not None:
        result["classifier_test_accuracy"] = accuracy

    table = Table(title=f"{config.model} on {config.dataset}, {split} split ({len(images)} images): nats per image")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("-ELBO", f"{result['neg_elbo']:.2f}")
    table.add_row("  reconstruction -E_q log p(x|z)", f"{result['recon']:.2f}")
    table.add_row("  KL(q(z|x) || p(z))", f"{result['kl']:.2f}")
    table.add_row("-ELBO in bits per dimension", f"{result['bits_per_dim']:.4f}")
    if "nll" in result:
        what = "-log p(x|y)" if model.conditional else "-log p(x)"
        table.add_row(f"{what}, importance-weighted, k={k}", f"{result['nll']:.2f} ± {result['nll_stderr']:.2f}")
        table.add_row(f"{what} in bits per dimension", f"{result['nll_bits_per_dim']:.4f}")
        table.add_row("active latent units", f"{result['active_units']} of {result['z_dim']}")
    else:
        table.add_row("-log p(x)", "none: the autoencoder has no prior")
    if "nearest_class" in result:
        near = result["nearest_class"]
        invariant = " (or their mirror images: trained with --flip)" if near["mirror"] else ""
        table.add_row(f"classes whose samples are nearest their own test images{invariant}", f"{near['overall']:.1%}")
        table.add_row("  RMS pixel distance to own / other classes' images", f"{near['own']:.4f} / {near['other']:.4f}")
    if "conditional_accuracy" in result:
        per_class = result["conditional_accuracy"]["per_class"]
        table.add_row("conditional accuracy of samples", f"{result['conditional_accuracy']['overall']:.1%}")
        if len(per_class) <= 10:
            table.add_row("  per class", " ".join(f"{c}:{a:.0%}" for c, a in zip(test.classes, per_class)))
        else:
            table.add_row("  lowest and highest class", f"{min(per_class):.0%} and {max(per_class):.0%}")
        if "from_wav" in result["conditional_accuracy"]:
            table.add_row("  written as WAV, read back and featurized again", f"{result['conditional_accuracy']['from_wav']['overall']:.1%}")
        table.add_row("  the judging classifier's test accuracy", f"{accuracy:.1%}")
    Console().print(table)
    path = out or run / f"evaluation-{split}-k{k}.json"
    save_json(result, path)
    typer.echo(f"wrote {path}")


@app.command()
@reports_errors
def compare(
    dataset: DatasetName = DatasetOption,
    net: Optional[NetName] = NetOption,
    z_dim: int = ZDimOption,
    hidden_dim: int = HiddenDimOption,
    prior: PriorName = PriorOption,
    likelihood: Optional[str] = LikelihoodOption,
    likelihood_scale: Optional[float] = LikelihoodScaleOption,
    binarize: Optional[BinarizeName] = BinarizeOption,
    flip: Optional[bool] = FlipOption,
    condition: Optional[str] = ConditionOption,
    elbo: ElboName = ElboOption,
    particles: int = ParticlesOption,
    alpha: float = AlphaOption,
    beta: float = BetaOption,
    kl_warmup: int = KlWarmupOption,
    lr_warmup: int = LrWarmupOption,
    epochs: Optional[int] = typer.Option(None, help="Epochs for each model.", show_default="the data set's: 20 for digits, 30 for spoken digits"),
    batch_size: Optional[int] = BatchSizeOption,
    lr: Optional[float] = LrOption,
    seed: int = SeedOption,
    device: DeviceName = DeviceOption,
    on_nan: OnNanName = OnNanOption,
    train_size: Optional[int] = TrainSizeOption,
    test_size: Optional[int] = TestSizeOption,
    pairs: int = typer.Option(4, help="Pairs of test images to interpolate between."),
    out: Optional[Path] = typer.Option(None, help="Folder for the three runs and the report.", show_default="runs/compare-<dataset>"),
    progress: bool = typer.Option(True, help="Show progress bars."),
):
    """Train ae, vae and cvae with the same settings (reusing runs already in --out) and write a Markdown report.

    The report, <out>/report.md, holds a table of test -ELBO, reconstruction and KL, the latent
    codes side by side, interpolation strips side by side, and CVAE against VAE samples.
    """
    from pyro_vae.compare import compare as run_compare

    config = Config(
        dataset=dataset.value, net=_value(net), z_dim=z_dim, hidden_dim=hidden_dim, prior=prior.value,
        likelihood=likelihood, likelihood_scale=likelihood_scale, binarize=_value(binarize), flip=flip, condition=condition, elbo=elbo.value, particles=particles, alpha=alpha, beta=beta,
        kl_warmup=kl_warmup, epochs=epochs, batch_size=batch_size, lr=lr, lr_warmup=lr_warmup, seed=seed,
        device=device.value, on_nan=on_nan.value, train_size=train_size, test_size=test_size,
    ).validate()  # fmt: skip
    if pairs < 1:
        raise UserError(f"--pairs must be at least 1, not {pairs}")
    run_compare(config, out or Path("runs") / f"compare-{dataset.value}", pairs=pairs, shared_lr=lr is not None,
                progress=progress, log=typer.echo)


@app.command()
@reports_errors
def complete(
    quadrants: Optional[List[int]] = typer.Option(None, help="Visible quadrants: 1 (bottom-left), 2 (left half) or 3 (all but bottom-right); repeatable.", show_default="1 2 3"),
    epochs: int = typer.Option(10, help="Epochs for the baseline and again for the CVAE."),
    k: int = typer.Option(100, "--k", help="Importance samples per test image for the CVAE's -log p(hidden | visible)."),
    z_dim: int = typer.Option(50, help="Latent dimensions of the CVAE."),
    hidden_dim: int = typer.Option(500, help="Width of every network's hidden layers."),
    batch_size: int = typer.Option(128, help="Images per step."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    seed: int = SeedOption,
    device: DeviceName = DeviceOption,
    train_size: Optional[int] = TrainSizeOption,
    test_size: Optional[int] = TestSizeOption,
    out: Path = typer.Option(Path("runs/completion"), help="Folder for the report, the figure and the checkpoints."),
    progress: bool = typer.Option(True, help="Show progress bars."),
):
    """Complete MNIST digits from 1, 2 or 3 visible quadrants: a deterministic baseline against a CVAE.

    Writes <out>/report.md with -log p(hidden | visible) for both beside Pyro's tutorial numbers,
    and completion.png: inputs, truth, the baseline's guess and three CVAE samples each.
    """
    from pyro_vae.completion import run
    from pyro_vae.train import resolve_device

    quadrants = quadrants or [1, 2, 3]
    bad = [q for q in quadrants if q not in (1, 2, 3)]
    if bad:
        raise UserError(f"--quadrants {bad[0]} is not 1, 2 or 3")
    if k < 1:
        raise UserError(f"--k must be at least 1, not {k}")
    # the settings a training run shares get the training run's own checks and messages
    Config(z_dim=z_dim, hidden_dim=hidden_dim, epochs=epochs, batch_size=batch_size, lr=lr,
           train_size=train_size, test_size=test_size).validate()  # fmt: skip
    run(out, quadrants=tuple(quadrants), epochs=epochs, k=k, z_dim=z_dim, hidden_dim=hidden_dim, batch_size=batch_size,
        lr=lr, seed=seed, device=resolve_device(device.value), train_size=train_size, test_size=test_size,
        progress=progress, log=typer.echo)  # fmt: skip


def _flags(options) -> str:
    """Data-preparation keyword names as the command line spells them: source -> --from."""
    spelled = {"source": "from", "features": "n-mels/--hop/--duration"}
    return ", ".join("--" + spelled.get(k, k).replace("_", "-") for k in options)


@data_app.command("prepare")
@reports_errors
def data_prepare(
    name: DatasetName = typer.Argument(..., help="The data set to fetch, check and cache."),
    force: bool = typer.Option(False, help="Fetch again even when it is cached."),
    clips: Optional[int] = typer.Option(None, help="spoken-digits: how many clips to synthesize, as many per digit.", show_default="3000"),
    seed: Optional[int] = typer.Option(None, help="spoken-digits: seed of the voices, speeds and pitches.", show_default="0"),
    from_: Optional[Path] = typer.Option(None, "--from", help="spoken-digits: your own labelled WAV files ({digit}_{speaker}_{n}.wav as in the Free Spoken Digit Dataset, or one subfolder per label as in Speech Commands). image-folder: your folder of pictures (one subfolder per label, or all in one). celeba: the folder in torchvision's CelebA layout (img_align_celeba/ and list_attr_celeba.txt)."),
    n_mels: Optional[int] = typer.Option(None, help="spoken-digits: mel bands (image height).", show_default="64"),
    hop: Optional[int] = typer.Option(None, help="spoken-digits: samples between spectrogram frames (16 kHz).", show_default="250"),
    duration: Optional[float] = typer.Option(None, help="spoken-digits: seconds per clip; frames = duration x 16000 / hop.", show_default="1.0"),
    image_size: Optional[int] = typer.Option(None, help="faces, image-folder, celeba: side of the square images, in pixels.", show_default="64"),
    crop: Optional[int] = typer.Option(None, help="faces, image-folder, celeba: side of the centre square cut out before resizing.", show_default="the shorter side; 148 for celeba"),
    limit: Optional[int] = typer.Option(None, help="image-folder, celeba: read only the first N images (in file-name order).", show_default="all"),
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
        from pyro_vae.audio import MelFeatures

        options["features"] = MelFeatures(**audio)
    takes = data.DATASETS[name.value].options
    refused = [k for k in options if k not in takes]
    if refused:
        raise UserError(f"{name.value} does not take {_flags(refused)}" + (f"; it takes {_flags(takes)}" if takes else "; it has no options"))
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1 (or left out for all), not {limit}")
    path, source = data.prepare(name.value, force=force, **options)
    typer.echo(f"{name.value}: {path} (from {source})")


def main() -> int:
    """The console script: ``app()``, except that a mistyped command or option is one line too."""
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
