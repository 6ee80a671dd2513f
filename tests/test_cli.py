"""The CLI end to end, run the way a user runs it: `python cli.py ...` in a subprocess."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
from typer.testing import CliRunner

import pyro_vae.cli
from pyro_vae.config import Config

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--epochs", "1", "--train-size", "1000", "--test-size", "200", "--batch-size", "100", "--z-dim", "4",
         "--hidden-dim", "64", "--no-progress", "--device", "cpu"]  # fmt: skip


def cli(*args, cwd=ROOT, env=None):
    env = {**os.environ, "COLUMNS": "200", **(env or {})}  # Typer's usage-error box wraps at the terminal width
    command = [sys.executable, str(ROOT / "cli.py"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "cvae"
    result = cli("train", "--model", "cvae", "--run-dir", run, *SMALL)
    assert result.returncode == 0, result.stderr
    assert "-ELBO in nats per image (lower is better)" in result.stdout and str(run) in result.stdout
    return run


def png_shape(path):
    return matplotlib.image.imread(path).shape


@pytest.mark.slow
def test_train_writes_a_complete_run_directory(cvae_run):
    for name in ["checkpoint.pt", "config.json", "metrics.csv", "samples.png", "reconstructions.png"]:
        assert (cvae_run / name).stat().st_size > 0, name
    assert '"model": "cvae"' in (cvae_run / "config.json").read_text()
    assert len((cvae_run / "metrics.csv").read_text().strip().splitlines()) == 2


@pytest.mark.slow
def test_sample_one_class_and_every_class(cvae_run, tmp_path):
    result = cli("sample", cvae_run, "--label", 7, "--n", 8, "--out", tmp_path / "sevens.png")
    assert result.returncode == 0, result.stderr
    one_row = png_shape(tmp_path / "sevens.png")
    assert cli("sample", cvae_run, "--out", tmp_path / "all.png").returncode == 0
    ten_rows = png_shape(tmp_path / "all.png")
    assert ten_rows[0] > 3 * one_row[0]  # ten rows of digits against one
    assert one_row[2] in (3, 4)


@pytest.mark.slow
def test_reconstruct(cvae_run, tmp_path):
    result = cli("reconstruct", cvae_run, "--n", 10, "--start", 5, "--out", tmp_path / "r.png")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and png_shape(tmp_path / "r.png")[0] > 100


@pytest.mark.slow
def test_resume_continues_the_run(cvae_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(cvae_run, copy)
    result = cli("train", "--resume", copy, "--epochs", 2, "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "epoch 2/2" in result.stdout and "epoch 1/2" not in result.stdout
    assert len((copy / "metrics.csv").read_text().strip().splitlines()) == 3


@pytest.mark.slow
def test_autoencoder_trains_and_refuses_to_sample(tmp_path):
    assert cli("train", "--model", "ae", "--run-dir", tmp_path / "ae", *SMALL).returncode == 0
    result = cli("sample", tmp_path / "ae")
    assert result.returncode == 2 and "no prior to sample from" in result.stderr


@pytest.mark.slow
def test_data_prepare_uses_the_cache():
    result = cli("data", "prepare", "mnist")
    assert result.returncode == 0 and "mnist.pt (from cache)" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,message",
    [
        (["sample", "no/such/run"], "run directory no/such/run does not exist"),
        (["train", "--device", "cuda", *SMALL[:-2]], "PyTorch sees no CUDA GPU"),
        (["train", "--model", "vae", "--prior", "conditional"], "--prior conditional needs a condition"),
        (["train", "--z-dim", "0"], "--z-dim must be at least 1"),
        (["train", "--lr", "-1"], "--lr must be positive"),
        (["train", "--batch-size", "2000", "--train-size", "100"], "larger than the 100 training images"),
        (["train", "--resume", "no/such/run"], "does not exist"),
    ],
)
def test_bad_input_is_one_clear_line(args, message):
    result = cli(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_bad_labels_and_models_are_clear_errors(cvae_run, tmp_path):
    result = cli("sample", cvae_run, "--label", 12)
    assert result.returncode == 2 and "label 12 is not a class of this data set; use 0..9" in result.stderr
    result = cli("train", "--run-dir", cvae_run, *SMALL)
    assert result.returncode == 2 and "already holds a trained run; continue it with --resume" in result.stderr
    result = cli("train", "--model", "gan")
    assert result.returncode == 2 and "unknown model 'gan'; choose one of: vae, cvae, ae" in result.stderr


@pytest.mark.slow
def test_help_explains_every_command():
    for command in ["train", "sample", "reconstruct", "data prepare"]:
        result = cli(*command.split(), "--help")
        assert result.returncode == 0 and "Usage" in result.stdout
    text = cli("train", "--help").stdout
    for option in [
        "--model",
        "--dataset",
        "--net",
        "--z-dim",
        "--prior",
        "--binarize",
        "--elbo",
        "--epochs",
        "--batch-size",
        "--lr",
        "--seed",
        "--device",
        "--run-dir",
        "--resume",
    ]:
        assert option in text, option


def listed_options(help_text: str) -> set[str]:
    """The option names of a command's --help (rich panels: one option per row that starts with "│ --")."""
    return {line.split()[1] for line in help_text.splitlines() if line.startswith("│ --")}


@pytest.mark.slow
def test_train_and_compare_take_every_training_option():
    expected = {"--" + field.name.replace("_", "-") for field in dataclasses.fields(Config)}
    own = {
        "train": {"--config", "--run-dir", "--resume", "--progress", "--trust-code", "--help"},
        "compare": {"--pairs", "--out", "--progress", "--trust-code", "--help"},
    }
    for command, options in own.items():
        result = cli(command, "--help")
        assert result.returncode == 0, result.stderr
        assert listed_options(result.stdout) - options == expected, command
    text = cli("train", "--help").stdout
    assert "--flip" in text and "--no-flip" in text and "--no-compile" in text and "path/to/file.py:Class" in text


def test_compare_passes_every_model_and_training_option_on(monkeypatch, tmp_path):
    """compare's options reach pyro_vae.compare.compare without training anything (it is replaced here)."""
    calls = []
    monkeypatch.setattr("pyro_vae.compare.compare", lambda config, out, **options: calls.append((config, out, options)))
    args = [
        "compare",
        "--model",
        "vae",
        "--model",
        "ae",
        "--amp",
        "bf16",
        "--z-dim",
        "3",
        "--out",
        tmp_path,
        "--no-progress",
    ]
    result = CliRunner().invoke(pyro_vae.cli.app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    [(config, out, options)] = calls
    assert options["models"] == ["vae", "ae"] and config.amp == "bf16" and config.z_dim == 3 and out == tmp_path
    assert not options["shared_lr"] and not options["progress"]
    assert CliRunner().invoke(pyro_vae.cli.app, ["compare"]).exit_code == 0 and calls[-1][2]["models"] == [
        "ae",
        "vae",
        "cvae",
    ]
    # the real compare resolves every model's settings before any trains: a mistyped one is refused at once
    monkeypatch.undo()
    args = ["compare", "--model", "vae", "--model", "gan", "--out", tmp_path / "mistyped"]
    result = CliRunner().invoke(pyro_vae.cli.app, [str(a) for a in args])
    assert result.exit_code == 2 and "unknown model 'gan'" in result.output
    assert not (tmp_path / "mistyped" / "vae").exists()  # nothing trained


def test_help_wraps_docstrings_as_prose():
    """At 200 columns, every docstring paragraph short enough for one line is printed on one line
    (the source breaks them over several lines, which --help must not keep)."""
    app = pyro_vae.cli
    commands = [([info.name or info.callback.__name__], info.callback) for info in app.app.registered_commands]
    commands += [(["data", info.name], info.callback) for info in app.data_app.registered_commands]
    broken_in_source = 0
    for command, function in commands:
        result = CliRunner().invoke(app.app, [*command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        for paragraph in function.__doc__.split("\n\n"):
            sentences = " ".join(paragraph.split())
            if len(sentences) <= 190:
                assert sentences in result.output, (command, sentences)
                broken_in_source += "\n" in paragraph.strip()
    assert broken_in_source >= 3


@pytest.mark.slow
def test_python_m_pyro_vae_runs_the_same_commands():
    result = subprocess.run([sys.executable, "-m", "pyro_vae", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and "plot-latent" in result.stdout


@pytest.mark.slow
def test_console_script_is_installed():
    script = shutil.which("pyro-vae", path=str(Path(sys.executable).parent))
    assert script, "pip install -e . installs the pyro-vae console script"
    result = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "train" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "command,options,name",
    [
        ("plot-latent", [], "latent.png"),
        ("plot-latent", ["--n", 150], "latent-150.png"),
        ("manifold", ["--n", 6, "--label", 3, "--label", 8, "--dims", 1, 3], "manifold.png"),
        (
            "interpolate",
            ["--from", 0, "--to", 5, "--from-class", 1, "--to-class", "7", "--spherical", "--steps", 6],
            "interpolate.png",
        ),
        ("interpolate", ["--label-path", "--pairs", 2], "morph.png"),
        ("traverse", ["--index", 3, "--dim", 0, "--dim", 2], "traverse.png"),
        ("curves", [], "curves.png"),
    ],
)
def test_latent_space_commands_write_pictures(cvae_run, tmp_path, command, options, name):
    out = tmp_path / name
    result = cli(command, cvae_run, *options, "--out", out)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    height, width, _ = png_shape(out)
    assert height > 150 and width > 300


@pytest.mark.slow
def test_latent_space_commands_refuse_bad_input(cvae_run):
    for args, message in [
        (["interpolate", cvae_run, "--from", 999], "--from 999 is not a test image index; use 0..199"),
        (["interpolate", cvae_run, "--from", 1], "1 start images but 0 end images"),
        (
            ["interpolate", cvae_run, "--from-class", "eleven", "--to-class", 1],
            "'eleven' is not a class of this data set",
        ),
        (["manifold", cvae_run, "--dims", 0, 4], "--dims must be two different latent dimensions in 0..3"),
        (["traverse", cvae_run, "--dim", 9], "--dim 9 is not a latent dimension; use 0..3"),
        (["plot-latent", cvae_run, "--method", "umap"], "Invalid value for '--method'"),
    ]:
        result = cli(*args)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_compare_writes_a_report_and_reuses_its_runs(tmp_path):
    out = tmp_path / "cmp"
    result = cli("compare", "--out", out, "--pairs", 2, *SMALL)
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == ["ae", "vae", "cvae"]
    ae_kl = float(rows[0].split("|")[4])
    assert ae_kl == 0.0  # the autoencoder's codes cost nothing under its flat prior
    for picture in ["latent.png", "interpolation.png", "vae-samples.png", "cvae-samples.png"]:
        assert f"]({picture})" in report and png_shape(out / picture)[0] > 150
    assert png_shape(out / "interpolation.png")[0] > png_shape(out / "vae-samples.png")[0] / 2  # 6 strips
    again = cli("compare", "--out", out, "--pairs", 2, *SMALL)  # the runs are done: nothing to train
    assert again.returncode == 0 and again.stdout.count("already at epoch 1 of 1") == 3, again.stdout
    clash = cli("compare", "--out", out, *SMALL, "--z-dim", 3)  # the last --z-dim wins
    assert clash.returncode == 2 and "holds a run with other settings" in clash.stderr
    assert [float(row.split("|")[9]) for row in rows] == [2e-3, 2e-3, 2e-3]  # learning rate column
    # each model's own prior and networks, the given width kept for all
    assert [row.split("|")[7].strip() for row in rows] == [
        "none; 1 × 64 / 1 × 64",
        "standard; 1 × 64 / 1 × 64",
        "conditional; 2 × 64 / 2 × 64",
    ]


@pytest.mark.slow
def test_compare_trains_each_model_at_its_own_learning_rate_unless_one_is_given(tmp_path):
    grey = [*SMALL, "--likelihood", "gaussian", "--binarize", "none"]  # a learned noise scale: the ae's lr is lower
    for extra, expected in [(["--flip"], [5e-4, 2e-3, 2e-3]), (["--lr", "1e-3"], [1e-3, 1e-3, 1e-3])]:
        out = tmp_path / f"cmp{len(extra)}"
        result = cli("compare", "--out", out, "--pairs", 1, *grey, *extra)
        assert result.returncode == 0, result.stderr
        report = (out / "report.md").read_text()
        rows = [line for line in report.splitlines() if line.startswith("| `")]
        assert [float(row.split("|")[9]) for row in rows] == expected
        # models trained with flips are judged with the mirror-invariant distance, and the report says so
        assert ("with its mirror\nimage, and the nearer counts" in report) == ("--flip" in extra)
        assert [json.loads((out / m / "config.json").read_text())["lr"] for m in ("ae", "vae", "cvae")] == expected


@pytest.mark.slow
def test_evaluate_prints_a_table_and_saves_json(cvae_run):

    result = cli("evaluate", cvae_run, "--k", 20, "--n", 100, "--samples-per-class", 10, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "-log p(x|y), importance-weighted, k=20" in result.stdout and "conditional accuracy" in result.stdout
    saved = json.loads((cvae_run / "evaluation-test-k20.json").read_text())
    assert saved["images"] == 100 and saved["k"] == 20 and saved["split"] == "test"
    assert 0 < saved["nll"] <= saved["neg_elbo"] + 1  # the importance-weighted bound is the tighter one
    assert len(saved["conditional_accuracy"]["per_class"]) == 10 and saved["classifier_test_accuracy"] > 0.95
    bad = cli("evaluate", cvae_run, "--k", 0)
    assert bad.returncode == 2 and "--k must be 1..100000, not 0" in bad.stderr


@pytest.mark.slow
def test_complete_writes_a_report_with_both_models(tmp_path):
    out = tmp_path / "completion"
    result = cli("complete", "--quadrants", 2, "--epochs", 1, "--k", 10, "--train-size", 2000, "--test-size", 100,
                 "--hidden-dim", 64, "--z-dim", 8, "--out", out, "--no-progress", "--device", "cpu")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| 2 |"))
    baseline, cvae = float(row.split("|")[2]), float(row.split("|")[3].split("±")[0])
    assert 30 < cvae < 400 and 30 < baseline < 400  # hidden half of a digit: untrained would be ~270
    assert png_shape(out / "completion.png")[0] > 200 and (out / "cvae-2.pt").stat().st_size > 0
    bad = cli("complete", "--quadrants", 4)
    assert bad.returncode == 2 and "'--quadrants': Input should be less than or equal to 3" in bad.stderr


@pytest.mark.slow
def test_complete_refuses_bad_sizes():
    for args, message in [
        (["--train-size", 0], "--train-size must be at least 1"),
        (["--k", 0], "--k must be 1..100000, not 0"),
        (["--lr", 0], "--lr must be positive"),
    ]:
        result = cli("complete", *args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("parts", [
    ["--model", "vae", "--prior", "vamp", "--prior-components", "10", "--guide", "full-rank", "--elbo", "meanfield"],
    ["--model", "vae", "--prior", "flow", "--guide", "iaf", "--elbo", "iwae", "--particles", "3"],
    ["--model", "hvae", "--prior", "mixture", "--elbo", "renyi", "--particles", "2"],
    ["--model", "cvae", "--prior", "flow", "--guide", "full-rank", "--elbo", "jit"],
])  # fmt: skip
def test_priors_guides_and_models_combine_with_every_tool(tmp_path, parts):
    """A run of each kind trains from the command line, and the tools that look inside a run take it."""
    run = tmp_path / "run"
    result = cli("train", "--run-dir", run, *parts, *SMALL, "--z-dim", "2")
    assert result.returncode == 0, result.stderr
    conditional = "cvae" in parts
    runner = CliRunner()
    for command in [
        ["evaluate", run, "--k", "20", "--n", "50", "--device", "cpu", "--samples-per-class", "5"],
        ["sample", run, "--out", tmp_path / "samples.png"],
        ["plot-latent", run, "--out", tmp_path / "latent.png"],
        ["manifold", run, "--n", "5", "--out", tmp_path / "manifold.png", *(["--label", "3"] if conditional else [])],
        ["interpolate", run, "--pairs", "1", "--steps", "4", "--out", tmp_path / "interpolate.png"],
    ]:
        outcome = runner.invoke(pyro_vae.cli.app, [str(a) for a in command])
        assert outcome.exit_code == 0, (command[0], outcome.output, outcome.exception)
    saved = json.loads((run / "evaluation-test-k20.json").read_text())
    assert saved["z_dim"] == 2 and 0 < saved["nll"] <= saved["neg_elbo"] + 1
    for picture in ("samples.png", "latent.png", "manifold.png", "interpolate.png"):
        assert png_shape(tmp_path / picture)[0] > 80  # one interpolation strip: about 100 pixels high


@pytest.mark.slow
def test_the_install_adds_no_top_level_cli_module(tmp_path):
    """cli.py runs from a checkout by path; installed as a module named `cli` it would shadow any other."""
    where = subprocess.run(
        [sys.executable, "-c", "import importlib.util; print(importlib.util.find_spec('cli'))"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert where.stdout.strip() == "None", where.stdout
    assert cli("--help", cwd=tmp_path).returncode == 0  # by path, from anywhere
