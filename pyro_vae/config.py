"""The configuration of a training run: one typed dataclass, saved in every checkpoint.

A checkpoint alone is enough to rebuild the model, so ``sample``, ``reconstruct`` and later
tools need nothing but the run directory.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import typing
from dataclasses import dataclass, field, fields
from typing import Collection, Optional

from .errors import UserError
from .parts import resolve

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


def choices() -> dict[str, tuple[str, ...]]:
    """The allowed value of each option that takes one of a fixed set, read from the registries that
    define them. Options that name a part (model, likelihood, prior, guide) also take the user's classes: parts.py."""
    from .data import BINARIZE, DATASETS
    from .models.semi_supervised import CLASSIFIERS
    from .networks import ACTIVATIONS, NETS
    from .objectives import ELBOS
    from .schedules import SCHEDULES

    return {
        "dataset": tuple(DATASETS),
        "net": NETS,
        "binarize": BINARIZE,
        "elbo": tuple(ELBOS),
        "device": DEVICES,
        "on_nan": ON_NAN,
        "amp": AMP,
        "classifier": CLASSIFIERS,
        "step": STEPS,
        "activation": ACTIVATIONS,
        "lr_schedule": tuple(SCHEDULES),
    }


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


@dataclass
class Config:
    """Every setting of a training run. None means the data set's own choice (data.DATASETS), filled
    in by ``__post_init__``; ``lr`` None means :func:`default_lr`. The fields' order is the order of
    the options in ``train --help``."""

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

    def __post_init__(self):
        from .data import DATASETS, PIXELS

        defaults = DATASETS[self.dataset].defaults if self.dataset in DATASETS else PIXELS
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if None in (
            self.prior,
            self.hidden_dim,
            self.encoder_layers,
            self.decoder_layers,
        ):  # the model's own choice: read from its class
            for name, value in model_defaults(self.model, self.net, self.labels).items():
                if getattr(self, name) is None:
                    setattr(self, name, value)
        if self.lr is None:
            self.lr = default_lr(self.model, self.likelihood, self.likelihood_scale)

    def validate(self) -> "Config":
        """Raise UserError naming the first bad value and what to use instead."""
        for name, allowed in choices().items():
            if getattr(self, name) not in allowed:
                raise UserError(f"unknown {name} {getattr(self, name)!r}; choose one of: {', '.join(allowed)}")
        model, likelihood = (
            resolve("model", self.model),
            resolve("likelihood", self.likelihood),
        )  # imports the user's code
        prior, guide = resolve("prior", self.prior), resolve("guide", self.guide)
        for name in (
            "z_dim",
            "hidden_dim",
            "encoder_layers",
            "decoder_layers",
            "epochs",
            "batch_size",
            "particles",
            "flow_steps",
        ):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
            if getattr(self, name) > MAXIMA.get(name, math.inf):
                raise UserError(f"--{name.replace('_', '-')} must be at most {MAXIMA[name]}, not {getattr(self, name)}")
        for name in ("train_size", "test_size", "validation", "early_stopping"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UserError(
                    f"--{name.replace('_', '-')} must be at least 1 (or left out for all), not {getattr(self, name)}"
                )
        for part in ("encoder", "decoder"):
            if self.net != "mlp" and getattr(self, f"{part}_layers") != 1:
                raise UserError(
                    f"--{part}-layers sets the depth of the mlp {part}; --net {self.net} has its own: leave it out"
                )
        if self.likelihood_scale is not None:
            if "scale" not in inspect.signature(likelihood).parameters:
                raise UserError(
                    f"--likelihood-scale fixes the noise of a gaussian or laplace likelihood, not of {self.likelihood}"
                )
            if not self.likelihood_scale > 0:
                raise UserError(
                    f"--likelihood-scale must be positive (or left out to learn it), not {self.likelihood_scale}"
                )
        seconds(self.checkpoint_every)  # refuses what is not a duration
        check_seed(self.seed)
        if self.early_stopping is not None and self.validation is None:
            raise UserError("--early-stopping watches the validation -ELBO: give --validation N as well (e.g. 10000)")
        if self.activation != "relu" and self.net != "mlp":
            raise UserError(f"--activation sets the mlp's nonlinearity; --net {self.net} has its own: leave it out")
        for name in ("lr", "beta", "alpha", "likelihood_scale", "adam_eps"):
            if getattr(self, name) is not None and not math.isfinite(getattr(self, name)):
                raise UserError(f"--{name.replace('_', '-')} must be a finite number, not {getattr(self, name)}")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, not {self.lr}")
        if self.lr > MAX_LR:  # far beyond any use, and Adam's float32 step overflows past about 3e37
            raise UserError(f"--lr must be at most {MAX_LR:g} (Adam's usual values are 1e-4 to 1e-2), not {self.lr:g}")
        if not self.adam_eps > 0:
            raise UserError(f"--adam-eps must be positive (Adam's default is 1e-8), not {self.adam_eps}")
        if not self.beta > 0:
            raise UserError(f"--beta must be positive, not {self.beta}")
        for name in ("kl_warmup", "lr_warmup"):
            if getattr(self, name) < 0:
                raise UserError(
                    f"--{name.replace('_', '-')} must be 0 (off) or a number of epochs, not {getattr(self, name)}"
                )
        if self.elbo == "renyi" and self.alpha == 1:
            raise UserError("--alpha 1 makes the Renyi bound the ELBO; use --elbo trace, or another alpha")
        if self.elbo == "jit" and self.kl_warmup:
            raise UserError(
                "--elbo jit compiles the KL weight in, so it cannot warm up; use --elbo trace with --kl-warmup"
            )
        if self.elbo == "jit" and (self.compile or self.amp != "none"):
            raise UserError(
                "--elbo jit traces the whole step in float32 with torch.jit; "
                "with --compile or --amp bf16 use --elbo trace (or meanfield)"
            )
        if self.binarize == "dequantize" and likelihood.discrete:
            raise UserError(
                f"--binarize dequantize spreads each grey level over its width, for a density; --likelihood "
                f"{self.likelihood} gives the levels themselves a probability: use --binarize none"
            )
        self.check_step()
        self.check_parts(model, prior, guide)
        self.check_labels()
        return self

    def check_step(self) -> None:
        """Refuse --step compiled with the settings whose step it cannot trace, in one line."""
        if self.step == "compiled" and (reason := self.untraceable()) is not None:
            raise UserError(reason)

    def untraceable(self) -> str | None:
        """Why the compiled step cannot trace this run's step (one line that says what to do), or None
        where it can: the rule behind both --step compiled's refusal and --step auto's choice."""
        if self.compile:
            return (
                "--compile compiles the networks inside the eager step, --step compiled the whole step; use one of them"
            )
        if self.elbo not in ("trace", "meanfield"):
            how = (
                "is Pyro's own compiled step (torch.jit)"
                if self.elbo == "jit"
                else "runs its backward pass itself, out of reach of a trace"
            )
            return (
                f"--step compiled traces Trace_ELBO or TraceMeanField_ELBO, and --elbo {self.elbo} {how}; "
                "use --elbo trace, or --step eager"
            )
        if self.amp != "none":
            return "--amp bf16 trains with the eager step; leave --step out, or pass --step eager"
        if self.labels is not None:
            return (
                "--labels splits each batch by which labels are known, a split the data decides, which a trace "
                "cannot hold; leave --step out, or pass --step eager"
            )
        return None

    def check_labels(self) -> None:
        """Refuse --labels (semi-supervised training) where it cannot work, in one line."""
        if self.labels is None:
            if self.classify_weight != CLASSIFY_WEIGHT:
                raise UserError(
                    "--classify-weight weighs the labelled images of --labels N; leave it out, or give --labels"
                )
            if self.classifier != CLASSIFIER:
                raise UserError(
                    "--classifier is the network of q(y|x), which --labels N adds; leave it out, or give --labels"
                )
            return
        if not _takes_missing_labels(self.model, self.labels):
            raise UserError(
                f"--labels needs a model that learns from unlabelled images: use --model cvae, not {self.model}"
            )
        if self.condition:
            raise UserError("--labels hides class labels, and --condition conditions on attributes; use one of the two")
        if self.elbo != "trace":
            raise UserError(
                f"--labels sums the missing labels out with Pyro's TraceEnum_ELBO, which --elbo {self.elbo} is not; "
                "leave --elbo out (trace)"
            )
        if not (self.classify_weight >= 0 and math.isfinite(self.classify_weight)):
            raise UserError(f"--classify-weight must be 0 or more, not {self.classify_weight}")

    def check_parts(self, model: type, prior: type, guide: type) -> None:
        """Refuse a prior, guide or objective that ``model`` (a class) cannot be combined with, in one line.
        (What a prior needs of the model and guide it is built from, the prior checks itself, in its
        ``check_combination``, when it has one: priors.py.)"""
        taken, defaults = getattr(model, "parts", ()), {f.name: f.default for f in fields(Config)}
        defaults |= model_defaults(self.model, self.net, self.labels)
        for part in ("prior", "guide"):
            if getattr(self, part) != defaults[part] and part not in taken:
                what = (
                    ("has no prior" if part == "prior" else "encodes each image to one point")
                    if not model.generative
                    else f"writes its own {'p(z)' if part == 'prior' else 'q(z|x)'}"
                )
                raise UserError(
                    f"--{part} {getattr(self, part)} cannot be used with --model {self.model}, which {what}; "
                    f"leave --{part} out"
                )
        if self.prior_components is not None:
            if "components" not in inspect.signature(prior).parameters:
                raise UserError(
                    f"--prior-components is the size of a mixture or vamp prior, not of --prior {self.prior}; "
                    "leave it out"
                )
            if self.prior_components < 1:
                raise UserError(f"--prior-components must be at least 1, not {self.prior_components}")
        flows = [
            f"--{part} {getattr(self, part)}"
            for part, cls in (("prior", prior), ("guide", guide))
            if "steps" in inspect.signature(cls).parameters
        ]
        if self.flow_steps != defaults["flow_steps"] and not flows:
            raise UserError(
                f"--flow-steps is the length of a flow prior or an iaf guide, and --prior {self.prior} "
                f"--guide {self.guide} have none; leave it out"
            )
        if self.amp != "none" and flows:  # Pyro sums the flow's log-scales in the networks' precision
            raise UserError(
                f"--amp {self.amp} would compute the log-density of {' and '.join(flows)} in bfloat16; "
                "use --amp none with flows"
            )
        if getattr(prior, "conditional", False) and not model.conditional:
            raise UserError(f"--prior {self.prior} needs a condition: use it with --model cvae, not {self.model}")
        if hasattr(prior, "check_combination"):
            prior.check_combination(model, guide)
        if self.elbo == "meanfield" and not getattr(model, "mean_field", True):
            raise UserError(
                f"--elbo meanfield needs a guide whose latent sites are independent, and {self.model}'s are not "
                f"(see its docstring); use --elbo trace or iwae with --model {self.model}"
            )

    def for_model(self, model: str, given: Collection[str] = ()) -> "Config":
        """These settings for another model, as ``compare`` trains it: a setting at this model's own
        default (model_defaults) takes the other model's, unless it is named in ``given`` (the options
        the user gave, which the CLI knows: ``--hidden-dim 600`` is then 600 for all); --labels (and
        its weight) go to the models that learn from unlabelled images; the others train as they always do."""
        labels = self.labels if _takes_missing_labels(model, self.labels) else None
        mine, theirs = model_defaults(self.model, self.net, self.labels), model_defaults(model, self.net, labels)
        changes = {
            name: theirs[name] for name, value in mine.items() if name not in given and getattr(self, name) == value
        }
        if labels is None and self.labels is not None:
            changes |= {"labels": None, "classify_weight": CLASSIFY_WEIGHT, "classifier": CLASSIFIER}
        return self.replace(model=model, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """A Config from saved settings (a checkpoint's, or config.json), each checked for its type."""
        if not isinstance(d, dict):
            raise UserError(f"settings must be a mapping of names to values, not {type(d).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise UserError(f"unknown configuration keys {unknown}; the known ones are {sorted(known)}")
        hints = typing.get_type_hints(cls)
        return cls(**{name: _typed(name, value, hints[name]) for name, value in d.items()}).validate()

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)


def model_defaults(model: str, net: str | None, labels: int | None = None) -> dict:
    """The settings a model chooses when they are left out: ``--prior`` standard, hidden layers 400
    wide and one of them each way (``--encoder-layers``, ``--decoder-layers``), unless the class
    that ``model`` and ``labels`` build says otherwise in its ``defaults`` (the cvae's: a
    conditional prior, and two 600-wide layers each way). Widths and depths are the mlp's: other
    networks take 400 and 1 (no depth to set)."""
    from .models import model_class

    chosen = {"prior": "standard", "hidden_dim": 400, "encoder_layers": 1, "decoder_layers": 1}
    chosen |= {
        name: value for name, value in getattr(model_class(model, labels), "defaults", {}).items() if name in chosen
    }
    if net != "mlp":
        chosen |= {"hidden_dim": 400, "encoder_layers": 1, "decoder_layers": 1}
    return chosen


def _takes_missing_labels(model: str, labels: int | None) -> bool:
    """Whether ``--labels`` can train ``--model model``: the class it builds (the cvae's semi-supervised
    form, or a user's model) reads y = -1 as a missing label (``missing_labels = True``)."""
    from .models import model_class

    return labels is not None and getattr(model_class(model, labels), "missing_labels", False)


def default_lr(model: str, likelihood: str, likelihood_scale: float | None) -> float:
    """Adam's learning rate when none is given: 2e-3, except for an autoencoder (a model with no
    prior: ``generative = False``) whose Gaussian or Laplace noise scale is learned, 5e-4.

    Measured on faces (docs/results.md): at 2e-3 that autoencoder settles on an average face
    (squared pixel error 49), at 5e-4 it reconstructs as well as the VAE does at 2e-3 (26.0 against
    26.3). The VAE and CVAE learn more slowly at 5e-4 (test -ELBO at epoch 100: VAE -3849 against
    -4273, conditional-prior CVAE -2857 against -4023). A likely reason: with no KL term to keep its
    codes noisy, the autoencoder shrinks its noise scale quickly, and its gradients grow with it.
    """
    autoencoder = not resolve("model", model).generative
    return 5e-4 if autoencoder and likelihood in ("gaussian", "laplace") and likelihood_scale is None else 2e-3


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
