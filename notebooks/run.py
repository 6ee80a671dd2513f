"""Run the teaching notebooks top to bottom and save them with their outputs.

    python notebooks/run.py                          # every notebook in this folder
    python notebooks/run.py 02_vae_on_mnist.ipynb    # only these (names or paths)

Each notebook runs in a fresh kernel of the Python environment that runs this script, with this
folder as its working directory (runs and WAV files go to notebooks/runs/, which git ignores). A
notebook is written back only when every cell succeeded: to a temporary file first, then renamed
into place, so a failure or a Ctrl-C leaves the saved notebook as it was. Prints each wall time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 600  # per notebook; each takes under 2 minutes on 2 CPU cores


class ThisPython(KernelSpecManager):
    """Every kernel name means an IPython kernel of the interpreter running this script.

    So the notebooks see the same packages as the caller, whatever kernels Jupyter has installed.
    """

    def get_kernel_spec(self, kernel_name):
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        return KernelSpec(argv=argv, display_name="Python 3", language="python")


def execute(path: str | Path, *, cwd: str | Path = HERE, timeout: float = TIMEOUT_S) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` in a fresh kernel with working directory ``cwd``; returns it with outputs.

    Raises nbclient's CellExecutionError when a cell fails, CellTimeoutError past ``timeout`` seconds in all,
    DeadKernelError when the kernel dies (out of memory, say).
    """
    nb = nbformat.read(path, as_version=4)
    deadline = time.monotonic() + timeout
    client = NotebookClient(
        nb,
        km=AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ThisPython()),
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),  # what is left of the notebook's time
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute(cleanup_kc=True)  # the kernel is shut down however the notebook ends: it was given, not owned
    return nb


def save(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write ``nb`` to ``path`` through a temporary file in the same folder, renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        nbformat.write(nb, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: every *.ipynb in notebooks/)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds allowed per notebook")
    args = parser.parse_args(argv)
    paths = [Path(n) if Path(n).exists() else HERE / n for n in args.notebooks] or sorted(HERE.glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    failed = []
    for path in paths:
        start = time.perf_counter()
        try:
            nb = execute(path, timeout=args.timeout)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
            print(
                f"{path.name}: FAILED after {time.perf_counter() - start:.0f} s; kept the saved version\n{e}",
                flush=True,
            )
            failed.append(path.name)
            continue
        save(nb, path)
        print(f"{path.name}: {time.perf_counter() - start:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
