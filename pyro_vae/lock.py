"""One writer per run directory.

While ``train`` writes a run it holds an operating-system lock (``flock``) on the run's folder, so
a second ``train`` or ``--resume`` into the same folder is refused with the first one's process
id, where before both would have written there and the first one's work would have been lost.
The lock belongs to the open folder, not to a file: when the process ends, however it ends
(``kill -9`` too), the system lets it go, and no stale lock is ever left to block the user.
``train.pid`` beside the checkpoint names the holder for the message, and goes when it is done.
Commands that only read a run (sample, evaluate, plots) take no lock and work during training.
Where the system cannot lock a folder (Windows; some network file systems) runs are not guarded.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from .errors import UserError
from .files import save_text

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

PID = "train.pid"
_held: dict[str, int] = {}  # folder -> how many holds this process has on it


@contextlib.contextmanager
def hold(run_dir: str | os.PathLike, create: bool = True) -> Iterator[None]:
    """Be the one writer of ``run_dir`` for the block; a folder another process writes is refused in
    one line that names it. Holding it again in the same process nests. ``create``: make the folder
    if it is missing (else a missing folder is not guarded, and the caller's own error follows)."""
    run_dir = Path(run_dir)
    if create:
        run_dir.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(run_dir)
    if key in _held:  # held by this process already: the outermost hold lets it go
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    if fcntl is None or not run_dir.is_dir():
        yield
        return
    fd = os.open(run_dir, os.O_RDONLY)  # not inherited by child processes (PEP 446)
    try:
        if not _lock(fd, run_dir):
            yield
            return
        _held[key] = 1
        try:
            save_text(f"{os.getpid()}\n", run_dir / PID)
            yield
        finally:
            del _held[key]
            (run_dir / PID).unlink(missing_ok=True)  # while still held: the next writer writes its own
    finally:
        os.close(fd)  # closing the folder lets the lock go


def check_free(run_dir: str | os.PathLike) -> None:
    """Refuse, as :func:`hold` would, a folder another process is writing now (a look that holds nothing)."""
    run_dir = Path(run_dir)
    if fcntl is None or not run_dir.is_dir() or os.path.realpath(run_dir) in _held:
        return
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        _lock(fd, run_dir)
    finally:
        os.close(fd)


def _lock(fd: int, run_dir: Path) -> bool:
    """Lock the open folder ``fd``: True when locked, False where its file system cannot lock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder(run_dir)
        who, stop = (f"process {pid}", f"stop it (kill {pid})") if pid else ("another process", "stop it")
        raise UserError(
            f"{run_dir} is being trained by {who} right now; wait for it to finish, or {stop} and then "
            f"continue the run with --resume {run_dir}"
        ) from None
    except OSError:  # e.g. NFS, where flock needs a file open for writing: not guarded there
        return False
    return True


def _holder(run_dir: Path) -> int | None:
    """The process id in train.pid; None while the holder is writing it, or when it is damaged."""
    try:
        return int((run_dir / PID).read_text())
    except (OSError, ValueError):
        return None
