"""The trust rule (pyro_vae/trust.py): a run folder or a recipe from someone else never runs code.

The code each test crafts leaves a marker file when it is imported, so "nothing ran" is a fact
about the file system, not about a message. Each run here is trained with the real CLI, and each
"other user" is a trust file of their own (PYRO_VAE_TRUST).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from pyro_vae import checkpoint, trust
from test_cli import ROOT, SMALL, cli

EXAMPLE = ROOT / "examples" / "mixture_prior.py"


def marking(path: Path, marker: Path) -> Path:
    """Copy the example model file to ``path``, made to append a line to ``marker`` each time it is imported."""
    path.write_text(EXAMPLE.read_text() + f"\nopen({str(marker)!r}, 'a').write('imported\\n')\n")
    return path


def imports(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def one_line(result, *messages: str) -> None:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    for message in messages:
        assert message in result.stderr, result.stderr


def name_code(run: Path, model: str) -> None:
    """Make ``run`` name ``model`` as its model, in the checkpoint's settings and config.json alike
    (as a run shared by someone else would: consistent, so no edit is detected)."""
    path = run / checkpoint.CHECKPOINT
    state = torch.load(path, weights_only=True)
    state["config"]["model"] = model
    torch.save(state, path)
    config = json.loads((run / checkpoint.CONFIG).read_text())
    (run / checkpoint.CONFIG).write_text(json.dumps(config | {"model": model}))


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("trust") / "vae"
    assert cli("train", "--model", "vae", "--run-dir", run, *SMALL).returncode == 0
    return run


@pytest.fixture
def shared(vae_run, tmp_path):
    """A copy of a trained run, as received from someone else."""
    run = tmp_path / "shared"
    shutil.copytree(vae_run, run)
    return run


@pytest.mark.slow
def test_code_shipped_inside_a_run_folder_is_never_imported(shared, tmp_path):
    marker = tmp_path / "ran"
    marking(shared / "evil.py", marker)
    name_code(shared, f"{shared}/evil.py:MixturePriorVAE")
    for command in (["sample", shared], ["evaluate", shared, "--k", 5], ["train", "--resume", shared, "--epochs", 2]):
        one_line(
            cli(*command), "evil.py:MixturePriorVAE' is code inside the run folder itself", "not even with --trust-code"
        )
        one_line(cli(*command, "--trust-code"), "is code inside the run folder itself")
    assert imports(marker) == 0


@pytest.mark.slow
def test_a_file_a_run_names_elsewhere_runs_only_with_trust_code(shared, tmp_path):
    marker = tmp_path / "ran"
    code = marking(tmp_path / "theirs.py", marker)
    trained = tmp_path / "trained"  # their run of their file, trained under their own trust file
    their_trust = {"PYRO_VAE_TRUST": str(tmp_path / "their-trust.json")}
    assert (
        cli("train", "--model", f"{code}:MixturePriorVAE", "--run-dir", trained, *SMALL, env=their_trust).returncode
        == 0
    )
    before = imports(marker)
    # ours: a trust file that has never seen the file
    result = cli("sample", trained, "--out", tmp_path / "s.png")
    one_line(
        result,
        f"model '{code}:MixturePriorVAE' ({code}) is code you have not trusted, so nothing was imported",
        "pass --trust-code",
    )
    assert imports(marker) == before and not (tmp_path / "s.png").exists()
    assert cli("sample", trained, "--out", tmp_path / "s.png", "--trust-code").returncode == 0
    assert imports(marker) == before + 1 and (tmp_path / "s.png").exists()
    # remembered by its content: the next command needs no flag
    assert cli("evaluate", trained, "--k", 5).returncode == 0
    entries = json.loads(trust.store().read_text())
    assert [e["path"] for e in entries if e["reference"] == f"{code}:MixturePriorVAE"] == [str(code.resolve())]


@pytest.mark.slow
def test_the_users_own_run_opens_without_a_flag_until_its_file_changes(tmp_path):
    marker = tmp_path / "ran"
    code = marking(tmp_path / "mine.py", marker)
    run = tmp_path / "run"
    assert cli("train", "--model", f"{code}:MixturePriorVAE", "--run-dir", run, *SMALL).returncode == 0
    assert cli("sample", run, "--out", tmp_path / "s.png").returncode == 0
    assert cli("train", "--resume", run, "--epochs", 2).returncode == 0
    opened = imports(marker)
    code.write_text(code.read_text() + "\nprint('something new')\n")
    one_line(cli("sample", run, "--out", tmp_path / "t.png"), "is code that has changed since you trusted it on 20")
    assert imports(marker) == opened


@pytest.mark.slow
def test_a_module_a_run_names_is_not_imported(shared):
    name_code(shared, "this:Anything")  # importing `this` prints the Zen of Python
    result = cli("sample", shared)
    one_line(result, "model 'this:Anything'", "is code you have not trusted, so nothing was imported")
    assert "Beautiful is better" not in result.stdout + result.stderr
    name_code(shared, "no_such_module_here:Anything")
    one_line(cli("sample", shared), "no module no_such_module_here can be found, and nothing was imported")


@pytest.mark.slow
def test_a_recipe_that_names_code_runs_none_of_it(tmp_path):
    marker = tmp_path / "ran"
    code = marking(tmp_path / "recipe_model.py", marker)
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f'[settings]\nmodel = "{code}:MixturePriorVAE"\nz_dim = 4\n')
    one_line(
        cli("train", "--config", recipe, "--run-dir", tmp_path / "a", *SMALL),
        "recipe_model.py:MixturePriorVAE'",
        "is code you have not trusted",
    )
    assert imports(marker) == 0 and not (tmp_path / "a").exists()
    # the option given on the command line wins and is the user's own choice: the file is never read
    assert cli("train", "--config", recipe, "--model", "vae", "--run-dir", tmp_path / "b", *SMALL).returncode == 0
    assert imports(marker) == 0
    assert cli("train", "--config", recipe, "--trust-code", "--run-dir", tmp_path / "c", *SMALL).returncode == 0
    assert imports(marker) >= 1


@pytest.mark.slow
def test_train_refuses_a_model_file_inside_its_own_run_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    code = marking(run / "model.py", tmp_path / "ran")
    one_line(
        cli("train", "--model", f"{code}:MixturePriorVAE", "--run-dir", run, *SMALL), "is a file inside the run folder"
    )
    assert imports(tmp_path / "ran") == 0 and not (run / checkpoint.CHECKPOINT).exists()


def test_locating_code_imports_nothing(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    package = tmp_path / "their_package"
    package.mkdir()
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'a').write('package\\n')\n")
    marking(package / "models.py", marker)
    monkeypatch.syspath_prepend(str(tmp_path))
    code = trust.locate("their_package.models:MixturePriorVAE")
    assert code.files == ((package / "__init__.py").resolve(), (package / "models.py").resolve())
    assert imports(marker) == 0 and "their_package" not in sys.modules
    # the digest is of the content: an edit anywhere on the way changes it
    (package / "__init__.py").write_text("# edited\n")
    assert trust.locate("their_package.models:MixturePriorVAE").sha256 != code.sha256
    assert trust.locate("json:JSONDecoder").files == (Path(json.__file__).resolve(),)
    assert trust.locate("not_installed_anywhere:X") is None
