"""Interrupted training loses nothing, and NaN is caught.

Faults are real: the training process is killed with SIGKILL or sent SIGINT, SIGTERM or SIGHUP, the operating
system refuses a write (a file-size limit), the learning rate is absurd. Each test is a row of
docs/reliability.md.
"""

from __future__ import annotations

import csv
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import one_error_line, small_config, train_small
from pyro_vae import Trainer, checkpoint, lock
from pyro_vae.errors import Interrupted, TrainingDiverged, UserError
from pyro_vae.files import save_torch
from pyro_vae.training import faults
from test_cli import ROOT, SMALL, cli

# Long enough (200 steps of 100 images) that a signal sent after epoch 1 lands inside epoch 2.
FAULT = ["--model", "vae", "--epochs", "3", "--train-size", "20000", "--test-size", "500", "--batch-size", "100",
         "--z-dim", "4", "--hidden-dim", "64", "--no-progress", "--device", "cpu"]  # fmt: skip


def metrics(run: Path) -> list[dict]:
    with open(run / checkpoint.METRICS) as f:
        return list(csv.DictReader(f))


def comparable(rows: list) -> list[dict]:
    """metrics.csv's rows or a history's records, without the time each epoch took."""
    rows = [row if isinstance(row, dict) else row.row() for row in rows]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run that the interrupted ones must reproduce."""
    run = tmp_path_factory.mktemp("reference") / "run"
    result = cli("train", "--run-dir", run, *FAULT)
    assert result.returncode == 0, result.stderr
    return comparable(metrics(run))


def start_training(run: Path) -> subprocess.Popen:
    command = [sys.executable, str(ROOT / "cli.py"), "train", "--run-dir", str(run), *FAULT]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_epoch(run: Path, process: subprocess.Popen, epoch: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run / checkpoint.METRICS).exists() and len(metrics(run)) >= epoch:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"epoch {epoch} did not finish in {timeout} s")


@pytest.mark.slow
def test_kill_9_mid_epoch_keeps_the_last_epoch_and_resume_matches(tmp_path, reference):
    run = tmp_path / "killed"
    process = start_training(run)
    wait_for_epoch(run, process, 1)
    time.sleep(0.3)  # into epoch 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    state = checkpoint.load(run)
    assert state["epoch"] in (1, 2) and state["partial"] is None  # a complete epoch, never a half-written one
    assert len(metrics(run)) == state["epoch"]
    result = cli("train", "--resume", run, "--no-progress")
    assert result.returncode == 0, result.stderr
    assert comparable(metrics(run)) == reference
    assert not list(run.glob(".*.tmp*"))  # whatever the kill left half-written is gone


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_ctrl_c_saves_the_current_step_and_resume_matches(tmp_path, reference, signum):
    """Ctrl-C, and SIGTERM (schedulers, docker stop, timeout) and SIGHUP (a closed terminal) alike: the point
    reached is saved, the lock and train.pid let go, and the resumed run ends with the unbroken run's numbers."""
    run = tmp_path / "interrupted"
    process = start_training(run)
    wait_for_epoch(run, process, 1)
    time.sleep(0.3)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, stderr
    assert f"continue with: python cli.py train --resume {run}" in stderr and "Traceback" not in stderr
    assert ("interrupted:" if signum == signal.SIGINT else f"interrupted by {signal.Signals(signum).name}:") in stderr
    assert not (run / lock.PID).exists()
    state = checkpoint.load(run)
    if state["partial"] is not None:  # stopped inside epoch 2 (else Ctrl-C came during testing or saving)
        assert state["partial"]["epoch"] == state["epoch"] + 1 and 0 < state["partial"]["step"] < 200
        assert f"stopped at epoch {state['epoch'] + 1}, step {state['partial']['step']} of 200" in stderr
    result = cli("train", "--resume", run, "--no-progress")
    assert result.returncode == 0, result.stderr
    assert comparable(metrics(run)) == reference


def test_ctrl_c_resume_within_an_epoch_is_exact(tmp_path):
    """Stopping after step 7 of 20 and resuming gives the uninterrupted run's numbers exactly."""
    whole = train_small(tmp_path / "whole", epochs=2)
    trainer = Trainer(small_config(epochs=2), tmp_path / "parts", progress=False, log=lambda line: None)
    step, steps_in_epoch_2 = trainer.step, []

    def step_then_ask_to_stop(x, y):  # what Ctrl-C does: ask for a stop, here after step 7 of epoch 2
        loss = step(x, y)
        if trainer.history:
            steps_in_epoch_2.append(1)
            trainer.watch.stop_requested = len(steps_in_epoch_2) == 7
        return loss

    trainer.step = step_then_ask_to_stop
    with pytest.raises(Interrupted, match="stopped at epoch 2, step 7 of 20"):
        trainer.fit()
    resumed = Trainer.resume(tmp_path / "parts", progress=False, log=lambda line: None)
    assert resumed.partial["step"] == 7 and resumed.epoch == 1
    resumed.fit()
    assert comparable(resumed.history) == comparable(whole.history)


@pytest.mark.slow
def test_a_second_writer_is_refused_while_reading_goes_on_and_a_kill_releases_the_run(tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, str(ROOT / "cli.py"), "train", "--run-dir", str(run), *FAULT, "--epochs", "100"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_epoch(run, process, 1)
        refused = (
            f"{run} is being trained by process {process.pid} right now; "
            f"wait for it to finish, or stop it (kill {process.pid})"
        )
        one_error_line(cli("train", "--resume", run, "--no-progress"), refused)
        one_error_line(cli("train", "--run-dir", run, *FAULT), refused)
        assert cli("sample", run, "--out", tmp_path / "during.png").returncode == 0  # reading needs no lock
        assert process.poll() is None, "the run ended before the second writers were refused"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    epoch = checkpoint.load(run)["epoch"]
    result = cli("train", "--resume", run, "--epochs", epoch, "--no-progress")  # the kill released the run
    assert result.returncode == 0 and f"already at epoch {epoch} of {epoch}" in result.stdout, result.stderr
    assert not (run / lock.PID).exists()


@pytest.mark.slow
def test_a_kill_loses_at_most_the_checkpoint_interval_and_resume_matches(tmp_path, reference):
    """kill -9 inside epoch 2 of a run saved every 0.2 s: its last checkpoint is at most that (plus one
    check-in of 20 steps) old, and the resumed run ends with the unbroken run's numbers."""
    run, interval = tmp_path / "run", 0.2
    command = [
        sys.executable,
        str(ROOT / "cli.py"),
        "train",
        "--run-dir",
        str(run),
        *FAULT,
        "--checkpoint-every",
        f"{interval}s",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_epoch(run, process, 1)
        while checkpoint.load(run)["partial"] is None:  # a point inside an epoch, saved by the clock
            assert process.poll() is None, process.communicate()
            time.sleep(0.02)
        time.sleep(0.3)
    finally:
        process.send_signal(signal.SIGKILL)
        killed_at = time.time()
        process.wait()
    lost = killed_at - (run / checkpoint.CHECKPOINT).stat().st_mtime
    assert lost < interval + 1.5, lost
    result = cli("train", "--resume", run, "--no-progress")
    assert result.returncode == 0, result.stderr
    assert comparable(metrics(run)) == reference


@pytest.mark.slow
def test_the_lock_names_its_holder_nests_and_dies_with_it(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pyro_vae import lock\n"
            "with lock.hold(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)",
            str(run),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        for attempt in (lock.hold(run).__enter__, lambda: lock.check_free(run)):
            with pytest.raises(
                UserError, match=f"being trained by process {holder.pid} right now; .*kill {holder.pid}"
            ):
                attempt()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run / lock.PID).read_text() == f"{holder.pid}\n"  # left by the kill, and harmless:
    with lock.hold(run):  # the system let the lock go with the process
        with lock.hold(run):  # the same process again: nested
            assert (run / lock.PID).read_text() == f"{os.getpid()}\n"
        lock.check_free(run)  # its own holder is never refused
        assert (run / lock.PID).exists()
    assert not (run / lock.PID).exists()


@pytest.mark.slow
def test_checkpoint_every_saves_inside_an_epoch_and_resume_is_exact(tmp_path, monkeypatch):
    """With a checkpoint at every check-in (every 3 steps here), a run killed after step 11 of 20 keeps
    step 9, and the resumed run ends with the unbroken run's numbers."""
    whole = train_small(tmp_path / "whole", epochs=2)
    monkeypatch.setattr(faults, "CHECK_IN_EVERY", 3)
    trainer = Trainer(
        small_config(epochs=2, checkpoint_every="1e-6s"), tmp_path / "parts", progress=False, log=lambda line: None
    )
    step, steps_in_epoch_2 = trainer.step, []

    class Killed(Exception):
        pass

    def step_then_die(x, y):  # the process dies after step 11 of epoch 2, as under kill -9: nothing more is saved
        loss = step(x, y)
        steps_in_epoch_2.extend([1] if trainer.history else [])
        if len(steps_in_epoch_2) == 11:
            raise Killed
        return loss

    trainer.step = step_then_die
    with pytest.raises(Killed):
        trainer.fit()
    saved = checkpoint.load(tmp_path / "parts")
    assert saved["epoch"] == 1 and saved["partial"]["epoch"] == 2 and saved["partial"]["step"] == 9
    resumed = Trainer.resume(tmp_path / "parts", progress=False, log=lambda line: None)
    resumed.fit()
    assert comparable(resumed.history) == comparable(whole.history)


def test_a_checkpoint_with_cuda_random_state_resumes_on_the_cpu(tmp_path):
    """A run saved on a GPU keeps CUDA generators' states (Philox: 8 bytes of seed, 8 of offset), which the
    CPU's generators cannot take: it resumes all the same, says so once, and goes on reproducibly."""
    train_small(tmp_path / "gpu", epochs=1)
    state = torch.load(tmp_path / "gpu" / checkpoint.CHECKPOINT, weights_only=True)
    philox = torch.tensor([7, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0], dtype=torch.uint8)
    state["rng"].update(data=philox, cuda=philox.clone())
    save_torch(state, tmp_path / "gpu" / checkpoint.CHECKPOINT)
    shutil.copytree(tmp_path / "gpu", tmp_path / "again")
    histories = []
    for run in ("gpu", "again"):
        lines = []
        trainer = Trainer.resume(tmp_path / run, epochs=2, progress=False, log=lines.append)
        trainer.fit()
        assert sum("was saved on a GPU and goes on on cpu" in line for line in lines) == 1, lines
        assert len(trainer.history) == 2 and math.isfinite(trainer.history[1].test_neg_elbo)
        assert trainer.history[1].test_neg_elbo < trainer.history[0].test_neg_elbo
        histories.append(comparable(trainer.history))
    assert histories[0] == histories[1]


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["sample"],
        ["reconstruct"],
        ["plot-latent"],
        ["manifold"],
        ["interpolate"],
        ["traverse"],
        ["evaluate", "--k", "2"],
    ],
)
def test_every_command_on_a_run_takes_checkpoint_best(small_run, command):
    """--checkpoint best reads best.pt in every command that opens a run: here one trained without --validation."""
    one_error_line(cli(*command[:1], small_run, *command[1:], "--checkpoint", "best"), f"{small_run} has no best.pt")


@pytest.mark.slow
def test_a_full_disk_is_a_clear_error_and_keeps_the_checkpoint(small_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    size = (run / checkpoint.CHECKPOINT).stat().st_size

    def file_size_limit():  # the OS refuses to write past half a checkpoint: what a full disk does to a write
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    command = [sys.executable, str(ROOT / "cli.py"), "train", "--resume", str(run), "--epochs", "2", "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, preexec_fn=file_size_limit)
    one_error_line(result, f"cannot write {run / checkpoint.CHECKPOINT}: File too large; free some disk space")
    state = checkpoint.load(run)
    assert state["epoch"] == 1 and len(state["history"]) == 1  # the epoch-1 checkpoint, whole
    assert not list(run.glob(".*.tmp*"))


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root writes into read-only folders; the file-size test covers the same path"
)
def test_a_read_only_run_directory_is_a_clear_error(small_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    before = (run / checkpoint.CHECKPOINT).read_bytes()
    run.chmod(0o555)
    try:
        result = cli("train", "--resume", run, "--epochs", "2", "--no-progress")
    finally:
        run.chmod(0o755)
    one_error_line(result, "Permission denied")
    assert (run / checkpoint.CHECKPOINT).read_bytes() == before


@pytest.mark.slow
def test_an_absurd_learning_rate_stops_with_epoch_step_and_cause(tmp_path):
    # the default networks (400 hidden units, z_dim 50) overflow at once; tiny ones only grow huge
    result = cli("train", "--lr", "1e6", "--run-dir", tmp_path / "run", *SMALL[:6], "--no-progress", "--device", "cpu")
    one_error_line(result, "the loss became NaN or infinite at epoch 1, step ")
    assert (
        "the learning rate 1e+06 is far above the usual 1e-3" in result.stderr
        and "no checkpoint was written" in result.stderr
    )
    assert not (tmp_path / "run" / checkpoint.CHECKPOINT).exists()


def test_nan_in_a_later_epoch_keeps_the_last_good_checkpoint(tmp_path):
    trainer = train_small(tmp_path / "run", epochs=1, z_dim=50, hidden_dim=400)
    good = checkpoint.load(tmp_path / "run")["model"]
    trainer.config = trainer.config.replace(epochs=3)
    trainer.optimizer.param_groups[0]["lr"] = 1e6  # forced: the weights blow up in epoch 2
    with pytest.raises(TrainingDiverged, match=r"at epoch 2, step \d+ of 20: .* the checkpoint of epoch 1 .* is kept"):
        trainer.fit()
    kept = checkpoint.load(tmp_path / "run")
    assert kept["epoch"] == 1
    assert all(torch.equal(kept["model"][k], good[k]) for k in good)
    assert all(torch.isfinite(v).all() for v in kept["model"].values())


def test_skip_mode_leaves_the_weights_alone_on_a_nan_batch(mnist, tmp_path):
    trainer = Trainer(small_config(on_nan="skip"), tmp_path, progress=False, log=lambda line: None)
    x, y = mnist[0].x[:100].bernoulli(), mnist[0].y[:100]
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    loss = trainer.step(torch.full_like(x, float("nan")), y)
    assert math.isnan(loss.item())
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert torch.isfinite(trainer.step(x, y))  # and the next good batch trains
    assert not all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


def test_skip_mode_still_stops_when_the_weights_are_ruined(tmp_path):
    """Skipping protects from a bad batch, not from a learning rate whose first step wrecks the weights."""
    with pytest.raises(TrainingDiverged, match=r"nan \(test\) at epoch 1: the learning rate 1e\+06 is far above"):
        train_small(tmp_path / "run", lr=1e6, on_nan="skip", epochs=3, z_dim=50, hidden_dim=400)
