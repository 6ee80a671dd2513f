"""Reliability: bad input gets one clear line, interrupted training loses nothing, NaN is caught.

Each test here is a row of docs/reliability.md. Faults are real: the training process is killed
with SIGKILL or sent SIGINT, the operating system refuses a write (a file-size limit), the
learning rate is absurd.
"""

from __future__ import annotations

import csv
import json
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
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import small_config, train_small
from pyro_vae import Trainer, checkpoint, data, lock
from pyro_vae import cli as cli_module
from pyro_vae.data.imageset import ImageSet
from pyro_vae.errors import Interrupted, TrainingDiverged, UserError
from pyro_vae.files import save_torch
from pyro_vae.training import faults
from test_cli import ROOT, SMALL, cli

# Long enough (200 steps of 100 images) that a signal sent after epoch 1 lands inside epoch 2.
FAULT = ["--model", "vae", "--epochs", "3", "--train-size", "20000", "--test-size", "500", "--batch-size", "100",
         "--z-dim", "4", "--hidden-dim", "64", "--no-progress", "--device", "cpu"]  # fmt: skip


def one_error_line(result, message: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


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


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("small") / "run"
    result = cli("train", "--model", "cvae", "--run-dir", run, *SMALL)
    assert result.returncode == 0, result.stderr
    return run


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


# --- broken run directories -------------------------------------------------------------------


def _truncate(run):
    path = run / checkpoint.CHECKPOINT
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupt(run):
    path = run / checkpoint.CHECKPOINT
    raw = bytearray(path.read_bytes())
    raw[100:4000] = bytes(3900)
    path.write_bytes(bytes(raw))


def _foreign(run):  # a PyTorch file, but someone else's
    torch.save({"weight": torch.zeros(3)}, run / checkpoint.CHECKPOINT)


def _other_shape(run):  # the networks of one model under the settings of another
    state = torch.load(run / checkpoint.CHECKPOINT, weights_only=True)
    state["config"]["z_dim"] = 7
    torch.save(state, run / checkpoint.CHECKPOINT)
    (run / checkpoint.CONFIG).unlink()


def _missing_key(run):
    state = torch.load(run / checkpoint.CHECKPOINT, weights_only=True)
    del state["classes"]
    torch.save(state, run / checkpoint.CHECKPOINT)


def _config_not_json(run):
    (run / checkpoint.CONFIG).write_text("{ z_dim: 4,")


def _config_nonsense(run):
    config = json.loads((run / checkpoint.CONFIG).read_text())
    (run / checkpoint.CONFIG).write_text(json.dumps(config | {"z_dim": "four", "lr": -1}))


def _config_edited(run):
    config = json.loads((run / checkpoint.CONFIG).read_text())
    (run / checkpoint.CONFIG).write_text(json.dumps(config | {"z_dim": 16}))


def _no_checkpoint(run):
    (run / checkpoint.CHECKPOINT).unlink()


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage,message",
    [
        (_truncate, "cannot be read (RuntimeError): it is truncated or not a pyro-vae checkpoint"),
        (_corrupt, "cannot be read"),
        (_foreign, "is not a pyro-vae checkpoint of format 1"),
        (_other_shape, "do not match its config"),
        (_missing_key, "lacks classes: it is damaged"),
        (_config_not_json, "config.json is not valid"),
        (_config_nonsense, "config.json is not valid (setting z_dim must be int, not 'four'"),
        (_config_edited, "config.json was edited: z_dim=16 (trained with 4)"),
        (_no_checkpoint, "has no checkpoint.pt; train into it first"),
    ],
)
def test_a_damaged_run_directory_is_one_clear_line(small_run, tmp_path, damage, message):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    damage(run)
    for command in (["sample", run, "--out", tmp_path / "s.png"], ["train", "--resume", run, "--no-progress"]):
        one_error_line(cli(*command), message)


class RunsCode:
    """A pickle that, loaded without weights_only, runs a shell command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.slow
def test_a_crafted_checkpoint_cannot_run_code(small_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    marker = tmp_path / "code-ran"
    state = torch.load(run / checkpoint.CHECKPOINT, weights_only=True)
    torch.save(state | {"history": RunsCode(marker)}, run / checkpoint.CHECKPOINT)
    for command in (["sample", run], ["train", "--resume", run], ["evaluate", run]):
        one_error_line(cli(*command), "cannot be read (UnpicklingError)")
    assert not marker.exists()
    torch.load(run / checkpoint.CHECKPOINT, weights_only=False)  # the file is truly dangerous: unsafe loading runs it
    assert marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["train", "--model", "gan"],
            "unknown model 'gan'; choose one of: vae, cvae, ae, hvae; or name your own class as path/to/file.py:Class",
        ),
        (["train", "--dataset", "cifar"], "Invalid value for '--dataset'"),
        (["train", "--elbo", "exact"], "Invalid value for '--elbo'"),
        (
            ["train", "--likelihood", "poisson"],
            "unknown likelihood 'poisson'; choose one of: bernoulli, continuous-bernoulli",
        ),
        (["train", "--device", "tpu"], "Invalid value for '--device'"),
        (["train", "--batch-size", "-5"], "--batch-size must be at least 1, not -5"),
        (["train", "--z-dim", "two"], "Invalid value for '--z-dim'"),
        (
            ["train", "--checkpoint-every", "10 minutes"],
            "--checkpoint-every takes a duration such as 30s, 10m or 1h (0: off), not '10 minutes'",
        ),
        (["trian"], "No such command 'trian'. Did you mean 'train'?"),
        (["sample"], "Missing argument 'run'. (see `cli.py sample --help`)"),
    ],
)
def test_typos_are_one_line_that_names_the_choices(args, message):
    one_error_line(cli(*args), message)


@pytest.mark.slow
def test_debug_shows_the_traceback():
    result = cli("--debug", "sample", "no/such/run")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "UserError: run directory no/such/run does not exist" in result.stderr


# --- odd data ----------------------------------------------------------------------------------


def images(n=6, classes=3):
    return ImageSet(torch.rand(n, 1, 8, 8), torch.arange(n) % classes, [f"c{i}" for i in range(classes)])


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda s: s.x.view(-1).__setitem__(5, float("nan")), "1 images hold NaN or infinite values"),
        (lambda s: s.x.view(-1).__setitem__(-1, float("inf")), "1 images hold NaN or infinite values"),
        (lambda s: s.x.mul_(255), "pixel values must lie in [0, 1]"),
        (lambda s: setattr(s, "y", s.y.float() + 0.5), "class labels must be integers"),
        (lambda s: setattr(s, "y", s.y + 3), "labels 3..5 do not fit its 3 classes"),
        (lambda s: setattr(s, "y", s.y[:4]), "6 images but labels"),
        (lambda s: setattr(s, "x", s.x[:, 0]), "images must be a float tensor (N, C, H, W)"),
        (lambda s: setattr(s, "y", torch.rand(6, 3)), "attribute vectors must be 0/1"),
    ],
)
def test_odd_tensors_are_refused_where_they_enter(change, message):
    good = images()
    assert good.check() is good
    change(good)
    with pytest.raises(
        UserError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")
    ):
        good.check("my set")


def test_a_cached_data_set_with_nan_is_refused(tmp_path, monkeypatch):
    """A cache file holding NaN (written by hand, or damaged) stops training with a clear message."""
    real = torch.load(
        data.cached_file("faces") if data.cached_file("faces").exists() else data.prepare("faces")[0], weights_only=True
    )
    real = {k: v for k, v in real.items()}
    x = real["x_train"].float() / 255
    x[3, 0, 10, 10] = float("nan")
    real["x_train"] = x
    monkeypatch.setenv("PYRO_VAE_DATA", str(tmp_path))
    torch.save(real, tmp_path / "faces.pt")
    with pytest.raises(UserError, match=r"faces's train split .* 1 images hold NaN or infinite values"):
        data.load("faces", "cpu", "none")


# --- random options: success or one clean error line, never a traceback ------------------------

runner = CliRunner()


def mostly(good, odd):
    """Mostly sensible values, so that whole training runs happen too, with odd ones mixed in."""
    return st.one_of(good, good, good, odd)


def assert_clean(result) -> None:
    event(f"exit status {result.exit_code}")  # shown by pytest --hypothesis-show-statistics
    if result.exit_code == 0:
        return
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert "error" in result.output.lower(), result.output


@settings(
    max_examples=int(os.environ.get("EXAMPLES", 30)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    model=st.sampled_from(["vae", "cvae", "ae"]),
    z_dim=mostly(st.integers(1, 64), st.integers(-2, 0)),
    batch_size=mostly(st.integers(16, 300), st.integers(-1, 1000)),
    train_size=mostly(st.integers(300, 600), st.integers(-1, 300)),
    epochs=mostly(st.just(1), st.integers(-1, 0)),
    lr=mostly(st.floats(1e-5, 1e-1), st.floats()),
    beta=mostly(st.floats(0.1, 4), st.floats()),
    elbo=st.sampled_from(["trace", "meanfield", "iwae", "renyi", "jit"]),
    likelihood=st.sampled_from(["bernoulli", "gaussian", "laplace", "continuous-bernoulli"]),
    scale=mostly(st.none(), st.floats()),
    particles=mostly(st.integers(1, 3), st.integers(-1, 0)),
    kl_warmup=mostly(st.just(0), st.integers(-1, 2)),
)
def test_random_training_options_never_crash(
    tmp_path_factory,
    model,
    z_dim,
    batch_size,
    train_size,
    epochs,
    lr,
    beta,
    elbo,
    likelihood,
    scale,
    particles,
    kl_warmup,
):
    """Click refuses what does not parse; everything that parses either trains or gets one clean line."""
    run = tmp_path_factory.mktemp("random") / "run"
    args = ["train", "--model", model, "--z-dim", z_dim, "--batch-size", batch_size, "--train-size", train_size,
            "--epochs", epochs, "--lr", lr, "--beta", beta, "--elbo", elbo, "--likelihood", likelihood,
            "--particles", particles, "--kl-warmup", kl_warmup, "--test-size", "100", "--hidden-dim", "32",
            "--no-progress", "--run-dir", run,
            *(["--likelihood-scale", scale] if scale is not None else [])]  # fmt: skip
    assert_clean(runner.invoke(cli_module.app, [str(a) for a in args]))


@pytest.mark.slow
@settings(
    max_examples=int(os.environ.get("EXAMPLES", 40)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    command=st.sampled_from(["sample", "interpolate", "traverse", "manifold", "reconstruct"]),
    label=mostly(st.integers(0, 9), st.integers(-3, 12)),
    n=mostly(st.integers(1, 12), st.integers(-3, 0)),
    index=mostly(st.integers(0, 199), st.integers(-5, 250)),
    dim=mostly(st.integers(0, 3), st.integers(-2, 6)),
)
def test_random_options_on_a_trained_run_never_crash(small_run, tmp_path_factory, command, label, n, index, dim):
    out = tmp_path_factory.mktemp("out") / "figure.png"
    options = {
        "sample": ["--label", label, "--n", n],
        "interpolate": ["--from", index, "--to", label, "--steps", n],
        "traverse": ["--index", index, "--dim", dim],
        "manifold": ["--label", label, "--n", n, "--dims", dim, 1],
        "reconstruct": ["--n", n],
    }[command]
    assert_clean(runner.invoke(cli_module.app, [str(a) for a in [command, small_run, *options, "--out", out]]))


# --- every finding gets its one line (issue 43) -----------------------------------------------


def files_of(folder: Path) -> dict:
    """Every file under ``folder`` and its bytes: what a refused command must leave as it was."""
    return {path: path.read_bytes() for path in sorted(Path(folder).rglob("*")) if path.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize(
    "command,seed",
    [
        (["train", "--run-dir", "{tmp}/new"], "-7"),
        (["sample", "{run}"], "99999999999999999999"),
        (["plot-latent", "{run}"], str(2**32)),
        (["interpolate", "{run}"], "-1"),
        (["data", "prepare", "spoken-digits"], "-1"),
    ],
)
def test_every_seed_is_checked_alike(small_run, tmp_path, command, seed):
    """torch and numpy take seeds 0..2**32-1: every command's --seed is refused outside them, in the same line."""
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    before = files_of(tmp_path)
    args = [part.format(tmp=tmp_path, run=run) for part in command]
    one_error_line(
        cli(*args, "--seed", seed),
        f"--seed must be a whole number from 0 to 4294967295 (the seeds torch and numpy take), not {seed}",
    )
    assert files_of(tmp_path) == before


def replaced(key, value):
    """A damage: the checkpoint's ``key`` replaced by ``value``, as a hand-made or damaged file holds it."""

    def damage(run):
        state = torch.load(run / checkpoint.CHECKPOINT, weights_only=True)
        torch.save(state | {key: value(state) if callable(value) else value}, run / checkpoint.CHECKPOINT)

    return damage


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage,command,message",
    [
        (
            replaced("classes", "abc"),
            ["sample", "{run}"],
            "holds the str 'abc' as its classes, where a list of class names belongs",
        ),
        (
            replaced("image_shape", [1, "x"]),
            ["sample", "{run}"],
            "holds the list [1, 'x'] as its image_shape, where a list of 3 positive whole numbers",
        ),
        (
            replaced("epoch", "3"),
            ["train", "--resume", "{run}"],
            "holds the str '3' as its epoch, where a whole number of epochs (0 or more) belongs",
        ),
        (
            replaced("history", {"a": 1}),
            ["curves", "{run}"],
            "holds the dict {'a': 1} as its history, where a list of one mapping of metrics per epoch",
        ),
        (
            replaced("model", lambda state: {k: torch.full_like(v, math.nan) for k, v in state["model"].items()}),
            ["sample", "{run}"],
            "checkpoint.pt: its weights are not finite: "
            "layer encoder.hidden.weight is NaN or infinite throughout, as are",
        ),
        (
            replaced(
                "model",
                lambda state: (
                    state["model"] | {"decoder.out.bias": torch.full_like(state["model"]["decoder.out.bias"], math.inf)}
                ),
            ),
            ["evaluate", "{run}", "--k", "2"],
            "its weights are not finite: layer decoder.out.bias is NaN or infinite throughout; restore the file",
        ),
    ],
)
def test_a_checkpoint_part_of_the_wrong_type_or_not_finite_is_one_line(small_run, tmp_path, damage, command, message):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    damage(run)
    before = files_of(run)
    result = cli(*[part.format(run=run) for part in command])
    one_error_line(result, message)
    assert "restore the file from a copy, or train the run again" in result.stderr
    assert files_of(run) == before


def _without_layer(state):
    return {k: v for k, v in state["model"].items() if k != "encoder.hidden.weight"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage,command,message",
    [
        (
            replaced("model", _without_layer),
            ["sample", "{run}"],
            "its settings build layer encoder.hidden.weight (64, 794), which the checkpoint lacks",
        ),
        (
            replaced("model", lambda state: state["model"] | {"p_z.extra": torch.zeros(3)}),
            ["train", "--resume", "{run}"],
            "the checkpoint holds layer p_z.extra (3,), which its settings do not build",
        ),
        (
            replaced("config", lambda state: state["config"] | {"z_dim": 7}),
            ["train", "--resume", "{run}"],
            "layer encoder.head.loc.weight is (4, 64) in the checkpoint, where its settings build (7, 64)",
        ),
    ],
)
def test_networks_that_differ_from_the_settings_name_the_first_layer(small_run, tmp_path, damage, command, message):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    damage(run)
    (run / checkpoint.CONFIG).unlink()  # the checkpoint's own settings, not config.json's, build the networks here
    before = files_of(run)
    result = cli(*[part.format(run=run) for part in command])
    one_error_line(
        result, f"the networks in {run} do not match its config: {message}; restore the checkpoint from a copy"
    )
    assert files_of(run) == before


@pytest.mark.slow
def test_a_checkpoint_of_another_model_is_not_called_an_edit(small_run, tmp_path):
    """A vae run's checkpoint.pt copied over a cvae run's: the two files are named, neither blamed."""
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    train_small(tmp_path / "vae", model="vae")
    shutil.copy(tmp_path / "vae" / checkpoint.CHECKPOINT, run / checkpoint.CHECKPOINT)
    before = files_of(run)
    for command in (["sample", run], ["train", "--resume", run, "--no-progress"]):
        result = cli(*command)
        one_error_line(
            result,
            f"{run / checkpoint.CHECKPOINT} holds a 'vae' model "
            f"but {run / checkpoint.CONFIG} describes a 'cvae' model: "
            "the two files describe different models",
        )
        assert (
            "was edited" not in result.stderr
            and f"delete {run / checkpoint.CONFIG} to keep the checkpoint's 'vae'" in result.stderr
        )
    assert files_of(run) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "command,out",
    [
        (["sample"], checkpoint.CHECKPOINT),
        (["evaluate", "--k", "2", "--n", "10"], checkpoint.CONFIG),
        (["plot-latent"], checkpoint.METRICS),
        (["curves"], checkpoint.BEST),
        (["reconstruct"], lock.PID),
        (["traverse"], "Checkpoint.PT"),
    ],
)
def test_an_output_never_overwrites_the_run_it_reads(small_run, tmp_path, command, out):
    """`sample RUN --out RUN/checkpoint.pt` once replaced the trained weights with a PNG, exit 0."""
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    before = files_of(tmp_path)
    result = cli(command[0], run, *command[1:], "--out", run / out)
    one_error_line(result, f"--out {run / out} is ")
    assert f"in the run {run}; writing there would destroy the run" in result.stderr
    assert files_of(tmp_path) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "command,out,message",
    [
        (
            ["sample", "{run}"],
            "grid.jpg",
            "--out {out}: this command writes PNG, so name the file *.png, or a folder for a run on spectrograms",
        ),
        (["curves", "{run}"], "curves.txt", "--out {out}: this command writes PNG, so name the file *.png"),
        (
            ["evaluate", "{run}", "--k", "2"],
            "numbers.png",
            "--out {out}: this command writes JSON, so name the file *.json",
        ),
        (["plot-latent", "{run}"], "folder", "--out {out} is a folder; name the file to write, such as {out}/out.png"),
        (
            ["sample", "{run}"],
            "folder",
            "--out {out} is a folder, and {run} holds images, written as one PNG: name it, such as {out}/sample.png",
        ),
        (["compare", "--epochs", "1"], "file", "--out {out} is a file, and this command writes a folder"),
        (
            ["interpolate", "{run}"],
            "x" * 300 + ".png",
            "is 304 bytes long, more than the 255 a file system takes; choose a shorter name",
        ),
    ],
)
def test_an_output_of_another_kind_is_one_line(small_run, tmp_path, command, out, message):
    """PNG bytes under .jpg, a folder where a file goes and a file where a folder goes: refused before any work."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("mine")
    out = tmp_path / out
    before = files_of(tmp_path)
    args = [part.format(run=small_run) for part in command]
    one_error_line(cli(*args, "--out", out), message.format(out=out, run=small_run))
    assert files_of(tmp_path) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "run_dir,message",
    [
        ("", "--run-dir is empty (an unset variable?); name the folder for the run"),
        ("file", "--run-dir file is a file, and this command writes a folder"),
        ("y" * 300, "the name " + "y" * 40 + "..." + "y" * 12 + " is 300 bytes long, more than the 255"),
    ],
)
def test_a_run_dir_that_cannot_hold_a_run_is_refused(tmp_path, run_dir, message):
    """An empty --run-dir once trained into the current folder; a file or a 300-byte name were tracebacks."""
    (tmp_path / "file").write_text("mine")
    one_error_line(cli("train", "--run-dir", run_dir, *SMALL, cwd=tmp_path), message)
    assert files_of(tmp_path) == {tmp_path / "file": b"mine"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "command,message",
    [
        (["sample", "{run}", "--n", "100000000"], "--n must be 1..100, not 100000000"),
        (["reconstruct", "{run}", "--n", "5000"], "--n must be 1..1000, not 5000"),
        (["manifold", "{run}", "--n", "1000"], "--n must be 2..100, not 1000"),
        (["interpolate", "{run}", "--steps", "100000"], "--steps must be 2..100, not 100000"),
        (["interpolate", "{run}", "--pairs", "100000"], "--pairs must be 1..100, not 100000"),
        (["traverse", "{run}", "--steps", "1"], "--steps must be 2..100, not 1"),
        (
            ["traverse", "{run}", "--span", "inf"],
            "--span must be a number above 0 and at most 10 (prior standard deviations), not inf",
        ),
        (
            ["traverse", "{run}", "--span", "nan"],
            "--span must be a number above 0 and at most 10 (prior standard deviations), not nan",
        ),
        (["compare", "--pairs", "1000", "--out", "{tmp}/c"], "--pairs must be 1..100, not 1000"),
        (
            ["train", "--hidden-dim", "1000000000000", "--run-dir", "{tmp}/t"],
            "--hidden-dim must be at most 65536, not 1000000000000",
        ),
        (["data", "prepare", "faces", "--image-size", "100000"], "--image-size must be 8..512 pixels, not 100000"),
    ],
)
def test_work_and_memory_are_bounded_with_the_limit_named(small_run, tmp_path, command, message):
    """interpolate --steps 100000 once grew to 19.7 GB; traverse --span inf wrote blank images titled -inf .. inf."""
    before = files_of(small_run)
    one_error_line(
        cli(
            *[part.format(run=small_run, tmp=tmp_path) for part in command],
            env={"PYRO_VAE_DATA": str(tmp_path / "data")},
        ),
        message,
    )
    assert files_of(small_run) == before and not any(tmp_path.rglob("*.pt"))


def test_the_bounds_are_named_in_help():
    for command, words in (
        ("sample", "(1..100)"),
        ("interpolate", "(2..100)"),
        ("reconstruct", "(1..1000)"),
        ("traverse", "at most 10"),
    ):
        result = runner.invoke(cli_module.app, [command, "--help"], env={"COLUMNS": "300"})
        assert words in result.output, (command, result.output)


@pytest.mark.slow
@pytest.mark.parametrize(
    "option,value,message",
    [
        ("--duration", "nan", "--duration must be a positive number of seconds, not nan"),
        ("--hop", "0", "--hop must be at least 1 sample"),
        ("--n-mels", "100000", "--n-mels must be 8..512 (the FFT of 1024 samples has 513 frequencies), not 100000"),
        (
            "--duration",
            "0.05",
            "0.05 s at --hop 250 gives 3 frames, where 8..2048 fit an image; lower --hop or lengthen --duration",
        ),
    ],
)
def test_spoken_digit_features_out_of_range_are_one_line(tmp_path, option, value, message):
    """--duration nan and --hop 0 were tracebacks; --n-mels 100000 was called too small."""
    one_error_line(
        cli("data", "prepare", "spoken-digits", option, value, env={"PYRO_VAE_DATA": str(tmp_path)}), message
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_run_path_that_is_not_a_folder_says_what_it_is(small_run, tmp_path):
    (tmp_path / "file").write_text("mine")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    cases = {
        tmp_path / "file": "is a file, not a folder; pass a folder made by `train`",
        small_run
        / checkpoint.CHECKPOINT: f"is a run's checkpoint.pt, a file; pass the run folder that holds it, {small_run}",
        tmp_path / "dangling": f"is a symbolic link to {tmp_path / 'gone'}, which does not exist; mend the link",
        tmp_path / "loop": "is a symbolic link that leads back to itself (a loop)",
        tmp_path / "new\nline": "does not exist",  # and on one line: the newline is written as \n
    }
    (tmp_path / "run" / checkpoint.CHECKPOINT).mkdir(parents=True)
    one_error_line(
        cli("sample", tmp_path / "run"),
        f"{tmp_path / 'run' / checkpoint.CHECKPOINT} is a folder, where the run's checkpoint file belongs",
    )
    for path, message in cases.items():
        shown = str(path).replace("\n", "\\n")
        one_error_line(cli("sample", path), f"run directory {shown} {message}")


def test_a_write_that_fails_names_the_fix_for_its_cause(tmp_path):
    """A full disk is not the only reason a write fails: a folder in the way or a file as a folder say so."""
    from pyro_vae.files import save_text

    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("mine")
    with pytest.raises(UserError, match="Is a directory; that is a folder: name a file inside it"):
        save_text("x", tmp_path / "folder")
    with pytest.raises(UserError, match="a part of that path is a file, not a folder: choose another path"):
        save_text("x", tmp_path / "file" / "x.txt")
    assert (tmp_path / "file").read_text() == "mine" and list((tmp_path / "folder").iterdir()) == []


def test_a_grid_too_large_to_view_is_drawn_at_a_lower_resolution(tmp_path, monkeypatch):
    """A figure is held to plots.MAX_PIXELS (interpolate --pairs 100000 once wrote 777 x 272,542 pixels)."""
    from PIL import Image

    from pyro_vae import plots

    images = torch.rand(400, 1, 28, 28)
    plots.image_grid(images, tmp_path / "full.png", ncol=20, title="grid")
    monkeypatch.setattr(plots, "MAX_PIXELS", 0.5e6)
    plots.image_grid(images, tmp_path / "held.png", ncol=20, title="grid")
    full, held = (Image.open(tmp_path / name).size for name in ("full.png", "held.png"))
    assert full[0] * full[1] > 1.2e6 and 0.35e6 < held[0] * held[1] <= 0.5e6
    assert abs(full[0] / full[1] - held[0] / held[1]) < 0.05  # the same picture, smaller


@pytest.mark.slow
@pytest.mark.parametrize(
    "contents,message",
    [
        ({"x_train": torch.zeros(3, 28, 28)}, "it lacks classes, y_train, x_test, y_test"),
        (
            {
                "classes": "ab",
                "x_train": torch.zeros(3, 28, 28),
                "y_train": torch.zeros(3),
                "x_test": torch.zeros(2, 28, 28),
                "y_test": torch.zeros(2),
            },
            "it holds a str as its classes, where a list of class names belongs",
        ),
        (
            {
                "classes": ["a"],
                "x_train": torch.zeros(3, 28, 28),
                "y_train": torch.zeros(4),
                "x_test": torch.zeros(2, 28, 28),
                "y_test": torch.zeros(2),
            },
            "it holds a torch.float32 tensor of shape (4,) as y_train, "
            "where one label per image of x_train belongs, (3,)",
        ),
        ([1, 2], "it holds a list, not a mapping of names to tensors"),
    ],
)
def test_a_data_cache_of_the_wrong_shape_is_one_line_and_kept(tmp_path, contents, message):
    """A valid torch file that is not a prepared data set was a KeyError: 'classes'; it is refused, not written over."""
    torch.save(contents, tmp_path / "mnist.pt")
    before = files_of(tmp_path)
    result = cli("train", "--run-dir", tmp_path / "run", *SMALL, env={"PYRO_VAE_DATA": str(tmp_path)})
    one_error_line(result, f"the data cache {tmp_path / 'mnist.pt'} is not a prepared data set: {message}")
    assert "python cli.py data prepare mnist --force" in result.stderr and files_of(tmp_path) == before
