"""Writing files so that a crash never leaves a half-written one behind.

Every checkpoint, figure, metrics file and data cache goes through :func:`atomic_path`: the
content is written to a temporary file in the same folder and renamed over the target only
once it is complete (a rename within one file system is atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

import torch


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the mode an ordinary file would have
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_torch(obj, path: str | os.PathLike) -> None:
    """``torch.save`` through a temporary file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_json(obj, path: str | os.PathLike) -> None:
    save_text(json.dumps(obj, indent=2) + "\n", path)
