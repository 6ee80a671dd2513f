"""Which process writes a run, and the one rule that keeps two writers out of one run folder.

Without torchrun there is one process and it writes. Under torchrun process 0 alone evaluates and writes
the checkpoint, metrics and figures (distributed.py), and it alone holds the run's lock (lock.py): a second
``train`` or ``--resume`` into the same folder is refused while it runs.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from .. import distributed, lock


def writes() -> bool:
    """Whether this process writes the run: the only one without torchrun, process 0 under it (known
    before the process group is joined)."""
    return distributed.launched_main()


def writing(run_dir: str | Path, create: bool = True):
    """A context in which this process, if it is the writer (:func:`writes`), holds the lock of ``run_dir``
    (``create``: make the folder if it is missing); the others hold nothing."""
    return lock.hold(run_dir, create=create) if writes() else contextlib.nullcontext()
