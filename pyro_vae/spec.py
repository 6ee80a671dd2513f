"""A run, resolved once: a :class:`Config` (plain data) becomes an immutable :class:`Spec`.

:func:`resolve` is the one place a run is validated. It fills in the settings left out (the data set's,
then the model's), finds the classes the part names name (imports the user's code, as trust.py allows),
checks every compatibility rule, and decides which step the run may take. Every entry point (train,
resume, each command that opens a run, compare, recipes) resolves once and hands the Spec on, so code
that holds a Spec can rely on it being valid.

A Spec reads like its settings (``spec.z_dim`` is ``spec.config.z_dim``): models are built from it as
``Class(spec, image_shape, num_classes)``."""

from __future__ import annotations

import contextlib
import contextvars
import math
import re
from dataclasses import dataclass, fields
from typing import Collection

from . import parts
from .build import takes
from .config import (
    AMP,
    CLASSIFIER,
    CLASSIFY_WEIGHT,
    DEVICES,
    MAX_LR,
    MAXIMA,
    ON_NAN,
    STEPS,
    Config,
    check_seed,
    seconds,
)
from .contract import check_model
from .data import BINARIZE, DATASETS, PIXELS
from .errors import UserError
from .models import CVAE, SemiSupervisedCVAE
from .models.semi_supervised import CLASSIFIERS
from .networks import ACTIVATIONS, NETS
from .objectives import ELBOS
from .schedules import SCHEDULES

FIELDS = tuple(f.name for f in fields(Config))
DEFAULTS = {f.name: f.default for f in fields(Config)}
#: the models --labels turns into their semi-supervised form (Kingma et al.'s M2); a class that reads
#: y = -1 as a missing label itself says so with ``missing_labels = True``
SEMI_SUPERVISED = {CVAE: SemiSupervisedCVAE}


def choices() -> dict[str, tuple[str, ...]]:
    """The allowed values of each option that takes one of a fixed set. Options that name a part (model,
    likelihood, prior, guide) also take the user's classes: parts.py."""
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


@dataclass(frozen=True)
class Parts:
    """The classes a run's part names name (built-in, installed or the user's), each checked against the contract."""

    model: type
    likelihood: type
    prior: type
    guide: type


@dataclass(frozen=True)
class Spec:
    """A resolved, validated run: every setting filled in (``config``), the classes of its parts, the number
    of processes it trains in, and why the compiled step cannot trace it (``untraceable``, None where it can)."""

    config: Config
    parts: Parts
    world_size: int = 1
    untraceable: str | None = None

    def __getattr__(self, name: str):
        # a Spec reads as its settings: spec.z_dim is spec.config.z_dim (only the Config's fields)
        if name in FIELDS:
            return getattr(self.config, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


def resolve(config: Config, world_size: int = 1) -> Spec:
    """The run ``config`` describes, in ``world_size`` processes, resolved and validated: a UserError of one
    line names the first bad setting and what to use instead, as the command line spells it (``--lr``)
    under the CLI (:func:`spelled_as_options`), and as Python does (``lr``) elsewhere."""
    try:
        return _resolve(config, world_size)
    except UserError as e:
        if AS_OPTIONS.get():
            raise
        raise type(e)(python_spelling(str(e))) from None


#: whether messages name settings as the command line's options (set by the CLI for each command)
AS_OPTIONS: contextvars.ContextVar[bool] = contextvars.ContextVar("as_options", default=False)


@contextlib.contextmanager
def spelled_as_options():
    """Within: :func:`resolve`'s messages name settings as options (``--lr``), for the CLI."""
    token = AS_OPTIONS.set(True)
    try:
        yield
    finally:
        AS_OPTIONS.reset(token)


def python_spelling(message: str) -> str:
    """A message about options written for the command line (``--hidden-dim``), with the settings named as
    Config's fields (``hidden_dim``)."""

    def field(match: re.Match) -> str:
        name = match.group(1).replace("-", "_")
        return name if name in FIELDS else match.group(0)

    return re.sub(r"--([a-z][a-z0-9-]*)", field, message)


def _resolve(config: Config, world_size: int) -> Spec:
    check_choices(config)
    model = model_class(config.model, config.labels)
    config = with_defaults(config, model)
    found = Parts(
        model,
        parts.resolve("likelihood", config.likelihood),
        parts.resolve("prior", config.prior),
        parts.resolve("guide", config.guide),
    )
    check_values(config, found)
    check_parts(config, found)
    check_labels(config, found.model)
    untraceable = why_untraceable(config)
    check_step(config, untraceable, world_size)
    return Spec(config, found, world_size, untraceable)


def model_class(model: str, labels: int | None = None) -> type:
    """The class ``model`` (``--model``) names; with ``labels`` (``--labels``), the semi-supervised form of a
    model that has one (SEMI_SUPERVISED). A subclass of such a model is refused rather than switched: its
    own changes would be lost in the built-in semi-supervised model."""
    cls = parts.resolve("model", model)
    if labels is None or getattr(cls, "missing_labels", False):
        return cls
    if cls in SEMI_SUPERVISED:
        return SEMI_SUPERVISED[cls]
    for base, semi_supervised in SEMI_SUPERVISED.items():
        if issubclass(cls, base):
            raise UserError(
                f"--labels trains a model that reads y = -1 as a missing label; {cls.__name__} subclasses "
                f"{base.__name__}, whose semi-supervised form is {semi_supervised.__name__}: subclass that "
                f"instead (pyro_vae.models.{semi_supervised.__name__})"
            )
    raise UserError(f"--labels needs a model that learns from unlabelled images: use --model cvae, not {model}")


def build_model(spec: Spec | Config, image_shape, num_classes: int):
    """The model a run describes, with freshly initialized networks, checked against the model contract
    (contract.py); a Config is resolved first."""
    spec = spec if isinstance(spec, Spec) else resolve(spec)
    return check_model(spec.parts.model(spec, tuple(image_shape), num_classes), spec.model)


# --- the settings left out ----------------------------------------------------------------------------


def with_defaults(config: Config, model: type) -> Config:
    """``config`` with each setting left out (None) at its data set's choice (data.DATASETS), then its
    model's (model_defaults), then the default learning rate (default_lr)."""
    own = DATASETS[config.dataset].defaults if config.dataset in DATASETS else PIXELS
    config = config.replace(**{name: value for name, value in own.items() if getattr(config, name) is None})
    chosen = model_defaults(model, config.net)
    config = config.replace(**{name: value for name, value in chosen.items() if getattr(config, name) is None})
    if config.lr is None:
        config = config.replace(lr=default_lr(model, config.likelihood, config.likelihood_scale))
    return config


def model_defaults(model: type, net: str | None) -> dict:
    """The settings a model class chooses when they are left out: ``--prior`` standard, hidden layers 400
    wide and one of them each way (``--encoder-layers``, ``--decoder-layers``), unless the class says
    otherwise in its ``defaults`` (the cvae's: a conditional prior, and two 600-wide layers each way).
    Widths and depths are the mlp's: other networks take 400 and 1 (no depth to set)."""
    chosen = {"prior": "standard", "hidden_dim": 400, "encoder_layers": 1, "decoder_layers": 1}
    chosen |= {name: value for name, value in getattr(model, "defaults", {}).items() if name in chosen}
    if net != "mlp":
        chosen |= {"hidden_dim": 400, "encoder_layers": 1, "decoder_layers": 1}
    return chosen


def default_lr(model: type, likelihood: str, likelihood_scale: float | None) -> float:
    """Adam's learning rate when none is given: 2e-3, except for an autoencoder (a model with no
    prior: ``generative = False``) whose Gaussian or Laplace noise scale is learned, 5e-4.

    Measured on faces (docs/results.md): at 2e-3 that autoencoder settles on an average face
    (squared pixel error 49), at 5e-4 it reconstructs as well as the VAE does at 2e-3 (26.0 against
    26.3). The VAE and CVAE learn more slowly at 5e-4 (test -ELBO at epoch 100: VAE -3849 against
    -4273, conditional-prior CVAE -2857 against -4023). A likely reason: with no KL term to keep its
    codes noisy, the autoencoder shrinks its noise scale quickly, and its gradients grow with it.
    """
    autoencoder = not model.generative
    return 5e-4 if autoencoder and likelihood in ("gaussian", "laplace") and likelihood_scale is None else 2e-3


def for_model(spec: Spec, model: str, given: Collection[str] = ()) -> Config:
    """These settings for another model, as ``compare`` trains it: a setting at this model's own default
    (model_defaults) takes the other model's, unless it is named in ``given`` (the options the user gave:
    ``--hidden-dim 600`` is then 600 for all); ``labels`` (and its weight) go to the models that learn from
    unlabelled images; the others train as they always do. Resolve the result to train it."""
    config = spec.config
    cls = parts.resolve("model", model)
    labels = config.labels if _takes_missing_labels(cls, config.labels) else None
    mine = model_defaults(spec.parts.model, config.net)
    theirs = model_defaults(model_class(model, labels), config.net)
    changes = {
        name: theirs[name] for name, value in mine.items() if name not in given and getattr(config, name) == value
    }
    if labels is None and config.labels is not None:
        changes |= {"labels": None, "classify_weight": CLASSIFY_WEIGHT, "classifier": CLASSIFIER}
    return config.replace(model=model, **changes)


def _takes_missing_labels(cls: type, labels: int | None) -> bool:
    """Whether ``--labels`` can train the model class ``cls``: it, or its semi-supervised form, reads y = -1
    as a missing label (``missing_labels = True``)."""
    return labels is not None and getattr(SEMI_SUPERVISED.get(cls, cls), "missing_labels", False)


# --- the rules --------------------------------------------------------------------------------------


def check_choices(config: Config) -> None:
    """Refuse a setting outside its fixed set of values."""
    for name, allowed in choices().items():
        value = getattr(config, name)
        if value is not None and value not in allowed:
            raise UserError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")


COUNTS = ("z_dim", "hidden_dim", "encoder_layers", "decoder_layers", "epochs", "batch_size", "particles", "flow_steps")


def check_values(config: Config, found: Parts) -> None:
    """Refuse a setting out of its range, or one that another setting makes meaningless."""
    for name in COUNTS:
        flag, value = f"--{name.replace('_', '-')}", getattr(config, name)
        if value < 1:
            raise UserError(f"{flag} must be at least 1, not {value}")
        if value > MAXIMA.get(name, math.inf):
            raise UserError(f"{flag} must be at most {MAXIMA[name]}, not {value}")
    for name in ("train_size", "test_size", "validation", "early_stopping"):
        if getattr(config, name) is not None and getattr(config, name) < 1:
            raise UserError(
                f"--{name.replace('_', '-')} must be at least 1 (or left out for all), not {getattr(config, name)}"
            )
    for part in ("encoder", "decoder"):
        if config.net != "mlp" and getattr(config, f"{part}_layers") != 1:
            raise UserError(
                f"--{part}-layers sets the depth of the mlp {part}; --net {config.net} has its own: leave it out"
            )
    if config.likelihood_scale is not None:
        if not takes(found.likelihood, "scale"):
            raise UserError(
                f"--likelihood-scale fixes the noise of a gaussian or laplace likelihood, not of {config.likelihood}"
            )
        if not config.likelihood_scale > 0:
            raise UserError(
                f"--likelihood-scale must be positive (or left out to learn it), not {config.likelihood_scale}"
            )
    seconds(config.checkpoint_every)  # refuses what is not a duration
    check_seed(config.seed)
    if config.early_stopping is not None and config.validation is None:
        raise UserError("--early-stopping watches the validation -ELBO: give --validation N as well (e.g. 10000)")
    if config.activation != "relu" and config.net != "mlp":
        raise UserError(f"--activation sets the mlp's nonlinearity; --net {config.net} has its own: leave it out")
    check_numbers(config)
    if config.binarize == "dequantize" and found.likelihood.discrete:
        raise UserError(
            f"--binarize dequantize spreads each grey level over its width, for a density; --likelihood "
            f"{config.likelihood} gives the levels themselves a probability: use --binarize none"
        )


def check_numbers(config: Config) -> None:
    """Refuse a rate, weight or order that is not a finite number in its range."""
    for name in ("lr", "beta", "alpha", "likelihood_scale", "adam_eps"):
        if getattr(config, name) is not None and not math.isfinite(getattr(config, name)):
            raise UserError(f"--{name.replace('_', '-')} must be a finite number, not {getattr(config, name)}")
    if not config.lr > 0:
        raise UserError(f"--lr must be positive, not {config.lr}")
    if config.lr > MAX_LR:  # far beyond any use, and Adam's float32 step overflows past about 3e37
        raise UserError(f"--lr must be at most {MAX_LR:g} (Adam's usual values are 1e-4 to 1e-2), not {config.lr:g}")
    if not config.adam_eps > 0:
        raise UserError(f"--adam-eps must be positive (Adam's default is 1e-8), not {config.adam_eps}")
    if not config.beta > 0:
        raise UserError(f"--beta must be positive, not {config.beta}")
    for name in ("kl_warmup", "lr_warmup"):
        if getattr(config, name) < 0:
            raise UserError(
                f"--{name.replace('_', '-')} must be 0 (off) or a number of epochs, not {getattr(config, name)}"
            )
    if config.elbo == "renyi" and config.alpha == 1:
        raise UserError("--alpha 1 makes the Renyi bound the ELBO; use --elbo trace, or another alpha")
    if config.elbo == "jit" and config.kl_warmup:
        raise UserError("--elbo jit compiles the KL weight in, so it cannot warm up; use --elbo trace with --kl-warmup")
    if config.elbo == "jit" and (config.compile or config.amp != "none"):
        raise UserError(
            "--elbo jit traces the whole step in float32 with torch.jit; "
            "with --compile or --amp bf16 use --elbo trace (or meanfield)"
        )


def check_parts(config: Config, found: Parts) -> None:
    """Refuse a prior, guide or objective that the model cannot be combined with, in one line. (What a prior
    needs of the model and guide it is built from, the prior checks itself, in its ``check_combination``,
    when it has one: priors.py.)"""
    model, prior, guide = found.model, found.prior, found.guide
    taken, defaults = getattr(model, "parts", ()), DEFAULTS | model_defaults(model, config.net)
    for part in ("prior", "guide"):
        if getattr(config, part) != defaults[part] and part not in taken:
            what = (
                ("has no prior" if part == "prior" else "encodes each image to one point")
                if not model.generative
                else f"writes its own {'p(z)' if part == 'prior' else 'q(z|x)'}"
            )
            raise UserError(
                f"--{part} {getattr(config, part)} cannot be used with --model {config.model}, which {what}; "
                f"leave --{part} out"
            )
    if config.prior_components is not None:
        if not takes(prior, "components"):
            raise UserError(
                f"--prior-components is the size of a mixture or vamp prior, not of --prior {config.prior}; "
                "leave it out"
            )
        if config.prior_components < 1:
            raise UserError(f"--prior-components must be at least 1, not {config.prior_components}")
    flows = [
        f"--{part} {getattr(config, part)}" for part, cls in (("prior", prior), ("guide", guide)) if takes(cls, "steps")
    ]
    if config.flow_steps != defaults["flow_steps"] and not flows:
        raise UserError(
            f"--flow-steps is the length of a flow prior or an iaf guide, and --prior {config.prior} "
            f"--guide {config.guide} have none; leave it out"
        )
    if config.amp != "none" and flows:  # Pyro sums the flow's log-scales in the networks' precision
        raise UserError(
            f"--amp {config.amp} would compute the log-density of {' and '.join(flows)} in bfloat16; "
            "use --amp none with flows"
        )
    if getattr(prior, "conditional", False) and not model.conditional:
        raise UserError(f"--prior {config.prior} needs a condition: use it with --model cvae, not {config.model}")
    if hasattr(prior, "check_combination"):
        prior.check_combination(model, guide)
    if config.elbo == "meanfield" and not getattr(model, "mean_field", True):
        raise UserError(
            f"--elbo meanfield needs a guide whose latent sites are independent, and {config.model}'s are not "
            f"(see its docstring); use --elbo trace or iwae with --model {config.model}"
        )


def check_labels(config: Config, model: type) -> None:
    """Refuse ``--labels`` (semi-supervised training) where it cannot work, in one line."""
    if config.labels is None:
        if config.classify_weight != CLASSIFY_WEIGHT:
            raise UserError(
                "--classify-weight weighs the labelled images of --labels N; leave it out, or give --labels"
            )
        if config.classifier != CLASSIFIER:
            raise UserError(
                "--classifier is the network of q(y|x), which --labels N adds; leave it out, or give --labels"
            )
        return
    if not getattr(model, "missing_labels", False):
        raise UserError(
            f"--labels needs a model that learns from unlabelled images: use --model cvae, not {config.model}"
        )
    if config.condition:
        raise UserError("--labels hides class labels, and --condition conditions on attributes; use one of the two")
    if config.elbo != "trace":
        raise UserError(
            f"--labels sums the missing labels out with Pyro's TraceEnum_ELBO, which --elbo {config.elbo} is not; "
            "leave --elbo out (trace)"
        )
    if not (config.classify_weight >= 0 and math.isfinite(config.classify_weight)):
        raise UserError(f"--classify-weight must be 0 or more, not {config.classify_weight}")


# --- the step -----------------------------------------------------------------------------------------


def why_untraceable(config: Config) -> str | None:
    """Why the compiled step cannot trace this run's step (one line that says what to do), or None where it
    can: the rule behind both ``--step compiled``'s refusal and ``--step auto``'s choice."""
    if config.compile:
        return "--compile compiles the networks inside the eager step, --step compiled the whole step; use one of them"
    if config.elbo not in ("trace", "meanfield"):
        how = (
            "is Pyro's own compiled step (torch.jit)"
            if config.elbo == "jit"
            else "runs its backward pass itself, out of reach of a trace"
        )
        return (
            f"--step compiled traces Trace_ELBO or TraceMeanField_ELBO, and --elbo {config.elbo} {how}; "
            "use --elbo trace, or --step eager"
        )
    if config.amp != "none":
        return "--amp bf16 trains with the eager step; leave --step out, or pass --step eager"
    if config.labels is not None:
        return (
            "--labels splits each batch by which labels are known, a split the data decides, which a trace "
            "cannot hold; leave --step out, or pass --step eager"
        )
    return None


def check_step(config: Config, untraceable: str | None, world_size: int) -> None:
    """Refuse a step the run cannot take: ``--step compiled`` where it cannot trace the step or under
    torchrun, an objective that cannot train in several processes, a batch that does not split over them."""
    if config.step == "compiled" and untraceable is not None:
        raise UserError(untraceable)
    if world_size > 1:
        if config.step == "compiled":
            raise UserError(
                "--step compiled trains in one process; under torchrun leave --step out, or pass --step eager"
            )
        if config.elbo in ("renyi", "iwae"):
            raise UserError(
                f"--elbo {config.elbo} cannot train in several processes (Pyro runs its backward pass "
                "itself); use --elbo trace under torchrun"
            )
        if config.batch_size % world_size:
            raise UserError(
                f"--batch-size {config.batch_size} does not split evenly over {world_size} processes; "
                f"use a multiple of {world_size}"
            )
