"""The two-stochastic-layer VAE (models/hvae.py): its program's shapes, its bound, and the tools' view of it."""

import pyro
import torch
from pyro import poutine

from conftest import small_config, train_small
from pyro_vae import build_model
from pyro_vae.evaluate import elbo_terms

B, Z = 6, 5


def batch():
    torch.manual_seed(0)
    return torch.bernoulli(torch.full((B, 1, 28, 28), 0.3)), torch.arange(B) % 10


def test_two_latent_layers_in_model_and_guide():
    model = build_model(small_config(model="hvae", z_dim=Z), (1, 28, 28), 10)
    x, y = batch()
    guide_trace = poutine.trace(model.guide).get_trace(x, y)
    model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(x, y)
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()

    def latent(trace):
        return [
            name
            for name, site in trace.nodes.items()
            if site["type"] == "sample" and not site["is_observed"] and name != "data"
        ]

    assert latent(model_trace) == ["z2", "z1"]  # the model draws top-down
    assert latent(guide_trace) == ["z1", "z2"]  # the guide bottom-up
    assert guide_trace.nodes["z1"]["value"].shape == (B, 2 * Z) and guide_trace.nodes["z2"]["value"].shape == (B, Z)
    for name in ("z1", "z2"):
        assert model_trace.nodes[name]["log_prob"].shape == guide_trace.nodes[name]["log_prob"].shape == (B,)
    # p(z1|z2) reads the guide's z2: change z2 and log p(z1|z2) changes
    before = model_trace.nodes["z1"]["log_prob"]
    guide_trace.nodes["z2"]["value"] = guide_trace.nodes["z2"]["value"] + 1
    moved = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(x, y)
    moved.compute_log_prob()
    assert (moved.nodes["z1"]["log_prob"] - before).abs().min() > 1e-4


def test_elbo_terms_are_pyros_trace_elbo_with_both_layers_in_the_kl():
    model = build_model(small_config(model="hvae", z_dim=Z), (1, 28, 28), 10)
    x, y = batch()
    pyro.set_rng_seed(3)
    loss = pyro.infer.Trace_ELBO().differentiable_loss(model.model, model.guide, x, y)
    pyro.set_rng_seed(3)
    recon, kl = elbo_terms(model, x, y)
    torch.testing.assert_close(loss, (recon + kl).sum())


def test_tools_see_the_top_layer(tmp_path):
    trainer = train_small(tmp_path, model="hvae", z_dim=Z, epochs=2)
    model, (x, _) = trainer.model, batch()
    assert model.encode(x).shape == (B, Z)
    assert model.decode(torch.zeros(3, Z)).shape == (3, 1, 28, 28)
    assert model.sample(3).shape == (3, 1, 28, 28)
    assert model.reconstruct(x).shape == x.shape
    first, last = trainer.history[0].test_neg_elbo, trainer.history[-1].test_neg_elbo
    assert last < first - 10 and last < 230  # it learns: measured 244 then 211 nats (2,000 images, z_dim 5)
