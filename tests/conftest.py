"""Shared fixtures and helpers. Data sets are the real ones, prepared once into the usual cache ($PYRO_VAE_DATA)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

from pyro_vae import Config, Trainer, data
from test_cli import SMALL, cli

# the code the tests trust is remembered in a file of the test session's own, never the user's (trust.py);
# commands run in subprocesses inherit it
os.environ["PYRO_VAE_TRUST"] = os.path.join(tempfile.mkdtemp(prefix="pyro-vae-trust-"), "trusted-code.json")

# The suite runs in one worker per core (pytest-xdist, pyproject.toml): each worker, and the commands it starts,
# takes its share of the cores instead of all of them
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    THREADS = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    torch.set_num_threads(THREADS)
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))


def pytest_collection_modifyitems(items):
    """For pytest-xdist, which hands out whole modules (``--dist loadscope``: a module-scoped fixture is built
    once): the longest work first, so that the workers end together. The notebooks, then the modules that hold
    slow tests; a module's tests stay together and in their order."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (item.path.name != "test_notebooks.py", item.path not in slow))


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST, (train, test) ImageSets on the CPU with the default dynamic binarization."""
    return data.load("mnist", "cpu", "dynamic")


def small_config(**changes) -> Config:
    """A run that trains in seconds: 2,000 real training images, 500 test images, MLP with z_dim 8."""
    settings = dict(epochs=1, train_size=2000, test_size=500, batch_size=100, z_dim=8, hidden_dim=128, device="cpu")
    settings.update(changes)
    return Config(**settings)


def train_small(run_dir, **changes) -> Trainer:
    trainer = Trainer(small_config(**changes), run_dir, progress=False, log=lambda line: None)
    trainer.fit()
    return trainer


@pytest.fixture
def float64():
    """float64 as the default dtype for one test: finite differences need it, and Pyro's
    autoregressive networks make their tensors in the default dtype."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def one_error_line(result, message: str) -> None:
    """A command that failed as a user's mistake should: exit status 2 and ``message`` in one line, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def files_of(folder: Path) -> dict:
    """Every file under ``folder`` and its bytes: what a refused command must leave as it was."""
    return {path: path.read_bytes() for path in sorted(Path(folder).rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A trained CVAE run (one short epoch) that a module's tests read, or copy before they change it."""
    run = tmp_path_factory.mktemp("small") / "run"
    result = cli("train", "--model", "cvae", "--run-dir", run, *SMALL)
    assert result.returncode == 0, result.stderr
    return run
