"""A user's own model and likelihood, in their own file, named on the command line: the contract,
the references and entry points that name them, and every tool run on them in a fresh process."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyro
import pytest
import torch

from pyro_vae import Config, build_model
from pyro_vae.errors import UserError
from pyro_vae.evaluate import elbo_terms
from pyro_vae.models import VAE
from pyro_vae.objectives import KLWeight
from pyro_vae.parts import names, resolve
from pyro_vae.spec import resolve as resolve_run
from test_cli import SMALL, cli, png_shape

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "examples/mixture_prior.py"
MIXTURE = f"{EXAMPLE}:MixturePriorVAE"
LOGISTIC = f"{EXAMPLE}:DiscretizedLogistic"


def test_names_and_references_resolve_to_classes(monkeypatch):
    assert resolve("model", "vae") is VAE
    mixture = resolve("model", MIXTURE)
    assert mixture.__name__ == "MixturePriorVAE" and resolve("model", MIXTURE) is mixture  # imported once
    assert resolve("likelihood", LOGISTIC).discrete is True
    monkeypatch.syspath_prepend(str(ROOT / "examples"))  # the same file as a module: package.module:Class
    assert resolve("model", "mixture_prior:MixturePriorVAE").__name__ == "MixturePriorVAE"
    assert names("model")[:3] == ["vae", "cvae", "ae"]


BROKEN = {
    "not_a_model.py": "def MixtureVAE(config, image_shape, num_classes):\n    return None\n",
    "half_a_model.py": "import torch.nn as nn\nclass Half(nn.Module):\n    def model(self, x, y=None): pass\n",
    "raises.py": "import this_module_does_not_exist\n",
    "wrong_init.py": "from pyro_vae.models import VAE\nclass NoArgs(VAE):\n    def __init__(self):\n        pass\n",
    "no_z_dim.py": textwrap.dedent("""
        from pyro_vae.models import VAE
        class Forgetful(VAE):
            def __init__(self, config, image_shape, num_classes):
                super().__init__(config, image_shape, num_classes)
                del self.z_dim
        """),
    "flags_on_instance.py": textwrap.dedent("""
        import torch.nn as nn
        class Scratch(nn.Module):
            def __init__(self, config, image_shape, num_classes):
                super().__init__()
                self.conditional, self.generative = False, True  # the tools read these from the class
            model = guide = prior = encode = decode = sample = reconstruct = lambda self, *args: None
        """),
}


@pytest.mark.parametrize(
    "name,message",
    [
        ("vea", "unknown model 'vea'; choose one of: vae, cvae, ae"),
        ("{tmp}/missing.py:Model", "missing.py does not exist (looked from"),
        (
            f"{EXAMPLE}:NoSuchClass",
            "has no NoSuchClass (it defines DiscretizedLogistic, DiscretizedLogisticImage, "
            "MixtureOfGaussians, MixturePriorVAE)",
        ),
        ("no_such_package.models:MixtureVAE", "importing no_such_package.models failed (ModuleNotFoundError"),
        (
            "{tmp}/raises.py:Anything",
            "raises.py failed while being imported (ModuleNotFoundError: No module named 'this_module_does_not_exist')",
        ),
        (
            "{tmp}/not_a_model.py:MixtureVAE",
            "model '{tmp}/not_a_model.py:MixtureVAE' is not a model: it is the function",
        ),
        ("{tmp}/half_a_model.py:Half", "lacks the methods guide, prior, encode, decode, sample, reconstruct"),
        ("{tmp}/wrong_init.py:NoArgs", "must be built as NoArgs(config, image_shape, num_classes)"),
        ("{tmp}/no_z_dim.py:Forgetful", "lacks the attribute z_dim (int)"),
        (
            "{tmp}/flags_on_instance.py:Scratch",
            "needs the class attributes conditional = True or False and generative = True or False",
        ),
        (LOGISTIC, "lacks the methods model, guide"),
    ],
)
def test_a_part_that_cannot_be_used_is_refused_in_one_line(tmp_path, name, message):
    for file, text in BROKEN.items():
        (tmp_path / file).write_text(text)
    name, message = name.format(tmp=tmp_path), message.format(tmp=tmp_path)
    with pytest.raises(UserError) as refused:
        build_model(Config(model=name, z_dim=3), (1, 28, 28), 10)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_module_in_the_folder_the_command_runs_in_is_found(tmp_path, monkeypatch):
    shutil.copy(ROOT / EXAMPLE, tmp_path / "folder_module.py")
    with pytest.raises(
        UserError, match="importing folder_module failed .ModuleNotFoundError.*run from the folder that holds it"
    ):
        resolve("model", "folder_module:MixturePriorVAE")
    monkeypatch.chdir(tmp_path)  # as `python cli.py` run there: the folder is not on sys.path, yet the module is found
    assert resolve("model", "folder_module:MixturePriorVAE").__name__ == "MixturePriorVAE"
    assert str(tmp_path) not in sys.path  # and the path is left as it was


def test_a_file_edited_since_it_was_imported_is_imported_again(tmp_path):
    own = tmp_path / "mine.py"
    own.write_text((ROOT / EXAMPLE).read_text())
    first = resolve("model", f"{own}:MixturePriorVAE")
    own.write_text((ROOT / EXAMPLE).read_text().replace("components = 10", "components = 3"))
    stat = own.stat()
    os.utime(own, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a later time, whatever the clock's grain
    second = resolve("model", f"{own}:MixturePriorVAE")
    assert first.components == 10 and second.components == 3
    assert resolve("model", f"{own}:MixturePriorVAE") is second  # unchanged since: the same class


def test_a_likelihood_is_refused_without_its_discrete_flag(tmp_path):
    (tmp_path / "flagless.py").write_text("import torch.nn as nn\nclass Flagless(nn.Module):\n    pass\n")
    with pytest.raises(UserError, match="lacks the class attribute `discrete`"):
        resolve_run(Config(model="vae", likelihood=f"{tmp_path}/flagless.py:Flagless"))
    with pytest.raises(UserError, match="unknown likelihood 'gausian'; choose one of: bernoulli"):
        resolve_run(Config(model="vae", likelihood="gausian"))


def test_the_kl_weight_reaches_a_model_with_no_kl_code(mnist):
    model = build_model(Config(model=MIXTURE, z_dim=2, hidden_dim=64), (1, 28, 28), 10)
    x, y = mnist[1].x[:64], mnist[1].y[:64]
    pyro.set_rng_seed(3)
    recon, kl = elbo_terms(model, x, y)
    assert bool((kl.abs() > 0).all())
    weight = KLWeight(4.0)
    pyro.set_rng_seed(3)  # the same z: only the weight differs
    loss = pyro.infer.Trace_ELBO().differentiable_loss(weight(model.model), weight(model.guide), x, y)
    assert torch.allclose(loss, (recon + 4.0 * kl).sum(), rtol=1e-5)


def test_no_model_file_carries_the_kl_weight():
    for path in (ROOT / "pyro_vae" / "models").glob("*.py"):
        assert not re.search(r"kl_weight|kl_scale|KLWeight|beta|poutine\.scale", path.read_text()), path


# --- the worked example through the command line, each command a fresh process ---


@pytest.fixture(scope="module")
def mixture_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("user") / "mixture"
    result = cli("train", "--model", MIXTURE, "--run-dir", run, *SMALL, "--epochs", 2, "--z-dim", 2)
    assert result.returncode == 0, result.stderr
    return run


@pytest.mark.slow
def test_the_users_model_trains_samples_evaluates_and_resumes(mixture_run, tmp_path):
    assert json.loads((mixture_run / "config.json").read_text())["model"] == MIXTURE  # the reference is recorded
    sample = cli("sample", mixture_run, "--n", 4, "--out", tmp_path / "s.png")
    assert sample.returncode == 0, sample.stderr
    assert png_shape(tmp_path / "s.png")[0] > 100
    evaluate = cli("evaluate", mixture_run, "--k", 100, "--n", 100, "--device", "cpu", "--out", tmp_path / "e.json")
    assert evaluate.returncode == 0, evaluate.stderr
    result = json.loads((tmp_path / "e.json").read_text())
    assert 0 < result["nll"] <= result["neg_elbo"] + 1 and result["active_units"] <= result["z_dim"] == 2
    latent = cli("plot-latent", mixture_run, "--out", tmp_path / "latent.png")
    assert latent.returncode == 0, latent.stderr
    assert png_shape(tmp_path / "latent.png")[0] > 200
    resumed = cli("train", "--resume", mixture_run, "--epochs", 3, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    history = [line for line in (mixture_run / "metrics.csv").read_text().splitlines()[1:]]
    assert [row.split(",")[0] for row in history] == ["1", "2", "3"]
    # the learned prior's parameters were trained and saved with the networks
    state = torch.load(mixture_run / "checkpoint.pt", weights_only=True)
    assert not torch.equal(state["model"]["mixture.logits"], torch.zeros(10))


@pytest.mark.slow
def test_the_users_model_gets_beta_from_the_trainer(mixture_run, tmp_path):
    run = tmp_path / "beta"
    result = cli("train", "--model", MIXTURE, "--run-dir", run, *SMALL, "--epochs", 2, "--z-dim", 2, "--beta", 8)
    assert result.returncode == 0, result.stderr
    assert "train objective (trace, beta 8)" in result.stdout

    def kl_at_epoch_2(path):
        rows = list(csv.DictReader((path / "metrics.csv").open()))
        return float(rows[1]["test_kl"])

    # the same seed and data: only the weight differs, and the heavier KL term is squeezed
    assert kl_at_epoch_2(run) < 0.6 * kl_at_epoch_2(mixture_run), (kl_at_epoch_2(run), kl_at_epoch_2(mixture_run))


@pytest.mark.slow
def test_the_users_likelihood_is_a_probability_of_grey_levels(tmp_path):
    run = tmp_path / "logistic"
    result = cli("train", "--model", "vae", "--likelihood", LOGISTIC, "--binarize", "none", "--run-dir", run, *SMALL)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "e.json"
    assert cli("evaluate", run, "--k", 10, "--n", 50, "--device", "cpu", "--out", out).returncode == 0
    result = json.loads(out.read_text())
    # discrete: bits per dimension are the nats converted, with no charge for the width of a grey level
    assert result["bits_per_dim"] == pytest.approx(result["neg_elbo"] / (784 * 0.6931471805599453), rel=1e-6)
    assert 0 < result["bits_per_dim"] < 8  # better than a uniform guess over 256 levels


@pytest.mark.slow
def test_compare_takes_the_users_model(tmp_path):
    out = tmp_path / "cmp"
    result = cli("compare", "--model", "vae", "--model", MIXTURE, "--out", out, "--pairs", 1, *SMALL)
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    assert [row.split("`")[1] for row in report.splitlines() if row.startswith("| `")] == ["vae", "MixturePriorVAE"]
    assert f"`MixturePriorVAE` is `{MIXTURE}`" in report
    assert (
        png_shape(out / "MixturePriorVAE-samples.png")[0] > 150 and (out / "MixturePriorVAE" / "checkpoint.pt").exists()
    )


@pytest.mark.slow
def test_a_run_whose_code_has_gone_is_one_line(tmp_path):
    own = tmp_path / "my_models.py"
    shutil.copy(ROOT / EXAMPLE, own)
    run = tmp_path / "run"
    assert cli("train", "--model", f"{own}:MixturePriorVAE", "--run-dir", run, *SMALL).returncode == 0
    own.unlink()
    for command in (["sample", run], ["evaluate", run, "--k", 5], ["train", "--resume", run, "--epochs", 2]):
        result = cli(*command)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert (
            result.stderr.count("\n") == 1
            and f"{run}: model '{own}:MixturePriorVAE': {own} does not exist" in result.stderr
        )


@pytest.mark.slow
def test_an_edited_config_file_never_runs_the_code_it_names(mixture_run, tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Evil: pass\n")
    edited = tmp_path / "edited"
    shutil.copytree(mixture_run, edited)
    config = json.loads((edited / "config.json").read_text())
    (edited / "config.json").write_text(json.dumps(config | {"model": f"{tmp_path}/evil.py:Evil"}))
    result = cli("sample", edited)
    assert result.returncode == 2 and f"config.json describes a '{tmp_path}/evil.py:Evil' model" in result.stderr
    assert not marker.exists()


@pytest.mark.slow
def test_a_class_that_is_not_a_model_is_refused_before_training(tmp_path):
    result = cli("train", "--model", LOGISTIC, "--run-dir", tmp_path / "r", *SMALL)
    assert result.returncode == 2 and "lacks the methods model, guide, prior" in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_an_installed_package_publishes_names_by_entry_points(tmp_path):
    # an installed distribution, as pip leaves one: its metadata and its module on the path
    (tmp_path / "user_models.py").write_text((ROOT / EXAMPLE).read_text())
    info = tmp_path / "user_models-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: user-models\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[pyro_vae.models]\nmixture-vae = user_models:MixturePriorVAE\n\n"
        "[pyro_vae.likelihoods]\nlogistic = user_models:DiscretizedLogistic\n"
    )
    env = {"PYTHONPATH": str(tmp_path)}
    listed = cli("train", "--help", env=env)
    assert "mixture-vae" in listed.stdout and "logistic" in listed.stdout
    run = tmp_path / "run"
    result = cli(
        "train",
        "--model",
        "mixture-vae",
        "--likelihood",
        "logistic",
        "--binarize",
        "none",
        "--run-dir",
        run,
        *SMALL,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert cli("sample", run, "--out", tmp_path / "s.png", env=env).returncode == 0
    gone = cli("sample", run)  # the package is no longer installed
    assert gone.returncode == 2 and "unknown model 'mixture-vae'" in gone.stderr


@pytest.mark.slow
def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "pyro_vae", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and "train" in result.stdout and "compare" in result.stdout


def test_the_users_prior_and_guide_combine_with_the_built_in_models(tmp_path):
    """A prior and a family from the user's file (examples/heavy_tails.py) train, draw and measure log p(x)."""
    from conftest import small_config
    from pyro_vae import Trainer
    from pyro_vae.evaluate import importance_log_likelihood

    heavy = ROOT / "examples" / "heavy_tails.py"
    lines = []
    config = small_config(model="vae", prior=f"{heavy}:StudentT", guide=f"{heavy}:Laplace", elbo="meanfield")
    trainer = Trainer(config, tmp_path / "heavy", progress=False, log=lines.append)
    trainer.fit()
    model = trainer.model
    assert type(model.p_z).__name__ == "StudentT" and type(model.q_z).__name__ == "Laplace"
    assert abs(model.p_z.raw_df.item() - 3.0) > 1e-3  # the prior learned its tails
    assert any("z (Laplace || StudentT)" in line for line in lines)  # no closed-form KL: said once
    log_px = importance_log_likelihood(model, trainer.test_data.head(20), k=50)
    assert log_px.shape == (20,) and bool(torch.isfinite(log_px).all())
    assert -log_px.mean() < trainer.history[-1].test_neg_elbo + 5


@pytest.mark.parametrize(
    "kind,source,message",
    [
        ("prior", "def Prior(z_dim):\n    return None\n", "is not a prior"),
        (
            "prior",
            "import torch.nn as nn\nclass Prior(nn.Module):\n"
            "    def __init__(self, z_dim, width):\n        super().__init__()\n",
            "must be built as Class(z_dim, **options)",
        ),
        (
            "guide",
            "import torch.nn as nn\nclass Guide(nn.Module):\n    def forward(self, params): pass\n",
            "lacks the methods head, code",
        ),
    ],
)
def test_a_prior_or_guide_that_cannot_be_one_is_refused_in_one_line(tmp_path, kind, source, message):
    path = tmp_path / f"my_{kind}.py"
    path.write_text(source)
    name = f"{path}:{'Prior' if kind == 'prior' else 'Guide'}"
    with pytest.raises(UserError, match=re.escape(message)) as error:
        resolve_run(Config(model="vae", **{kind: name}))
    assert "\n" not in str(error.value)


def test_the_users_model_takes_the_prior_and_guide_parts_when_it_says_so(tmp_path):
    """A model that writes self.p_z and self.q_z into its program lists them in ``parts``; one that
    writes its own p(z) (examples/mixture_prior.py) is refused --prior rather than silently ignoring it."""
    from conftest import small_config
    from pyro_vae import Trainer

    path = tmp_path / "my_vae.py"
    path.write_text(
        textwrap.dedent("""
        import pyro
        from pyro_vae.models import LatentVariableModel

        class MyVAE(LatentVariableModel):
            parts = ("prior", "guide")

            def model(self, x, y=None):
                pyro.module("decoder", self.decoder)
                pyro.module("prior", self.p_z)
                with pyro.plate("data", x.shape[0]):
                    z = pyro.sample("z", self.prior(x.shape[0]))
                    pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)

            def guide(self, x, y=None):
                pyro.module("encoder", self.encoder)
                pyro.module("guide", self.q_z)
                with pyro.plate("data", x.shape[0]):
                    pyro.sample("z", self.q_z(self.encoder(x)))
        """)
    )
    trainer = Trainer(
        small_config(model=f"{path}:MyVAE", prior="flow", guide="iaf"),
        tmp_path / "mine",
        progress=False,
        log=lambda line: None,
    )
    trainer.fit()
    assert type(trainer.model.p_z).__name__ == "Flow" and type(trainer.model.q_z).__name__ == "IAF"
    assert trainer.history[0].test_neg_elbo < 300
    with pytest.raises(
        UserError, match=r"prior flow cannot be used with model .*MixturePriorVAE, which writes its own p\(z\)"
    ):
        resolve_run(Config(model=str(ROOT / MIXTURE), prior="flow"))
