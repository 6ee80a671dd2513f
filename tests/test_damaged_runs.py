"""A damaged, hand-made or crafted run folder is one clear line, and never runs code.

Each test is a row of docs/reliability.md.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch

from conftest import files_of, one_error_line, train_small
from pyro_vae import checkpoint
from test_cli import cli


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
