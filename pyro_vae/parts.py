"""Naming a part (a model, a likelihood, a prior, a guide): a built-in name, an installed plug-in, or the
user's own class.

Every option that names a part (``--model``, ``--likelihood``, ``--prior``, ``--guide``) takes one of:

- a built-in name: ``vae``, ``bernoulli``, ``vamp``, ``iaf``, ... (the registries ``MODELS``,
  ``LIKELIHOODS``, ``PRIORS`` and ``GUIDES``);
- a name an installed package publishes as an entry point, in the group ``pyro_vae.models``,
  ``pyro_vae.likelihoods``, ``pyro_vae.priors`` or ``pyro_vae.guides`` (in its pyproject.toml:
  ``[project.entry-points."pyro_vae.models"]``, ``mixture-vae = "my_package.models:MixturePriorVAE"``);
- ``package.module:Class``, imported like any module (installed, or on PYTHONPATH);
- ``path/to/file.py:Class``, a file of the user's, relative to the folder the command runs in.

A run records the name as it was given, and every command that opens the run resolves it again:
classes are imported from the user's code, never read from a checkpoint (which loads with
``weights_only=True``). A name read from a run or a recipe is imported only as trust.py allows.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path

from . import trust
from .contract import check_guide_class, check_likelihood_class, check_model_class, check_prior_class
from .errors import UserError
from .guides import GUIDES
from .likelihoods import LIKELIHOODS
from .models import MODELS
from .priors import PRIORS
from .trust import is_file_reference, is_reference

HOW = "or name your own class as path/to/file.py:Class or package.module:Class"


#: the built-in parts of each kind, by name (the registries import the parts; no part imports this module)
BUILT_IN = {"model": MODELS, "likelihood": LIKELIHOODS, "prior": PRIORS, "guide": GUIDES}


_CHECKS = {
    "model": check_model_class,
    "likelihood": check_likelihood_class,
    "prior": check_prior_class,
    "guide": check_guide_class,
}


def entry_point_group(kind: str) -> str:
    """The entry-point group in which installed packages publish parts of this kind."""
    return f"pyro_vae.{kind}s"


def _entry_points(kind: str) -> dict:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=entry_point_group(kind))}


def names(kind: str) -> list[str]:
    """The names a part of this kind can be given without a reference: built-in, then installed."""
    built_in = list(BUILT_IN[kind])
    return built_in + [name for name in _entry_points(kind) if name not in built_in]


def short_name(name: str) -> str:
    """A name fit for a folder or a table: the class name of a reference, the name itself otherwise."""
    return name.rpartition(":")[2] if is_reference(name) else name


def resolve(kind: str, name: str):
    """The class that ``name`` names as a part of ``kind`` ("model", "likelihood", "prior", "guide"), checked against
    the contract; a UserError of one line when it cannot be found, imported or used."""
    built_in = BUILT_IN[kind]
    if name in built_in:
        cls = built_in[name]
    elif is_reference(name):
        cls = _import_reference(kind, name)
    else:
        installed = _entry_points(kind)
        if name not in installed:
            raise UserError(f"unknown {kind} {name!r}; choose one of: {', '.join(names(kind))}; {HOW}")
        try:
            cls = installed[name].load()
        except Exception as e:
            raise UserError(
                f"{kind} {name!r} comes from the installed entry point {installed[name].value}, which failed "
                f"to load ({_one_line(e)}); reinstall its package"
            ) from None
    return _CHECKS[kind](cls, name)


def _import_reference(kind: str, name: str):
    where, _, attribute = name.rpartition(":")
    if not where or not attribute.isidentifier():
        raise UserError(
            f"{kind} {name!r} is not a reference to a class: write path/to/file.py:Class or package.module:Class"
        )
    trust.check(kind, name)  # before anything is imported
    if is_file_reference(where):
        module = _import_file(kind, name, Path(where))
    else:
        try:
            with _on_path(Path.cwd()):  # the folder the command runs in, as `python -m` would have it
                module = importlib.import_module(where)
        except Exception as e:
            missing = (
                isinstance(e, ModuleNotFoundError) and e.name and (where == e.name or where.startswith(e.name + "."))
            )
            fix = (
                "install it, or run from the folder that holds it (or add that folder to PYTHONPATH)"
                if missing
                else "fix the module"
            )
            raise UserError(f"{kind} {name!r}: importing {where} failed ({_one_line(e)}); {fix}") from None
    if not hasattr(module, attribute):
        defined = sorted(n for n, v in vars(module).items() if isinstance(v, type) and v.__module__ == module.__name__)
        raise UserError(
            f"{kind} {name!r}: {where} has no {attribute}" + (f" (it defines {', '.join(defined)})" if defined else "")
        )
    return getattr(module, attribute)


def _import_file(kind: str, name: str, path: Path):
    """The module of a Python file, imported once per process (so its classes stay the same objects)."""
    if not path.is_file():
        raise UserError(
            f"{kind} {name!r}: {path} does not exist (looked from {Path.cwd()}); run the command from the "
            "folder you trained in, or put the file back"
        )
    path = path.resolve()
    try:
        return _load_file(path, path.stat().st_mtime_ns)  # a file edited since is imported afresh
    except Exception as e:
        raise UserError(f"{kind} {name!r}: {path} failed while being imported ({_one_line(e)}); fix the file") from None


@functools.lru_cache(maxsize=None)
def _load_file(path: Path, modified: int):
    """The module of the file at ``path`` (absolute), executed once per version (``modified``)."""
    # a module name of its own per file, so two files called models.py do not clash
    module_name = f"pyro_vae_user.{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look a class's module up here
    try:
        with _on_path(path.parent):  # it may import the files beside it, as a script would
            spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


@contextlib.contextmanager
def _on_path(folder: Path):
    """``folder`` first on sys.path while importing (left as it was if it is there already)."""
    entry = str(folder)
    if entry in sys.path:
        yield
        return
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        sys.path.remove(entry)


def _one_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
