"""A run is resolved once (spec.py): every command resolves its settings one time and hands the result on."""

from __future__ import annotations

import collections
import dataclasses

import pytest
from typer.testing import CliRunner

from conftest import small_config
from pyro_vae import Config, UserError, parts, spec
from pyro_vae.cli import app
from pyro_vae.models import CVAE, SemiSupervisedCVAE
from pyro_vae.spec import Spec, resolve

TINY = ["--train-size", "200", "--test-size", "100", "--batch-size", "100", "--z-dim", "2", "--hidden-dim", "16"]
TINY += ["--epochs", "1", "--no-progress", "--device", "cpu", "--step", "eager"]


@pytest.fixture
def resolutions(monkeypatch):
    """How often each kind of part had its name resolved (parts.resolve), by kind."""
    counted = collections.Counter()
    real = parts.resolve

    def counting(kind, name):
        counted[kind] += 1
        return real(kind, name)

    monkeypatch.setattr(parts, "resolve", counting)
    return counted


def invoke(*args):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result


def test_each_command_resolves_its_run_once(tmp_path, resolutions):
    once = {"model": 1, "likelihood": 1, "prior": 1, "guide": 1}
    run = tmp_path / "run"
    invoke("train", "--model", "vae", *TINY, "--run-dir", run)
    assert dict(resolutions) == once
    resolutions.clear()
    invoke("train", "--resume", run, "--epochs", "2", "--no-progress")
    assert dict(resolutions) == once
    resolutions.clear()
    invoke("sample", run, "--n", "4", "--out", tmp_path / "samples.png")
    assert dict(resolutions) == once


def test_a_spec_is_the_settings_filled_in_and_cannot_change():
    resolved = resolve(Config(model="cvae"))
    # left out: the data set's (a likelihood, a batch size) and the model's (its prior and widths)
    assert (resolved.likelihood, resolved.batch_size, resolved.prior, resolved.hidden_dim) == (
        "bernoulli",
        256,
        "conditional",
        600,
    )
    assert resolved.parts.model is CVAE and resolved.config.lr == 2e-3
    assert Config(model="cvae").prior is None  # a Config stays as it was given: plain data
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.config.lr = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.parts = None
    assert resolve(resolved.config) == resolved  # resolving what is resolved changes nothing
    with pytest.raises(AttributeError, match="no attribute 'z_dims'"):
        resolved.z_dims


def test_messages_name_options_on_the_command_line_and_fields_from_python():
    with pytest.raises(UserError, match=r"^lr must be positive, not -1.0$"):
        resolve(Config(lr=-1.0))
    with pytest.raises(UserError, match=r"^hidden_dim must be at most 65536"):
        resolve(Config(hidden_dim=10**6))
    with spec.spelled_as_options():
        with pytest.raises(UserError, match=r"^--lr must be positive, not -1.0$"):
            resolve(Config(lr=-1.0))
    result = CliRunner().invoke(app, ["train", "--lr", "-1"])
    assert result.exit_code == 2 and "error: --lr must be positive, not -1.0" in result.output


def test_labels_choose_the_semi_supervised_form_by_a_rule_that_holds_for_subclasses(tmp_path):
    assert resolve(small_config(labels=100)).parts.model is SemiSupervisedCVAE
    own = tmp_path / "my_cvae.py"
    own.write_text("from pyro_vae.models import CVAE\n\nclass MyCVAE(CVAE):\n    pass\n")
    with pytest.raises(UserError, match="MyCVAE subclasses CVAE, whose semi-supervised form is SemiSupervisedCVAE"):
        resolve(small_config(model=f"{own}:MyCVAE", labels=100))
    own.write_text("from pyro_vae.models import SemiSupervisedCVAE\n\nclass MyM2(SemiSupervisedCVAE):\n    pass\n")
    assert resolve(small_config(model=f"{own}:MyM2", labels=100)).parts.model.__name__ == "MyM2"


def test_torchrun_refusals_come_before_anything_is_loaded():
    with pytest.raises(UserError, match="batch_size 100 does not split evenly over 3 processes"):
        resolve(small_config(), world_size=3)
    with pytest.raises(UserError, match="elbo iwae cannot train in several processes"):
        resolve(small_config(elbo="iwae"), world_size=2)
    with pytest.raises(UserError, match="step compiled trains in one process"):
        resolve(small_config(step="compiled"), world_size=2)
    assert isinstance(resolve(small_config(), world_size=2), Spec)


def test_one_helper_builds_every_part_with_the_options_it_names(tmp_path):
    from pyro_vae.build import OPTIONS, build
    from pyro_vae.guides import IAF, Diagonal
    from pyro_vae.likelihoods import Bernoulli, Gaussian
    from pyro_vae.priors import Flow, Mixture

    assert build("prior", Mixture, 3, components=None, steps=4, cond_dim=0, model=None).locs.shape == (10, 3)
    assert build("prior", Mixture, 3, components=4, steps=4, cond_dim=0, model=None).locs.shape == (4, 3)
    assert len(build("prior", Flow, 3, components=4, steps=5, cond_dim=0, model=None).steps) == 5
    assert len(build("guide", IAF, 16, 3, steps=3).steps) == 3 and isinstance(build("guide", Diagonal, 16, 3), Diagonal)
    assert not build("likelihood", Gaussian, (1, 4, 4), scale=0.1).log_scale.requires_grad
    assert isinstance(build("likelihood", Bernoulli, (1, 4, 4), scale=None), Bernoulli)
    with pytest.raises(ValueError, match="priors take the options components, steps, cond_dim, model, not width"):
        build("prior", Mixture, 3, width=2)
    # the contract checks read the same table: a prior that needs an option no run gives is refused by name
    own = tmp_path / "needy.py"
    needy = "class Needy(nn.Module):\n    def __init__(self, z_dim, *, width):\n        super().__init__()\n"
    own.write_text("import torch.nn as nn\n\n" + needy)
    assert "width" not in OPTIONS["prior"]
    with pytest.raises(UserError, match=r"prior '.*Needy' \(Needy\) must be built as Class\(z_dim, \*\*options\)"):
        parts.resolve("prior", f"{own}:Needy")
