"""Recipes (train --config), the settings they brought (schedules, activations, Adam's epsilon, a
validation split with best.pt and early stopping) and the reproductions table."""

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import pyro_vae.cli
from conftest import small_config
from pyro_vae import Trainer, data, recipes, reproductions
from pyro_vae.checkpoint import load
from pyro_vae.errors import UserError
from pyro_vae.schedules import lr_scale, stages_epochs
from pyro_vae.spec import resolve

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.toml"))
TINY = ["--epochs", "1", "--train-size", "100", "--test-size", "100", "--no-progress", "--device", "cpu"]


def cli(*args):
    return CliRunner().invoke(pyro_vae.cli.app, [str(a) for a in args])


def test_the_recipes_are_there():
    names = {path.stem for path in RECIPES}
    assert {"burda-vae", "burda-iwae-5", "burda-iwae-50", "burda-vae-2", "tomczak-vamp", "pythae-vae"} <= names
    for path in RECIPES:  # each says what it reproduces, and its number
        about = recipes.load(path).reproduces
        assert about["paper"] and about["row"] and 60 < about["published"] < 100 and about["k"] >= 200


@pytest.mark.slow
@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_trains_from_its_file(path, tmp_path):
    run = tmp_path / path.stem
    result = cli("train", "--config", path, "--run-dir", run, *TINY)
    assert result.exit_code == 0, result.output
    recipe = recipes.load(path)
    saved = json.loads((run / "config.json").read_text())
    assert {k: saved[k] for k in recipe.settings if k not in ("epochs", "train_size", "test_size")} == {
        k: v for k, v in recipe.settings.items() if k not in ("epochs", "train_size", "test_size")
    }  # every setting of the file, except those the command line overrode
    assert saved["epochs"] == 1 and saved["train_size"] == 100
    metrics = (run / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 2 and math.isfinite(float(metrics[1].split(",")[2]))  # one epoch, a finite test -ELBO
    copy = (run / recipes.COPY).read_text()
    header = copy.splitlines()[0]
    assert copy.endswith(recipe.text) and all(
        option in header for option in ("--epochs 1", "--train-size 100", "--test-size 100", "--device cpu")
    )


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return path


def test_options_given_override_the_file_and_the_rest_is_the_files(tmp_path):
    path = write(tmp_path, '[settings]\nmodel = "vae"\nz-dim = 6\nhidden_dim = 32\nbatch_size = 50\n')
    result = cli("train", "--config", path, "--z-dim", "3", "--run-dir", tmp_path / "run", *TINY)
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["model"], saved["z_dim"], saved["hidden_dim"], saved["batch_size"]) == ("vae", 3, 32, 50)
    # an option given at its default value still overrides the file
    result = cli(
        "train", "--config", path, "--batch-size", "256", "--run-dir", tmp_path / "run2", *TINY, "--train-size", "300"
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run2" / "config.json").read_text())["batch_size"] == 256


@pytest.mark.parametrize(
    "text, message",
    [
        ("[settings]\nz_dims = 3\n", "unknown setting z_dims"),
        ('[settings]\nz_dim = "three"\n', "setting z_dim must be int"),
        ('[settings]\nelbo = "elbo"\n', "unknown elbo 'elbo'"),
        ("[settings\nz_dim = 3\n", "is not valid TOML"),
        ("z_dim = 3\n", "unknown table or key z_dim"),
        ('[reproduces]\npublished = "86"\n[settings]\n', "published must be a number"),
        ('[reproduces]\npaper = "x"\ntable = 1\n[settings]\n', "unknown key table in [reproduces]"),
    ],
)
def test_a_bad_recipe_is_one_line_naming_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    result = cli("train", "--config", path, "--run-dir", tmp_path / "run", *TINY)
    assert result.exit_code == 2 and message in result.output and str(path) in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_a_recipe_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "latin.toml"
    path.write_bytes("# Kingma & Welling, r\u00e9sum\u00e9\n[settings]\nz_dim = 3\n".encode("latin-1"))
    result = cli("train", "--config", path, "--run-dir", tmp_path / "run", *TINY)
    assert result.exit_code == 2 and f"{path} is not a text file in UTF-8 (byte 21 is not)" in result.output, (
        result.output
    )
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_config_with_resume_and_a_missing_file_are_refused(tmp_path):
    result = cli("train", "--config", tmp_path / "none.toml")
    assert result.exit_code == 2 and "none.toml does not exist" in result.output
    result = cli("train", "--resume", tmp_path, "--config", RECIPES[0])
    assert result.exit_code == 2 and "leave --config out" in result.output


# --- learning-rate schedules -------------------------------------------------------------------


def test_stages_are_burda_et_al_s():
    config = small_config(lr_schedule="stages")
    assert stages_epochs() == 3280
    # stage i covers epochs (3^i + 1) / 2 .. (3^(i+1) - 1) / 2 at 10^(-i/7)
    for epoch, stage in [
        (1, 0),
        (2, 1),
        (4, 1),
        (5, 2),
        (13, 2),
        (14, 3),
        (40, 3),
        (41, 4),
        (1093, 6),
        (1094, 7),
        (3280, 7),
        (5000, 7),
    ]:
        assert lr_scale(config, epoch, 0.5) == pytest.approx(10 ** (-stage / 7)), epoch


def test_milestones_and_cosine():
    config = small_config(lr_schedule="milestones")
    for epoch, passed in [(1, 0), (200, 0), (201, 1), (351, 2), (750, 3), (751, 4), (1001, 5), (2000, 5)]:
        assert lr_scale(config, epoch, 1.0) == pytest.approx(10 ** (-passed / 5)), epoch
    config = small_config(lr_schedule="cosine", epochs=4)
    assert lr_scale(config, 1, 1e-9) == pytest.approx(1.0)
    assert lr_scale(config, 2, 1.0) == pytest.approx(0.5) and lr_scale(config, 4, 1.0) == pytest.approx(0.0, abs=1e-12)
    warm = small_config(lr_schedule="cosine", epochs=4, lr_warmup=2)  # the warm-up ramps any schedule
    assert lr_scale(warm, 1, 1.0) == pytest.approx(0.5 * lr_scale(config, 1, 1.0))


def test_the_trainer_follows_the_schedule_and_adam_takes_its_epsilon(tmp_path):
    config = small_config(lr_schedule="stages", epochs=2, lr=1e-3, adam_eps=1e-4, train_size=200)
    trainer = Trainer(config, tmp_path, progress=False, log=lambda line: None)
    assert trainer.optimizer.param_groups[0]["eps"] == 1e-4
    trainer.fit()
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 10 ** (-1 / 7))  # epoch 2 is stage 1


# --- networks -----------------------------------------------------------------------------------


def test_tanh_and_gated_layers(mnist):
    from pyro_vae import build_model

    x = mnist[1].x[:5]
    for activation, width in [("tanh", 32), ("gated", 64), ("relu", 32)]:
        model = build_model(
            small_config(model="vae", activation=activation, hidden_dim=32, encoder_layers=2), (1, 28, 28), 10
        )
        assert model.encoder.hidden.out_features == width and model.encoder.deeper[0].out_features == width
        loc, scale = model.encoder(x)
        assert loc.shape == (5, 8) and torch.isfinite(loc).all()
    h = torch.randn(3, 32)
    model = build_model(small_config(model="vae", activation="tanh", hidden_dim=32), (1, 28, 28), 10)
    features = torch.tanh(model.decoder.hidden(h[:, :8]))
    assert features.abs().max() <= 1  # the decoder's tanh layer is bounded
    with pytest.raises(UserError, match="activation sets the mlp's nonlinearity"):
        resolve(small_config(activation="tanh", net="conv"))


# --- a validation split, best.pt and early stopping -----------------------------------------------


def test_the_validation_images_are_held_out_by_the_seed(mnist):
    train = mnist[0].head(1000)
    rest, valid = data.hold_out(train, 200, seed=3, binarize="dynamic")
    again, valid_again = data.hold_out(train, 200, seed=3, binarize="dynamic")
    other = data.hold_out(train, 200, seed=4, binarize="dynamic")[1]
    assert (
        len(rest) == 800
        and len(valid) == 200
        and torch.equal(valid.x, valid_again.x)
        and not torch.equal(valid.x, other.x)
    )
    assert set(valid.x.unique().tolist()) == {0.0, 1.0}  # binarized once, as the test set is
    # no image is in both: the grey originals of the held-out ones are not among the rest
    grey = data.hold_out(train, 200, seed=3, binarize="none")[1]
    kept = {x.numpy().tobytes() for x in rest.x}
    assert (
        sum(x.numpy().tobytes() in kept for x in grey.x) == 0
        and len(kept | {x.numpy().tobytes() for x in grey.x}) == 1000
    )
    with pytest.raises(UserError, match="--validation 1000 must leave images to train on"):
        data.hold_out(train, 1000, seed=0, binarize="dynamic")


@pytest.mark.slow
def test_best_pt_is_the_epoch_with_the_best_validation_bound_and_early_stopping_ends_the_run(tmp_path):
    # 100 images to train on, over-fitted fast at a high rate: the validation bound turns up within a few epochs
    config = small_config(
        train_size=100,
        batch_size=20,
        validation=200,
        test_size=100,
        early_stopping=2,
        epochs=30,
        lr=1e-2,
        hidden_dim=256,
        z_dim=16,
    )
    lines = []
    trainer = Trainer(config, tmp_path, progress=False, log=lines.append)
    trainer.fit()
    valid = [row.valid_neg_elbo for row in trainer.history]
    best = 1 + valid.index(min(valid))
    assert trainer.epoch < 30 and trainer.epoch - best == 2, valid  # stopped 2 epochs after the best one
    assert all(e - (1 + valid[:e].index(min(valid[:e]))) < 2 for e in range(1, trainer.epoch))  # and not before
    assert load(tmp_path, which="best")["epoch"] == best and load(tmp_path)["epoch"] == trainer.epoch
    assert any(f"stopped early at epoch {trainer.epoch}" in line for line in lines)
    # the test set played no part: the same run with another test set stops at the same epoch
    again = Trainer(config.replace(test_size=30), tmp_path / "again", progress=False, log=lambda line: None)
    again.fit()
    assert [row.valid_neg_elbo for row in again.history] == valid
    # a stopped run stays stopped when resumed
    resumed = Trainer.resume(tmp_path, progress=False, log=lines.append)
    resumed.fit()
    assert resumed.epoch == trainer.epoch

    result = cli("evaluate", tmp_path, "--checkpoint", "best", "--k", "5", "--n", "50", "--device", "cpu")
    assert result.exit_code == 0, result.output
    measured = json.loads((tmp_path / "evaluation-test-k5-best.json").read_text())
    assert measured["checkpoint"] == "best" and measured["epoch"] == best


def test_early_stopping_needs_validation_and_best_needs_a_validated_run(tmp_path):
    with pytest.raises(UserError, match="give validation N as well"):
        resolve(small_config(early_stopping=5))
    Trainer(small_config(train_size=200), tmp_path, progress=False, log=lambda line: None).fit()
    result = cli("evaluate", tmp_path, "--checkpoint", "best", "--k", "5", "--n", "20", "--device", "cpu")
    assert result.exit_code == 2 and "only runs trained with --validation N keep their best epoch" in result.output


# --- the reproductions table --------------------------------------------------------------------


def test_a_row_is_read_off_a_run_and_the_table_made_from_the_rows(tmp_path):
    path = write(
        tmp_path,
        '[reproduces]\npaper = "A (2020)"\nrow = "Table 9"\npublished = 90.5\nk = 5000\n'
        '[settings]\nmodel = "vae"\nz_dim = 4\nhidden_dim = 32\nbatch_size = 50\nepochs = 40\n',
    )
    run = tmp_path / "run"
    assert cli("train", "--config", path, "--run-dir", run, *TINY).exit_code == 0
    rows = tmp_path / "rows.json"
    result = cli("reproductions", "record", run, "--k", "7", "--rows", rows)
    assert result.exit_code == 2 and f"evaluate {run} --k 7" in result.output  # not measured yet
    assert cli("evaluate", run, "--k", "7", "--n", "30", "--device", "cpu").exit_code == 0
    result = cli(
        "reproductions", "record", run, "--k", "7", "--rows", rows, "--hardware", "a laptop", "--notes", "Cut short."
    )
    assert result.exit_code == 0, result.output
    [row] = json.loads(rows.read_text())
    measured = json.loads((run / "evaluation-test-k7.json").read_text())
    assert set(reproductions.KEYS) <= set(row) and row["notes"] == "Cut short."
    assert (row["recipe"], row["published"], row["ours"], row["k"], row["test_images"]) == (
        "mine",
        90.5,
        round(measured["nll"], 2),
        7,
        30,
    )
    assert (row["epochs"], row["schedule_epochs"], row["complete"], row["stochastic_layers"], row["hardware"]) == (
        1,
        40,
        False,
        1,
        "a laptop",
    )
    assert row["command"].startswith("python cli.py train --config recipes/mine.toml --epochs 1 ")
    table = (tmp_path / "rows.md").read_text()
    assert (
        "| `mine` | A (2020): Table 9 | 90.50 (k = 5000) |" in table
        and f"**{row['ours']:.2f}**" in table
        and "no: cut short" in table
    )
    # trained on after it was measured: the row would mix two epochs, so it is refused
    assert cli("train", "--resume", run, "--epochs", "2", "--no-progress").exit_code == 0
    result = cli("reproductions", "record", run, "--k", "7", "--rows", rows)
    assert (
        result.exit_code == 2
        and "measured epoch 1, and the last checkpoint" in result.output
        and "is epoch 2" in result.output
    )


def test_the_committed_table_is_made_from_the_committed_rows():
    rows = ROOT / "docs" / "reproductions.json"
    assert (ROOT / "docs" / "reproductions.md").read_text() == reproductions.render(reproductions.read_rows(rows))
    for row in reproductions.read_rows(rows):  # each row's published number is its recipe's
        assert set(reproductions.KEYS) <= set(row)
        assert recipes.load(ROOT / "recipes" / f"{row['recipe']}.toml").reproduces["published"] == row["published"]
