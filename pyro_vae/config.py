"""The configuration of a training run: one typed dataclass of plain data, saved in every checkpoint.

A Config holds the settings as they were given (None: left to the data set or the model) and checks
nothing but their types; spec.resolve fills in the rest and validates the run, once. A checkpoint alone
is enough to rebuild the model, so ``sample``, ``reconstruct`` and later tools need nothing but the run
directory.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field, fields
from typing import Optional

from .errors import UserError

DEVICES = ("auto", "cpu", "cuda")
ON_NAN = ("stop", "skip")
AMP = ("none", "bf16")
STEPS = ("auto", "compiled", "eager")
# --step auto compiles the step of runs at least this long, where the compiler's wait (5-60 s on 2 CPU cores) is
# paid back (the default cvae run: 4,680 steps, each epoch 13% faster)
AUTO_COMPILED_STEPS = 2000
MAX_LR = 1e6
# sizes far beyond any use (the published models are 10 to 100 times smaller) that would otherwise fail
# as an allocation error deep inside torch: --hidden-dim 1000000000000 asks for terabytes
MAXIMA = {
    "z_dim": 4096,
    "hidden_dim": 65536,
    "encoder_layers": 64,
    "decoder_layers": 64,
    "batch_size": 1_000_000,
    "particles": 100_000,
    "flow_steps": 256,
}
CLASSIFY_WEIGHT = 50.0  # --labels: alpha, per labelled image of a batch (docs/results.md)
CLASSIFIER = "cnn"  # --labels: the network of q(y|x) (docs/results.md)


def option(default, help: str, *, show_default: str | None = None):
    """A Config field that carries its command-line help: ``train`` and ``compare`` make one option
    of every field (``z_dim`` -> ``--z-dim``), so the text is written here once.

    show_default: what the default means where the field's default is None ("the data set's: ...").
    """
    return field(default=default, metadata={"help": help, "show_default": show_default})


SEEDS = range(
    2**32
)  # what torch.manual_seed and numpy's seeding (pyro.set_rng_seed) take; others fail deep inside them


def check_seed(seed: int) -> int:
    """``seed``, or a UserError naming the seeds there are: one rule for every command's --seed and every run's."""
    if seed not in SEEDS:
        raise UserError(
            f"--seed must be a whole number from 0 to {SEEDS[-1]} (the seeds torch and numpy take), not {seed}"
        )
    return seed


UNITS = {"s": 1, "m": 60, "h": 3600}  # of a duration such as --checkpoint-every 10m


def seconds(duration: str) -> float:
    """A duration as the options write it ("30s", "10m", "1.5h", "0") in seconds, or a UserError."""
    text = duration.strip().lower()
    number, unit = (text[:-1], text[-1]) if text[-1:] in UNITS else (text, "s")
    try:
        value = float(number) * UNITS[unit]
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise UserError(f"--checkpoint-every takes a duration such as 30s, 10m or 1h (0: off), not {duration!r}")
    return value


@dataclass(frozen=True)
class Config:
    """Every setting of a run, immutable; None: the data set's or the model's own choice (spec.resolve fills
    it in). The fields' order is the order of the options in ``train --help``."""

    # the help of model and likelihood is completed by the CLI with the names installed packages add (parts.names)
    model: str = option(
        "cvae",
        "vae: p(z)p(x|z); cvae: conditioned on the label; hvae: two stochastic layers, p(z2)p(z1|z2)p(x|z1); "
        "ae: the deterministic baseline.",
    )
    dataset: str = option("mnist", "Data set; prepared and cached on first use.")
    net: Optional[str] = option(
        None,
        "Encoder/decoder networks: mlp (fully connected: 784-400-z, or as --hidden-dim and the depths say) or conv "
        "(stride-2 convolutions sized from the image).",
        show_default="the data set's: mlp for digits, conv for faces and spectrograms",
    )
    z_dim: int = option(50, "Latent dimensions (2 for latent-space plots).")
    hidden_dim: Optional[int] = option(
        None,
        "Width of the networks' hidden layers.",
        show_default="the model's: 600 for the mlp cvae (400 with --labels), 400 for the others",
    )
    encoder_layers: Optional[int] = option(
        None,
        "mlp: hidden layers of the encoder, each also reading the condition (cvae).",
        show_default="the model's: 2 for cvae (1 with --labels), 1 for the others",
    )
    decoder_layers: Optional[int] = option(
        None,
        "mlp: hidden layers of the decoder, each also reading the condition (cvae).",
        show_default="the model's: 2 for cvae, 1 for the others",
    )
    activation: str = option(
        "relu",
        "mlp: the hidden layers' nonlinearity: relu; tanh (Burda et al.'s networks); gated: a linear unit times a "
        "sigmoid gate, h = (W v) * sigmoid(V v) (Tomczak and Welling's GatedDense).",
    )
    prior: Optional[str] = option(
        None,
        "p(z): standard N(0, I); conditional: a learned Gaussian p(z|y) per class (cvae); mixture: K learned "
        "Gaussians; vamp: the VampPrior, the guide at K learned pseudo-inputs (vae); flow: N(0, I) through "
        "--flow-steps learned autoregressive steps.",
        show_default="the model's: conditional for cvae, standard for the others",
    )
    guide: str = option(
        "diagonal",
        "q(z|x): diagonal Gaussian; full-rank: a Gaussian with a learned covariance per image; iaf: the diagonal "
        "Gaussian followed by --flow-steps inverse autoregressive flow steps.",
    )
    prior_components: Optional[int] = option(
        None,
        "mixture / vamp: the number K of components (of pseudo-inputs for vamp).",
        show_default="10 for mixture, 500 for vamp (Tomczak and Welling's)",
    )
    flow_steps: int = option(2, "flow prior / iaf guide: the number of flow steps.")
    likelihood: Optional[str] = option(
        None,
        "p(x|z): bernoulli (logits); autoregressive: Bernoulli pixels that also read the pixels before them, through "
        "a small masked-convolution network (binary images; docs/reproductions.md); continuous-bernoulli (a density "
        "on [0, 1]); gaussian / laplace with one noise scale, learned unless --likelihood-scale fixes it.",
        show_default="the data set's: bernoulli for digits, gaussian for faces and spectrograms",
    )
    likelihood_scale: Optional[float] = option(
        None,
        "gaussian / laplace: fix the noise scale (pixel values are in [0, 1]) instead of learning it.",
        show_default="learned",
    )
    binarize: Optional[str] = option(
        None,
        "dynamic: a fresh Bernoulli draw of each image every epoch; static: one fixed draw; none: grey levels "
        "(spectrograms: always none); dequantize: grey levels moved uniformly within their 8-bit level, fresh every "
        "epoch, so that a density (gaussian, laplace) bounds the stored images' probability.",
        show_default="the data set's: dynamic for digits",
    )
    flip: Optional[bool] = option(
        None,
        "Flip a random half of every training batch left-right (light augmentation for faces).",
        show_default="the data set's: on for faces, off for digits",
    )
    condition: Optional[str] = option(
        None,
        "celeba: the attributes a cvae is conditioned on, comma-separated, e.g. Smiling,Eyeglasses.",
        show_default="class labels",
    )
    elbo: str = option(
        "trace",
        "trace: Trace_ELBO; meanfield: TraceMeanField_ELBO (closed-form KL); jit: JitTrace_ELBO, Trace_ELBO compiled "
        "once (faster on the CPU); renyi: the Renyi bound of order --alpha; iwae: the importance-weighted bound "
        "(Renyi, alpha 0) with --particles draws.",
    )
    particles: int = option(
        1, "Draws of z per image in each bound estimate, run as one vectorized batch (try 5 with --elbo iwae)."
    )
    alpha: float = option(
        0.5, "--elbo renyi only: the order alpha of the Renyi bound (0 is the IWAE bound; 1 would be the ELBO)."
    )
    beta: float = option(1.0, "Weight of the KL term (1: the ELBO; above 1: a beta-VAE).")
    kl_warmup: int = option(0, "Raise the KL weight linearly from 0 to --beta over this many epochs (0: off).")
    labels: Optional[int] = option(
        None,
        "cvae: keep N training labels (N / classes of each class, chosen by --seed) and hide the rest; the cvae "
        "becomes Kingma et al.'s semi-supervised M2, with a classifier q(y|x) in its guide.",
        show_default="all labels",
    )
    classifier: str = option(
        CLASSIFIER,
        "--labels: the network of q(y|x): cnn, a small convolutional net (classifier.py's); mlp, the encoder's "
        "network (--net) with one hidden layer and K outputs (as in Kingma et al.).",
    )
    classify_weight: float = option(
        CLASSIFY_WEIGHT,
        "--labels: weight alpha of each labelled image's classification loss -log q(y|x) (Kingma et al.'s eq. 9; 0: "
        "the classifier learns from the unlabelled images' bound alone).",
    )
    epochs: Optional[int] = option(
        None,
        "Epochs in all (compare: for each model); with train --resume, the run's own unless given.",
        show_default="the data set's: 20 for digits, 30 for spoken digits, 200 for faces",
    )
    batch_size: Optional[int] = option(
        None, "Images per SVI step.", show_default="the data set's: 256 for digits, 32 for faces and spoken digits"
    )
    lr: Optional[float] = option(
        None,
        "Adam learning rate (compare: all models at this rate; left out, each at its own).",
        show_default="2e-3; 5e-4 for ae with a learned Gaussian or Laplace scale",
    )
    lr_warmup: int = option(
        0,
        "Raise the learning rate linearly to --lr over this many epochs (0: off); "
        "steadies the faces CVAE's start (try 5).",
    )
    lr_schedule: str = option(
        "constant",
        "The learning rate over the run: constant; stages: Burda et al.'s, stage i = 0..7 lasts 3^i epochs at --lr x "
        "10^(-i/7) (3,280 epochs); milestones: x 10^(-1/5) after epochs 200, 350, 500, 750 and 1000 (pythae's); "
        "cosine: half a cosine from --lr to 0 at the last epoch.",
    )
    adam_eps: float = option(
        1e-8, "Adam's epsilon, added to the root of its second-moment estimate (Burda et al. used 1e-4)."
    )
    validation: Optional[int] = option(
        None,
        "Hold out N training images, chosen by --seed, as a validation set: its -ELBO is measured each epoch, and "
        "best.pt keeps the epoch where it was lowest (the test set never chooses).",
        show_default="none",
    )
    early_stopping: Optional[int] = option(
        None,
        "With --validation: "
        "stop when the validation -ELBO has not improved for this many epochs (Tomczak and Welling: 50).",
        show_default="off",
    )
    checkpoint_every: str = option(
        "10m",
        "Inside an epoch, save the point reached this often as well (30s, 10m, 1h; 0: at the end of each epoch "
        "only): a run killed at any moment loses at most that much, and --resume goes on from the saved step.",
    )
    seed: int = option(0, "Seed: the same seed on the same device gives the same numbers.")
    device: str = option("auto", "auto picks CUDA when a GPU is visible, else the CPU.")
    on_nan: str = option(
        "stop", "When the loss turns NaN or infinite: stop (keeping the last good checkpoint) or skip that step."
    )
    train_size: Optional[int] = option(
        None, "Train on the first N images only (quick experiments).", show_default="all"
    )
    test_size: Optional[int] = option(None, "Evaluate on the first N test images only.", show_default="all")
    step: str = option(
        "auto",
        "compiled: Pyro's training step traced once per batch shape into one graph and compiled (the eager step's "
        "numbers, to float rounding; faster where Pyro's Python costs, as with mlp nets: docs/benchmarks.md; the "
        "first step waits 10-60 s for the compiler); eager: Pyro's Python runs on every step; auto: compiled for "
        f"runs of {AUTO_COMPILED_STEPS} steps or more, where the wait pays.",
    )
    compile: bool = option(
        False,
        "torch.compile the networks (the Pyro program stays eager); the first steps wait for the compiler. "
        "Meant for GPUs: on 2 CPU cores it was 6-9% slower than eager (docs/benchmarks.md).",
    )
    amp: str = option(
        "none",
        "bf16: run the networks in bfloat16 under autocast, the ELBO in float32 (for GPUs with bfloat16: A100, H100; "
        "on a CPU it is usually slower).",
    )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """A Config from saved settings (a checkpoint's, or config.json), each checked for its type."""
        check_keys(d)
        hints = typing.get_type_hints(cls)
        return cls(**{name: _typed(name, value, hints[name]) for name, value in d.items()})

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)


def check_keys(d) -> None:
    """Refuse saved settings that are not a mapping of Config's field names to values."""
    if not isinstance(d, dict):
        raise UserError(f"settings must be a mapping of names to values, not {type(d).__name__}")
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise UserError(f"unknown configuration keys {unknown}; the known ones are {sorted(known)}")


def _typed(name: str, value, hint):
    """``value`` as the type ``hint`` (int, float, str, bool, or Optional of one), or a UserError."""
    allowed = (
        [t for t in typing.get_args(hint) if t is not type(None)] if typing.get_origin(hint) is typing.Union else [hint]
    )
    if value is None and len(allowed) < len(typing.get_args(hint) or [hint]):
        return None
    kind = allowed[0]
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    raise UserError(
        f"setting {name} must be {'' if len(allowed) == 1 and hint is kind else 'null or '}{kind.__name__}, "
        f"not {value!r}; fix it or train again"
    )
