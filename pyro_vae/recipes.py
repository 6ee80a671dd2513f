"""Recipes: the settings of a training run in a TOML file, and the published number they reproduce.

    python cli.py train --config recipes/burda-vae.toml              # every setting from the file
    python cli.py train --config recipes/burda-vae.toml --epochs 50  # options given override it

A recipe has a table of settings, named as Config's fields (``z_dim``; ``z-dim`` as the option
spells it is read too), and may say what it reproduces::

    [reproduces]
    paper = "Burda, Grosse and Salakhutdinov (2016), Importance Weighted Autoencoders"
    row = "Table 1, MNIST, one stochastic layer, VAE, k = 1"
    published = 86.76        # the paper's -log p(x), nats per test image
    k = 5000                 # importance samples of the paper's estimate

    [settings]
    model = "vae"
    activation = "tanh"
    ...

A recipe is settings only, never code: the parts it names are resolved like the options' values
(parts.py), and a file or module it names is imported only when the user has trusted that code
(trust.py; ``--trust-code``), since a recipe may come from anyone. The run directory keeps a copy
of the file, as ``recipe.toml``, with the options the command line changed written at its top.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from . import trust
from .config import Config
from .errors import UserError
from .files import save_text
from .spec import Spec, resolve

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

COPY = "recipe.toml"  # the copy a run keeps
RECIPES = Path(__file__).resolve().parent.parent / "recipes"  # the recipes that come with pyro-vae (in its repository)
# what a [reproduces] table may hold: key -> its type
ABOUT = {"paper": str, "row": str, "published": float, "k": int, "notes": str}


@dataclass(frozen=True)
class Recipe:
    """A recipe file read and checked: ``settings`` {Config field: value}, ``reproduces`` (may be
    empty), the file's ``text``, which the run keeps, and ``spec``: the run it describes, with the
    options given on the command line laid over its settings, resolved (spec.resolve)."""

    path: Path
    settings: dict
    reproduces: dict
    text: str
    spec: Spec

    @property
    def name(self) -> str:
        """The file's name without .toml: burda-vae."""
        return self.path.stem


def load(
    path: str | Path,
    overrides: dict | None = None,
    trust_code: bool = False,
    run_dir: Path | None = None,
    world_size: int = 1,
) -> Recipe:
    """The recipe in ``path``, or a UserError of one line naming what is wrong with the file.

    Its settings are checked with ``overrides`` (the options given on the command line) laid over
    them; the code it names is imported only as trust.py allows (``trust_code``: --trust-code).
    run_dir: the run folder that holds this copy of a recipe, whose own files are never imported;
    world_size: the processes the run trains in (spec.resolve).
    """
    path = Path(path)
    if not path.is_file():
        where = f"; the recipes that come with pyro-vae are in {RECIPES}" if RECIPES.is_dir() else ""
        raise UserError(f"recipe {path} does not exist{where}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(
            f"{path} is not a text file in UTF-8 (byte {e.start} is not); a recipe is TOML text: save it as UTF-8"
        ) from None
    try:
        content = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path} is not valid TOML ({e}); fix the file") from None
    unknown = sorted(set(content) - {"settings", "reproduces"})
    if unknown:
        raise UserError(
            f"{path}: unknown table or key {', '.join(unknown)}; "
            "a recipe holds [settings] and, optionally, [reproduces]"
        )
    for table in ("settings", "reproduces"):
        if not isinstance(content.get(table, {}), dict):
            raise UserError(f"{path}: {table} must be a table ([{table}]), not a single value")
    settings = {key.replace("-", "_"): value for key, value in content.get("settings", {}).items()}
    fields = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise UserError(
            f"{path}: unknown setting {', '.join(unknown)}; "
            f"the settings are train's options: {', '.join(sorted(fields))}"
        )
    about = _about(path, content.get("reproduces", {}))
    with trust.reading(run_dir, vouched=trust_code):
        try:  # every value checked now, with the file's name in the message
            spec = resolve(Config.from_dict({**settings, **(overrides or {})}), world_size)
        except UserError as e:
            raise UserError(f"{path}: {e}") from None
    return Recipe(path, settings, about, text, spec)


def _about(path: Path, about: dict) -> dict:
    unknown = sorted(set(about) - set(ABOUT))
    if unknown:
        raise UserError(f"{path}: unknown key {', '.join(unknown)} in [reproduces]; it may hold {', '.join(ABOUT)}")
    for key, value in about.items():
        kind = ABOUT[key]
        ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
        if isinstance(value, bool) or not ok or (kind is float and not math.isfinite(value)):
            raise UserError(
                f"{path}: [reproduces] {key} must be {'a number' if kind is float else kind.__name__}, not {value!r}"
            )
    return about


def keep(recipe: Recipe, run_dir: Path, overrides: dict) -> Path:
    """Write the recipe into ``run_dir`` as recipe.toml, headed by the options that overrode it."""
    given = " ".join(_option(name, value) for name, value in overrides.items()) or "none"
    header = f"# {recipe.path} as this run was started from it; options given on the command line: {given}\n"
    path = Path(run_dir) / COPY
    path.parent.mkdir(parents=True, exist_ok=True)
    save_text(header + recipe.text, path)
    return path


def _option(name: str, value) -> str:
    """A setting as train's option: --z-dim 3, --flip / --no-flip."""
    flag = name.replace("_", "-")
    if isinstance(value, bool):
        return f"--{flag}" if value else f"--no-{flag}"
    return f"--{flag} {value}"
