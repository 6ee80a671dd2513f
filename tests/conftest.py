"""Shared fixtures. Data sets are the real ones, prepared once into the usual cache ($PYRO_VAE_DATA)."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

from pyro_vae import Config, Trainer, data

# the code the tests trust is remembered in a file of the test session's own, never the user's (trust.py);
# commands run in subprocesses inherit it
os.environ["PYRO_VAE_TRUST"] = os.path.join(tempfile.mkdtemp(prefix="pyro-vae-trust-"), "trusted-code.json")


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
