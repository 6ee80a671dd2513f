"""Training in two processes (gloo on the CPU), launched the way users launch it: torchrun."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyro_vae import Trainer

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ["--train-size", 4096, "--test-size", 1000, "--epochs", 2, "--batch-size", 128, "--z-dim", 8,
            "--hidden-dim", 128, "--no-progress", "--device", "cpu"]  # fmt: skip


def train(run_dir, *args, processes: int = 1) -> subprocess.CompletedProcess:
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    command = [
        *launcher,
        str(ROOT / "cli.py"),
        "train",
        "--run-dir",
        str(run_dir),
        *map(str, SETTINGS),
        *map(str, args),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread per process: two processes share the 2 cores
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)


def metrics(run_dir) -> list[dict]:
    with open(Path(run_dir) / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same autoencoder and VAE runs, in one process and in two."""
    root = tmp_path_factory.mktemp("distributed")
    for model in ("ae", "vae"):
        for processes in (1, 2):
            result = train(root / f"{model}-{processes}", "--model", model, processes=processes)
            assert result.returncode == 0, result.stderr[-3000:]
            if processes == 2:
                assert f"on cpu in 2 processes: {root / f'{model}-2'}" in result.stdout
    return root


@pytest.mark.slow
def test_two_processes_take_the_same_steps_as_one(runs):
    # The autoencoder draws no noise: the two halves of each batch, their gradients summed over
    # processes, give the single process's step up to the order of float additions.
    one, two = metrics(runs / "ae-1"), metrics(runs / "ae-2")
    assert [row["epoch"] for row in two] == [1, 2]  # process 0 alone wrote the metrics: one row per epoch
    for a, b in zip(one, two):
        for key in ("train_neg_elbo", "test_neg_elbo"):
            assert b[key] == pytest.approx(a[key], rel=1e-3), (key, a, b)
    assert two[1]["test_neg_elbo"] < two[0]["test_neg_elbo"]


def test_two_process_vae_matches_one_within_the_spread_of_seeds(runs):
    # Each process draws its own z, so the runs differ like runs with two seeds (about 1% here)
    one, two = metrics(runs / "vae-1")[-1], metrics(runs / "vae-2")[-1]
    assert two["test_neg_elbo"] == pytest.approx(one["test_neg_elbo"], rel=0.02)
    assert two["train_neg_elbo"] == pytest.approx(one["train_neg_elbo"], rel=0.02)


@pytest.mark.slow
def test_a_two_process_checkpoint_loads_and_resumes_in_one_process(runs, tmp_path):
    trainer = Trainer.resume(runs / "vae-2", epochs=3, progress=False, log=lambda line: None)
    assert trainer.parallel is None and trainer.epoch == 2
    history = trainer.fit()
    assert [row.epoch for row in history] == [1, 2, 3] and history[2].test_neg_elbo < history[1].test_neg_elbo
    sample = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "sample", str(runs / "vae-2"), "--out", str(tmp_path / "s.png")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert sample.returncode == 0 and (tmp_path / "s.png").stat().st_size > 1000, sample.stderr


@pytest.mark.slow
def test_a_global_batch_that_does_not_split_evenly_is_refused(tmp_path):
    result = train(tmp_path / "run", "--model", "vae", "--batch-size", 127, processes=2)
    assert result.returncode != 0
    assert "--batch-size 127 does not split evenly over 2 processes; use a multiple of 2" in result.stderr
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
