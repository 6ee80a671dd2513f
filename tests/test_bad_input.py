"""Bad input is one clear line that names the problem and the fix, and leaves every file as it was.

Typos, odd tensors and data caches, random options (hypothesis), seeds, outputs that would overwrite a run,
sizes past their bounds. Each test is a row of docs/reliability.md.
"""

from __future__ import annotations

import os
import shutil

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import files_of, one_error_line
from pyro_vae import checkpoint, data, lock
from pyro_vae import cli as cli_module
from pyro_vae.data.imageset import ImageSet
from pyro_vae.errors import UserError
from test_cli import SMALL, cli


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
    """A figure is held to figures.MAX_PIXELS (interpolate --pairs 100000 once wrote 777 x 272,542 pixels)."""
    from PIL import Image

    from pyro_vae import figures, plots

    images = torch.rand(400, 1, 28, 28)
    plots.image_grid(images, tmp_path / "full.png", ncol=20, title="grid")
    monkeypatch.setattr(figures, "MAX_PIXELS", 0.5e6)
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
