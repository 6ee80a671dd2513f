"""Writing files so that a crash never leaves a half-written one behind.

Every checkpoint, figure, metrics file and data cache goes through :func:`atomic_path`: the
content is written to a temporary file in the same folder and renamed over the target only
once it is complete (a rename within one file system is atomic on POSIX and Windows). When the
disk is full or the folder is read-only, the write stops with a :class:`UserError` that says so,
and the previous version of the file is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

import torch

from .errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
        os.close(fd)
        tmp = Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the mode an ordinary file would have
        yield tmp
        os.replace(tmp, path)
    except OSError as e:  # disk full, file too large, read-only or missing folder, no permission, a bad name
        raise UserError(
            f"cannot write {path}: {e.strerror or e}; {_fix(e.errno)} (the previous {path.name}, if any, is unchanged)"
        ) from e
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


# what to do about each reason a write fails; a full disk is the one that more space cures
FIXES = {
    errno.ENOSPC: "free some disk space",
    errno.EFBIG: "free some disk space, or write to a file system that takes large files",
    errno.EDQUOT: "free some of your disk quota",
    errno.ENAMETOOLONG: "choose a shorter name (at most 255 bytes a name)",
    errno.EISDIR: "that is a folder: name a file inside it",
    errno.ENOTDIR: "a part of that path is a file, not a folder: choose another path",
    errno.EEXIST: "a part of that path is a file, not a folder: choose another path",  # as mkdir reports it
    errno.EACCES: "choose a folder you may write to",
    errno.EPERM: "choose a folder you may write to",
    errno.EROFS: "the file system is read-only: choose a writable folder",
}


def _fix(code: int | None) -> str:
    return FIXES.get(code, "free some disk space or choose a writable folder")


def remove_leftovers(folder: str | os.PathLike) -> int:
    """Delete the temporary files a killed process left in ``folder`` (never the files they were for)."""
    leftovers = list(Path(folder).glob(".*.tmp*"))
    for path in leftovers:
        path.unlink(missing_ok=True)
    return len(leftovers)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_torch(obj, path: str | os.PathLike) -> None:
    """``torch.save`` through a temporary file, flushed to disk before it replaces ``path``."""
    # serialized in memory first: torch's own file writer reports a full disk as an opaque
    # RuntimeError, while Python's write raises an OSError that names the cause
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(buffer.getbuffer())
        f.flush()
        os.fsync(f.fileno())


def save_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_json(obj, path: str | os.PathLike) -> None:
    save_text(json.dumps(obj, indent=2) + "\n", path)
