"""The options the commands share: one per Config field (train, compare), seeds and counts checked as they are
parsed, the run folder and checkpoint a command opens."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from .. import checkpoint, parts
from ..compare import MODELS as COMPARED
from ..config import Config, check_seed
from ..devices import resolve_device
from ..errors import UserError
from ..latent import PROJECTIONS
from ..measure import SPLITS
from ..spec import choices
from .app import reports_errors


def _enum(name: str, values) -> type[Enum]:
    """A str Enum of an option's allowed values, so --help lists them and typos are refused."""
    return Enum(name.title().replace("_", ""), {v: v for v in values}, type=str)


CHOICES = {name: _enum(name, values) for name, values in choices().items()}  # Config field -> its Enum


DatasetName, DeviceName = CHOICES["dataset"], CHOICES["device"]


ProjectionName = _enum("projection", PROJECTIONS)
SplitName = _enum("split", SPLITS)


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
