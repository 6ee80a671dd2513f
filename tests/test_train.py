import dataclasses
import json
import math

import pytest
import torch

from conftest import small_config, train_small
from pyro_vae import Trainer, checkpoint, load_model
from pyro_vae.errors import UserError
from pyro_vae.evaluate import evaluate_elbo
from pyro_vae.spec import resolve


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["vae", "cvae", "ae"])
def test_elbo_improves_on_real_mnist(tmp_path, model_name):
    trainer = Trainer(small_config(model=model_name, epochs=3), tmp_path, progress=False, log=lambda line: None)
    before = evaluate_elbo(trainer.model, trainer.test_data).neg_elbo
    history = trainer.fit()
    after = [row.test_neg_elbo for row in history]
    assert before > 500  # untrained: about 784 * log 2 nats
    assert after[0] > after[1] > after[2]
    assert after[2] < 225  # measured about 195-206 after 3 epochs on 2,000 images
    assert history[-1].train_neg_elbo < 230


@pytest.mark.slow
@pytest.mark.parametrize("elbo,net", [("meanfield", "mlp"), ("jit", "mlp"), ("trace", "conv")])
def test_other_elbos_and_nets_train(tmp_path, elbo, net):
    history = train_small(tmp_path, model="vae", elbo=elbo, net=net, epochs=2).history
    assert history[1].test_neg_elbo < history[0].test_neg_elbo < 400


def test_jit_elbo_compiles_once(tmp_path):
    # Pyro's JIT keys its compiled loss on the ids of model and guide: were they fresh bound
    # methods on every step, it would trace again every step (about 4x slower than eager).
    trainer = train_small(tmp_path, model="cvae", elbo="jit", epochs=2)
    compiled = trainer.elbo._loss_and_surrogate_loss.compiled
    assert trainer.train_data.num_batches(trainer.config.batch_size, drop_last=True) * 2 == 40
    assert len(compiled) == 1


def test_compiled_networks_train_like_eager_ones_and_save_the_same_checkpoint(tmp_path):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = train_small(tmp_path / "compiled", model="cvae", epochs=2, compile=True)
    eager = train_small(tmp_path / "eager", model="cvae", epochs=2)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2  # the encoder and the decoder at least
    for a, b in zip(compiled.history, eager.history):  # measured: equal to 4 decimals on the CPU
        assert a.test_neg_elbo == pytest.approx(b.test_neg_elbo, rel=1e-3)
    model, config, _ = load_model(tmp_path / "compiled")  # an eager model reads it: the same parameter names
    assert config.compile
    assert model.state_dict().keys() == eager.model.state_dict().keys()


def test_bf16_autocast_runs_the_networks_in_bfloat16_and_the_bound_in_float32(tmp_path):
    trainer = Trainer(small_config(model="vae", epochs=2, amp="bf16"), tmp_path, progress=False, log=lambda line: None)
    seen = []
    hook = trainer.model.decoder.out.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    x, y = next(trainer.train_data.batches(100))
    loss = trainer.step(torch.bernoulli(x), y)
    hook.remove()
    assert seen == [torch.bfloat16] and loss.dtype == torch.float32
    assert trainer.model.decoder.out.weight.dtype == torch.float32  # the weights Adam updates stay float32
    history = trainer.fit()
    full = train_small(tmp_path / "fp32", model="vae", epochs=2).history
    # measured: 213.90 against 213.84 nats after 2 epochs
    assert history[-1].test_neg_elbo == pytest.approx(full[-1].test_neg_elbo, rel=0.01)


def test_same_seed_same_numbers_and_other_seed_other_numbers(tmp_path):
    a = train_small(tmp_path / "a", seed=5).history[0]
    b = train_small(tmp_path / "b", seed=5).history[0]
    c = train_small(tmp_path / "c", seed=6).history[0]
    assert dataclasses.replace(a, seconds=0) == dataclasses.replace(b, seconds=0)
    assert a.train_neg_elbo != c.train_neg_elbo


@pytest.mark.slow
@pytest.mark.parametrize(
    "parts",
    [
        dict(model="cvae", prior="conditional"),
        dict(model="vae", prior="vamp", prior_components=20),
        # meanfield looks at the sites first: no trace left
        dict(model="vae", prior="flow", guide="iaf", elbo="meanfield"),
    ],
)
def test_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path, parts):
    straight = train_small(tmp_path / "straight", **parts, epochs=3)
    train_small(tmp_path / "split", **parts, epochs=1)
    resumed = Trainer.resume(tmp_path / "split", epochs=3, progress=False, log=lambda line: None)
    assert resumed.epoch == 1
    resumed.fit()
    drop_time = lambda h: [dataclasses.replace(r, seconds=0) for r in h]  # noqa: E731
    assert drop_time(resumed.history) == drop_time(straight.history)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_checkpoint_round_trip(tmp_path):
    trainer = train_small(tmp_path, model="cvae", epochs=2)
    model, config, state = load_model(tmp_path)
    assert config == trainer.config and state["epoch"] == 2 and state["classes"] == [str(d) for d in range(10)]
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key])
    y = torch.arange(10)
    torch.manual_seed(0)
    expected = trainer.model.sample(10, y)
    torch.manual_seed(0)
    assert torch.equal(model.sample(10, y), expected)
    # the run directory says the same as the checkpoint, and nothing half-written is left
    rows = (tmp_path / checkpoint.METRICS).read_text().strip().splitlines()
    assert rows[0].startswith("epoch,train_neg_elbo,test_neg_elbo") and len(rows) == 3
    assert math.isclose(float(rows[2].split(",")[2]), trainer.history[1].test_neg_elbo)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint.pt", "config.json", "metrics.csv", "reconstructions.png", "samples.png"]


def test_a_checkpoint_of_format_1_opens_and_resumes(tmp_path):
    """Format 1 (before priors were parts) kept N(0, I) as buffers z_loc, z_scale and the CVAE's p(z|y) as
    prior_net, and had no settings for guides and flows, nor (before format 3) for the decoder's depth,
    which was 1 (the CVAE's default is now 2). The CVAE is named as a module's class, as a user's
    subclass would be: the renaming follows the class, not its name."""
    trainer = train_small(
        tmp_path, model="pyro_vae.models.cvae:CVAE", prior="conditional", encoder_layers=1, decoder_layers=1
    )
    path = tmp_path / checkpoint.CHECKPOINT
    state = torch.load(path, weights_only=True)
    old = {
        ("prior_net." + k[len("p_z.net.") :] if k.startswith("p_z.net.") else k): v for k, v in state["model"].items()
    }
    new_settings = (
        "guide",
        "prior_components",
        "flow_steps",
        "encoder_layers",
        "decoder_layers",
        "labels",
        "classify_weight",
        "classifier",
    )
    settings = {k: v for k, v in state["config"].items() if k not in new_settings}
    state |= {"format": 1, "model": {**old, "z_loc": torch.zeros(8), "z_scale": torch.ones(8)}, "config": settings}
    torch.save(state, path)
    (tmp_path / checkpoint.CONFIG).write_text(json.dumps(settings))
    model, _, loaded = load_model(tmp_path)
    assert loaded["format"] == checkpoint.FORMAT and any(k.startswith("prior_net.") for k in old)
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
    resumed = Trainer.resume(tmp_path, epochs=2, progress=False, log=lambda line: None)
    resumed.fit()
    assert resumed.epoch == 2 and torch.load(path, weights_only=True)["format"] == checkpoint.FORMAT
    state["format"] = checkpoint.FORMAT + 1
    torch.save(state, path)
    with pytest.raises(UserError, match="a newer pyro-vae wrote it: upgrade pyro-vae"):
        load_model(tmp_path)


def test_broken_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_model(tmp_path / "missing")
    with pytest.raises(UserError, match="has no checkpoint.pt"):
        load_model(tmp_path)
    train_small(tmp_path)
    data = (tmp_path / checkpoint.CHECKPOINT).read_bytes()
    (tmp_path / checkpoint.CHECKPOINT).write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or not a pyro-vae checkpoint"):
        load_model(tmp_path)


def test_bad_settings_are_refused_before_training(tmp_path):
    with pytest.raises(UserError, match="--batch-size 5000 is larger than the 2000 training images"):
        Trainer(small_config(batch_size=5000), tmp_path, progress=False)
    with pytest.raises(UserError, match="z_dim must be at least 1"):
        Trainer(small_config(z_dim=0), tmp_path, progress=False)
    with pytest.raises(UserError, match="unknown elbo 'bogus'"):
        Trainer(small_config(elbo="bogus"), tmp_path, progress=False)
    with pytest.raises(UserError, match="unknown amp 'fp8'; choose one of: none, bf16"):
        Trainer(small_config(amp="fp8"), tmp_path, progress=False)
    with pytest.raises(UserError, match="elbo jit traces the whole step in float32"):
        Trainer(small_config(elbo="jit", compile=True), tmp_path, progress=False)


def test_default_learning_rate_is_lower_only_for_an_autoencoder_that_learns_its_noise_scale():
    from pyro_vae import Config

    def lr(**settings):
        return resolve(Config(**settings)).lr

    assert lr(model="ae", dataset="faces") == 5e-4  # Gaussian with a learned scale
    assert lr(model="ae", dataset="faces", likelihood_scale=0.1) == 2e-3  # a fixed scale
    assert [lr(model=m, dataset="faces") for m in ("vae", "cvae")] == [2e-3, 2e-3]
    assert lr(model="ae", dataset="mnist") == 2e-3  # Bernoulli: no scale
    assert lr(model="ae", dataset="faces", lr=1e-2) == 1e-2  # given: kept
    saved = resolve(Config(model="vae", dataset="faces")).config.to_dict()
    assert Config.from_dict(saved).lr == 2e-3 and saved["lr"] == 2e-3  # the value a run used is what it saves


def test_learning_rate_warms_up_step_by_step_and_then_stays(tmp_path):
    from pyro_vae.schedules import lr_scale

    config = small_config(lr_warmup=4)
    assert lr_scale(config, 1, 0.5) == pytest.approx(0.125) and lr_scale(config, 4, 1.0) == 1.0 == lr_scale(
        config, 9, 0.1
    )
    assert lr_scale(small_config(), 1, 0.01) == 1.0  # off by default
    with pytest.raises(UserError, match="lr_warmup must be 0 .off. or a number of epochs, not -1"):
        resolve(small_config(lr_warmup=-1))
    seen = []
    trainer = Trainer(small_config(lr_warmup=2, epochs=3, lr=1e-3), tmp_path, progress=False, log=lambda line: None)
    step = trainer.optimizer.step
    trainer.optimizer.step = lambda: (seen.append(trainer.optimizer.param_groups[0]["lr"]), step())[1]
    trainer.fit()
    # 20 steps an epoch: lr/40, 2 lr/40, ..., lr at the last step of epoch 2, then lr
    assert len(seen) == 60 and seen[0] == pytest.approx(1e-3 / 40) and seen[19] == pytest.approx(5e-4)
    assert seen[39:] == pytest.approx([1e-3] * 21) and all(a < b for a, b in zip(seen[:39], seen[1:40]))


def test_default_run_dir_names_a_model_given_by_reference_by_its_class():
    import re

    from pyro_vae import Config
    from pyro_vae.training import default_run_dir

    # lr, prior and the networks' sizes given: the Config then has no reason to import the (here
    # imaginary) classes, whose defaults it would read otherwise
    sizes = dict(hidden_dim=400, encoder_layers=1, decoder_layers=1)
    names = [
        default_run_dir(Config(model=model, lr=1e-3, prior="standard", **sizes)).name
        for model in ("examples/mixture_prior.py:MixturePriorVAE", "my_package.models:MixtureVAE", "cvae")
    ]
    assert [re.sub(r"\d{8}-\d{6}$", "TIME", name) for name in names] == [
        "MixturePriorVAE-mnist-TIME",
        "MixtureVAE-mnist-TIME",
        "cvae-mnist-TIME",
    ]
    assert default_run_dir(Config(model="vae", lr=1e-3)).parent.name == "runs"
