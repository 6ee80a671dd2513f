import pyro
import pytest
import torch
from pyro import poutine

from conftest import small_config, train_small
from pyro_vae import MODELS, build_model
from pyro_vae.errors import UserError
from pyro_vae.evaluate import elbo_terms
from pyro_vae.networks import NETS

B, Z = 6, 5


def make(model_name, net="mlp", prior="standard", image_shape=(1, 28, 28)):
    config = small_config(model=model_name, net=net, prior=prior, z_dim=Z)
    return build_model(config, image_shape, num_classes=10)


def batch(image_shape=(1, 28, 28)):
    torch.manual_seed(0)
    return torch.bernoulli(torch.full((B, *image_shape), 0.3)), torch.arange(B) % 10


# models with one latent site z (the two-layer hvae: tests/test_hvae.py)
CASES = [(m, n, "standard") for m in MODELS if m != "hvae" for n in NETS] + [
    ("cvae", "mlp", "conditional"),
    ("cvae", "conv", "conditional"),
]


@pytest.mark.parametrize("model_name,net,prior", CASES)
def test_trace_shapes_of_model_and_guide(model_name, net, prior):
    model = make(model_name, net, prior)
    x, y = batch()
    guide_trace = poutine.trace(model.guide).get_trace(x, y)
    model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(x, y)
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    z = guide_trace.nodes["z"]
    assert z["value"].shape == (B, Z) and z["fn"].batch_shape == (B,) and z["fn"].event_shape == (Z,)
    assert z["log_prob"].shape == (B,)
    assert model_trace.nodes["z"]["fn"].event_shape == (Z,) and model_trace.nodes["z"]["log_prob"].shape == (B,)
    obs = model_trace.nodes["x"]
    assert obs["is_observed"] and obs["fn"].batch_shape == (B,) and obs["fn"].event_shape == (1, 28, 28)
    assert obs["log_prob"].shape == (B,) and bool((obs["log_prob"] < 0).all())
    assert [f.name for f in obs["cond_indep_stack"]] == ["data"] and obs["cond_indep_stack"][0].size == B
    params = {name for name, site in model_trace.nodes.items() if site["type"] == "param"}
    assert any(name.startswith("decoder$$$") for name in params)
    assert (any(name.startswith("prior$$$net") for name in params)) == (prior == "conditional")


@pytest.mark.parametrize("shape", [(1, 64, 64), (3, 64, 64), (1, 28, 28)])
def test_conv_networks_fit_other_image_shapes(shape):
    model = make("vae", "conv", image_shape=shape)
    x, y = batch(shape)
    assert model.reconstruct(x, y).shape == (B, *shape)
    assert model.sample(3).shape == (3, *shape)


def test_elbo_terms_match_pyro_trace_elbo():
    model = make("cvae", prior="conditional")
    x, y = batch()
    pyro.set_rng_seed(3)
    loss = pyro.infer.Trace_ELBO().differentiable_loss(model.model, model.guide, x, y)
    pyro.set_rng_seed(3)
    recon, kl = elbo_terms(model, x, y)
    assert recon.shape == kl.shape == (B,)
    assert torch.allclose(loss, (recon + kl).sum(), rtol=1e-6)


def test_autoencoder_has_no_kl_and_no_samples():
    model = make("ae")
    x, y = batch()
    recon, kl = elbo_terms(model, x, y)
    assert torch.equal(kl, torch.zeros(B)) and bool((recon > 0).all())
    with pytest.raises(UserError, match="no prior"):
        model.sample(2)


@pytest.mark.slow
def test_cvae_samples_depend_on_the_label(tmp_path, mnist):
    """Samples drawn for label k look, on average, like real k's: their mean image is nearest the real class mean."""
    model = train_small(
        tmp_path, model="cvae", epochs=2, train_size=60000, z_dim=8, hidden_dim=400, encoder_layers=1
    ).model
    test = mnist[1]
    real_means = torch.stack([test.x[test.y == k].mean(0) for k in range(10)]).flatten(1)
    sample_means = []
    for label in range(10):
        torch.manual_seed(0)  # the same z for every label: only the label differs
        sample_means.append(model.sample(500, torch.full((500,), label)).mean(0).flatten())
    distance = torch.cdist(torch.stack(sample_means), real_means)  # (generated label, real class)
    nearest_is_own = (distance.argmin(1) == torch.arange(10)).sum().item()
    assert nearest_is_own >= 7  # measured 8-9 of 10; a model that ignored the label would score about 1
    off_diagonal = distance[~torch.eye(10, dtype=torch.bool)].mean()
    assert distance.diag().mean() < 0.75 * off_diagonal  # measured 2.4 against 3.9


def test_conditional_prior_depends_on_the_label():
    model = make("cvae", prior="conditional")
    with torch.no_grad():
        for p in model.p_z.parameters():
            p.normal_()
    prior = model.prior(2, torch.tensor([1, 7]))
    assert prior.event_shape == (Z,) and prior.batch_shape == (2,)
    assert not torch.allclose(prior.mean[0], prior.mean[1])
