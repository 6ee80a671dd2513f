"""The trust rule: which code that a run folder or a recipe names may be imported.

A setting that names a part (``model``, ``likelihood``, ``prior``, ``guide``) may point at code:
``path/to/file.py:Class`` or ``package.module:Class`` (parts.py). Importing it runs that code. A
run folder or a recipe can come from someone else, so the names they hold are data, and the code
they point at runs only where the user chose it:

- built-in names and installed entry points are trusted (the user installed them);
- a reference the user gives themselves, on the command line or in Python, is trusted, and
  ``train`` records it *by content* (a SHA-256 of the file, or of the module's files) in the user's
  trust file, so the user's own runs open with no extra flag;
- a reference read from a checkpoint, a ``config.json`` or a recipe is imported only when the code
  it points at is recorded there with the same content, or when the command is given
  ``--trust-code`` (which records it);
- code inside the run folder being opened is never imported, ``--trust-code`` or not: a run folder
  is data, and the one place an author of a run can put a file beside it.

The check is made before anything is imported, on every copy of the settings: the readers of
settings files (checkpoint.load, recipes.load) wrap their reading in :func:`reading`, and
parts.py asks :func:`check` before it imports a reference. Outside :func:`reading` (the user's
own options and code) nothing is refused.

The trust file is ``$PYRO_VAE_TRUST``, else ``$XDG_CONFIG_HOME/pyro-vae/trusted-code.json``
(``~/.config/...``): a JSON list of ``{"sha256", "reference", "path", "trusted"}``. Deleting it
forgets every trust given; each run of a model file then asks for ``--trust-code`` once.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import hashlib
import importlib.machinery
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import UserError
from .files import save_json

try:
    import fcntl
except ImportError:  # Windows: the trust file is written without a lock
    fcntl = None

HOW = "read the code, then pass --trust-code to run it (it is then remembered by its content)"


@dataclass(frozen=True)
class Source:
    """Settings being read from a file that may come from someone else (a checkpoint, config.json, a recipe).

    run_dir: the run folder the file belongs to, if any (code inside it is never imported);
    vouched: the user passed --trust-code.
    """

    run_dir: Path | None = None
    vouched: bool = False


@dataclass(frozen=True)
class Code:
    """What a reference points at, found without importing it: the files that importing would run
    first (a file; or a module and the packages above it) and their SHA-256 together."""

    reference: str
    files: tuple[Path, ...]
    sha256: str


_source: contextvars.ContextVar[Source | None] = contextvars.ContextVar("pyro_vae_settings_source", default=None)


@contextlib.contextmanager
def reading(run_dir: str | os.PathLike | None = None, vouched: bool = False) -> Iterator[None]:
    """Within the block, settings are being read from a file (of the run folder ``run_dir``, if any),
    and the references they name are checked against the trust rule (:func:`check`)."""
    token = _source.set(Source(Path(run_dir) if run_dir is not None else None, vouched))
    try:
        yield
    finally:
        _source.reset(token)


def check(kind: str, name: str) -> None:
    """Before the code that the reference ``name`` (of a ``kind`` of part) points at is imported:
    refuse it in one line where the settings being read (:func:`reading`) come from a file and the
    user has not trusted that code; record it where they vouched for it."""
    source = _source.get()
    if source is None:  # the user's own option or code
        return
    # no file or folder in the message: the readers put theirs before it (checkpoint.load, recipes.load)
    what = f"{kind} {name!r}"
    code = locate(name)
    if code is None:
        module = name.rpartition(":")[0]
        if is_file_reference(module):  # a file that is not there runs nothing: parts.py says where it looked
            return
        raise UserError(
            f"{what}: no module {module} can be found, and nothing was imported; install it, or run from the "
            "folder that holds it"
        )
    if source.run_dir is not None and any(_inside(path, source.run_dir) for path in code.files):
        raise UserError(
            f"{what} is code inside the run folder itself; pyro-vae never imports code from a run folder, not even "
            "with --trust-code (a run is data, and anyone may have written it): move the file out, read it, and "
            "train a run of your own with --model pointing at it"
        )
    if source.vouched:
        _record(code)
        return
    entries = _entries()
    if any(entry.get("sha256") == code.sha256 for entry in entries):
        return
    files = ", ".join(str(path) for path in code.files) or "a built-in module"
    earlier = [
        entry
        for entry in entries
        if entry.get("reference") == name or entry.get("path") == ", ".join(str(p) for p in code.files)
    ]
    how = (
        f"code that has changed since you trusted it on {earlier[-1].get('trusted', '?')}"
        if earlier
        else "code you have not trusted"
    )
    raise UserError(f"{what} ({files}) is {how}, so nothing was imported; {HOW}")


def grant(name: str, run_dir: str | os.PathLike | None = None) -> None:
    """Trust the code that ``name`` points at as it is now, because the user named it themselves;
    nothing for a name that points at no code. ``run_dir``: the run it trains, which cannot hold it."""
    if not is_reference(name):
        return
    code = locate(name)
    if code is None:  # not found: resolving it says why
        return
    if run_dir is not None and any(_inside(path, Path(run_dir)) for path in code.files):
        raise UserError(
            f"{name!r} is a file inside the run folder {run_dir}; pyro-vae never imports code from a run folder "
            "(it is data, and others may share it): keep the code outside it"
        )
    if not any(entry.get("sha256") == code.sha256 for entry in _entries()):
        _record(code)


def is_reference(name: str) -> bool:
    """Whether ``name`` points at code (``module:Class`` or ``file.py:Class``) rather than naming a registered part."""
    return ":" in name


def is_file_reference(where: str) -> bool:
    """Whether the part of a reference before the colon is a file (``path/to/file.py``) rather than a module."""
    return where.endswith(".py") or "/" in where or "\\" in where


def locate(name: str) -> Code | None:
    """The code that the reference ``name`` points at, found as Python would import it (files from
    the current folder; modules on sys.path, the current folder first) but without importing
    anything; None where there is none to find (parts.py then says why)."""
    where = name.rpartition(":")[0]
    if is_file_reference(where):
        path = Path(where)
        files = [path.resolve()] if path.is_file() else None
    else:
        files = _module_files(where)
    if files is None:
        return None
    digest = hashlib.sha256()
    digest.update(where.encode() if not files else b"")  # a built-in module (no file) is known by its name
    for path in files:
        digest.update(path.read_bytes())
    return Code(name, tuple(files), digest.hexdigest())


def _module_files(module: str) -> list[Path] | None:
    """The files that ``import module`` would run: each package's __init__.py on the way, then the module's
    own file; found by the import system's finders, which read no code."""
    files, search, dotted = [], None, ""
    path = [str(Path.cwd()), *sys.path]  # parts.py imports with the current folder first, as `python -m` would
    for part in module.split("."):
        dotted = f"{dotted}.{part}" if dotted else part
        if not part.isidentifier():
            return None
        if search is None:
            spec = importlib.machinery.PathFinder.find_spec(dotted, path) or _meta_path_spec(dotted)
        else:
            spec = importlib.machinery.PathFinder.find_spec(dotted, search)
        if spec is None:
            return None
        if spec.has_location and spec.origin:
            files.append(Path(spec.origin).resolve())
        search = list(spec.submodule_search_locations or [])
    return files


def _meta_path_spec(name: str):
    """A top-level module that no folder on sys.path holds: a built-in one, or one that an editable install maps."""
    for finder in sys.meta_path:
        if isinstance(finder, type) and issubclass(finder, importlib.machinery.PathFinder):
            continue
        find = getattr(finder, "find_spec", None)
        spec = find(name, None) if find else None
        if spec is not None:
            return spec
    return None


def store() -> Path:
    """The user's trust file."""
    if os.environ.get("PYRO_VAE_TRUST"):
        return Path(os.environ["PYRO_VAE_TRUST"])
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config_home / "pyro-vae" / "trusted-code.json"


def _entries() -> list[dict]:
    path = store()
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise UserError(
            f"the trust file {path} cannot be read ({type(e).__name__}); delete it (each model file of a run is "
            "then asked for --trust-code once more)"
        ) from None
    if not isinstance(entries, list):
        raise UserError(f"the trust file {path} is not a list of trusted code; delete it")
    return [entry for entry in entries if isinstance(entry, dict)]


def _record(code: Code) -> None:
    """Add ``code`` to the trust file (read again under a lock, so two processes recording at once keep both)."""
    path = store()
    with _locked(path):
        entries = _entries()
        if any(entry.get("sha256") == code.sha256 for entry in entries):
            return
        entries.append(
            {
                "sha256": code.sha256,
                "reference": code.reference,
                "path": ", ".join(str(p) for p in code.files),
                "trusted": datetime.datetime.now().isoformat(timespec="seconds"),
            }
        )
        save_json(entries, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        yield  # closing the file lets the lock go


def _inside(path: Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())
