"""Evaluation and objectives, checked against exact answers where there are some.

Probabilistic PCA fitted in closed form to real MNIST pixels (downsampled to 14 x 14) has an exact
log p(x) and an exact posterior, so every bound the package computes can be held against the truth.
"""

import math

import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro.infer import RenyiELBO

from conftest import small_config, train_small
from pyro_vae.classifier import load_classifier
from pyro_vae.config import Config
from pyro_vae.data import ImageSet
from pyro_vae.errors import UserError
from pyro_vae.evaluate import (
    active_units,
    amortization_gap,
    conditional_accuracy,
    draw_log_weights,
    elbo_terms,
    evaluate,
    importance_log_likelihood,
    log_weights,
    mean_elbo,
)
from pyro_vae.models.ppca import PPCA
from pyro_vae.objectives import ELBOS, KLWeight, kl_weight
from pyro_vae.spec import resolve


@pytest.fixture(scope="module")
def pixels(mnist):
    """Grey MNIST, 14 x 14, flattened: 3,000 training rows and 500 test rows (batch, 196)."""
    train, test = mnist

    def pool(x):
        return F.avg_pool2d(x, 2).flatten(1)

    return pool(train.x[:3000]), pool(test.x[:500])


def as_set(x):
    return ImageSet(x, torch.zeros(len(x), dtype=torch.long), [])


def fitted_ppca(pixels, guide_steps=0):
    """PPCA at its maximum-likelihood parameters; the guide trained by SVI for ``guide_steps`` steps."""
    torch.manual_seed(0)
    pyro.clear_param_store()  # pyro.module("ppca", ...) must not pick up another test's weights
    train, _ = pixels
    model = PPCA(train.shape[1], 5).fit(train)
    optimizer = torch.optim.Adam([model.A, model.b, model.L_raw], lr=1e-2)
    elbo = ELBOS["trace"](Config())
    for _ in range(guide_steps):
        loss = elbo.differentiable_loss(model.model, model.guide, train[torch.randint(0, len(train), (256,))])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


@pytest.fixture(scope="module")
def rough_ppca(pixels):
    """A guide near, not at, the posterior: the bounds' gaps are visible."""
    return fitted_ppca(pixels, guide_steps=150)


@pytest.fixture(scope="module")
def trained_ppca(pixels):
    """A guide trained until it is all but the exact posterior."""
    return fitted_ppca(pixels, guide_steps=1500)


def test_exact_posterior_as_guide_makes_the_elbo_exact(pixels):
    model = fitted_ppca(pixels).set_exact_posterior()
    test = pixels[1]
    with torch.no_grad():
        weights = log_weights(model, test, None)  # log p(x,z) - log p(z|x) = log p(x) for every z
    exact = model.log_likelihood(test)
    assert exact.mean() > 0  # a density over 196 continuous pixels: about +53 nats per image
    assert (weights - exact).abs().max() < 2e-3


def test_closed_form_elbo_is_the_log_likelihood_less_the_kl_to_the_posterior(pixels, rough_ppca):
    model, test = rough_ppca, pixels[1]
    with torch.no_grad():
        elbo, exact = model.elbo(test), model.log_likelihood(test)
        kl = torch.distributions.kl_divergence(model.variational(test), model.posterior(test))
    assert elbo.shape == kl.shape == (500,)
    assert (
        elbo - (exact - kl)
    ).abs().max() < 1e-3  # log p(x) = ELBO + KL(q(z|x) || p(z|x)), image by image; measured 8e-5
    assert kl.mean() > 1  # this guide is visibly off: measured 6.6 nats
    torch.manual_seed(0)
    sampled = mean_elbo(model, test, None, samples=200)  # Monte Carlo, through Pyro's traces
    assert abs(sampled.mean() - elbo.mean()) < 0.15  # standard error of the difference: 0.02


def test_closed_form_posterior_is_the_exact_guide(pixels):
    model = fitted_ppca(pixels)
    test = pixels[1][:50]
    with torch.no_grad():
        posterior = model.posterior(test)
        model.set_exact_posterior()
        torch.testing.assert_close(model.variational(test).mean, posterior.mean, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(
            model.variational(test).covariance_matrix, posterior.covariance_matrix, atol=1e-5, rtol=1e-4
        )
        torch.testing.assert_close(model.elbo(test), model.log_likelihood(test), atol=2e-3, rtol=0)


def test_fitted_guide_closes_the_amortization_gap_of_ppca(pixels, rough_ppca):
    """Fitted PPCA's W has orthogonal columns, so p(z|x) is a diagonal Gaussian: a per-image
    diagonal guide can reach it, and its ELBO then equals the exact log p(x)."""
    model, test = rough_ppca, pixels[1][:100]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = amortization_gap(model, test, steps=300)
    exact = model.log_likelihood(test)
    with torch.no_grad():
        encoder = model.elbo(test)
    assert abs(result["encoder"].mean() - encoder.mean()) < 0.3  # the encoder's ELBO, sampled
    assert result["gap"].mean() > 3  # measured 6.6 nats: all of the encoder's KL to the posterior
    assert 0 < (exact - result["optimized"]).mean() < 0.1  # below log p(x), and all but at it: measured 0.04
    assert result["trace"].shape == (300,) and result["trace"][-1] > result["trace"][0] + 3
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is left as it was


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vae", "cvae"])
def test_fitted_guide_beats_the_encoder_of_a_trained_model(tmp_path, name):
    trainer = train_small(tmp_path, model=name, epochs=2)
    model, test = trainer.model, trainer.test_data.head(100)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = amortization_gap(model, test.x, test.y if model.conditional else None, steps=100)
    assert result["encoder"].shape == result["optimized"].shape == (100,)
    # the first step starts from the encoder's own q(z|x)
    assert abs(result["trace"][0] - result["encoder"].mean()) < 1.5
    assert result["gap"].mean() > 1  # measured 11.3 (vae) and 9.2 (cvae) nats after 2 epochs
    assert (result["gap"] > 0).float().mean() > 0.9  # and image by image
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # the fitted guide as the importance sampler's proposal: log p(x) lies above its ELBO
    torch.manual_seed(0)
    y = test.y if model.conditional else None
    with torch.no_grad():
        weights = draw_log_weights(model, test.x, y, 200, guide=result["guide"])  # (200, 100)
    log_px = torch.logsumexp(weights, 0) - math.log(200)
    assert result["optimized"].mean() < log_px.mean() < result["optimized"].mean() + 5  # measured 2.5 (vae), 1.9 (cvae)


@pytest.mark.parametrize("name", list(ELBOS))
def test_every_bound_is_below_the_exact_log_likelihood(pixels, rough_ppca, name):
    model = rough_ppca
    test = pixels[1]
    exact = model.log_likelihood(test).mean().item()
    elbo = ELBOS[name](Config(particles=5))
    pyro.set_rng_seed(0)
    with torch.no_grad():
        if isinstance(elbo, RenyiELBO):
            bound = -elbo.loss(model.model, model.guide, test) / len(test)
        else:
            bound = -elbo.differentiable_loss(model.model, model.guide, test).item() / len(test)
    plain = log_weights(model, test, None).mean().item()
    assert bound < exact
    assert exact - plain > 0.5  # the ELBO's gap with this guide: measured about 1-2 nats
    if name in ("iwae", "renyi"):  # tighter than the ELBO with the same guide
        assert bound > plain


@pytest.mark.slow
def test_importance_weighted_estimate_rises_with_k_to_the_exact_value(pixels, trained_ppca):
    model = trained_ppca
    test = as_set(pixels[1])
    exact = model.log_likelihood(test.x).mean().item()
    torch.manual_seed(0)
    estimates = [importance_log_likelihood(model, test, k).mean().item() for k in (1, 10, 100, 5000)]
    assert estimates == sorted(estimates)  # measured gaps: 0.09, 0.01, 0.001, 0.0005 nats
    assert abs(estimates[-1] - exact) < 0.1


def test_importance_sampler_splits_rows_without_changing_the_estimate(pixels, trained_ppca):
    model = trained_ppca
    test = as_set(pixels[1][:60])
    torch.manual_seed(0)
    whole = importance_log_likelihood(model, test, k=200)
    split = importance_log_likelihood(model, test, k=200, max_rows=70)  # 70 draws a pass, one image at a time
    assert whole.shape == split.shape == (60,)
    exact = model.log_likelihood(test.x)
    # each image's estimate is its own: rows mixed up between images would be off by tens of nats
    assert (whole - exact).abs().max() < 0.5 and (split - exact).abs().max() < 0.5  # measured 0.15
    assert not torch.equal(whole, split)  # independent draws


def test_importance_sampler_encodes_each_image_once_and_decodes_all_draws_together(tmp_path):
    # the model the noise bound below was measured with: N(0, I) and one layer each way (after one small
    # epoch, the learned p(z|y) of the cvae's defaults spreads the importance weights more: up to 1.4 nats)
    trainer = train_small(tmp_path, model="cvae", prior="standard", encoder_layers=1, decoder_layers=1, epochs=1)
    model, test = trainer.model, trainer.test_data.head(16)
    seen = {"encoder": [], "decoder": []}
    hooks = [
        getattr(model, name).register_forward_hook(
            lambda m, inputs, out, name=name: seen[name].append(tuple(inputs[0].shape))
        )
        for name in seen
    ]
    torch.manual_seed(0)
    estimate = importance_log_likelihood(model, test, k=1000)
    for hook in hooks:
        hook.remove()
    # 8 images a pass (8192 rows / 1000 draws): the encoder sees the 8 images, not 8,000 copies of them
    assert seen["encoder"] == [(8, 1, 28, 28)] * 2
    assert seen["decoder"] == [(1000, 8, model.z_dim)] * 2
    # the same estimator with every image replicated 1000 times, as rows of one batch
    torch.manual_seed(1)
    rows = test.x.repeat(1000, 1, 1, 1), test.y.repeat(1000)
    with pyro.validation_enabled(False), torch.no_grad():
        replicated = torch.logsumexp(log_weights(model, *rows).view(1000, 16), 0) - math.log(1000)
    assert (estimate - replicated).abs().max() < 1.0  # Monte Carlo noise only
    with torch.no_grad():
        elbo = mean_elbo(model, test.x, test.y, samples=100)
    assert estimate.mean() > elbo.mean() + 1  # a tighter bound than the ELBO: measured 9.4 nats above


def test_active_units_counts_dimensions_that_depend_on_x(pixels):
    model = fitted_ppca(pixels)
    with torch.no_grad():
        model.W[:, 2] = 0  # z[2] no longer explains anything: its posterior is the prior for every x
    model.set_exact_posterior()
    count, variance = active_units(model, as_set(pixels[1]))
    assert count == 4 and variance[2] < 1e-10 and bool((variance[[0, 1, 3, 4]] > 0.01).all())


def test_kl_weight_scales_only_the_latent_site(mnist):
    from pyro_vae import build_model

    model = build_model(small_config(model="cvae"), (1, 28, 28), 10)
    x, y = mnist[1].x[:32], mnist[1].y[:32]
    pyro.set_rng_seed(1)
    recon, kl = elbo_terms(model, x, y)
    weight = KLWeight(2.5)
    pyro.set_rng_seed(1)  # the same z: only the weight differs
    loss = pyro.infer.Trace_ELBO().differentiable_loss(weight(model.model), weight(model.guide), x, y)
    assert torch.allclose(loss, (recon + 2.5 * kl).sum(), rtol=1e-5)
    weight.weight = 1.0  # at 1 the handler changes nothing
    pyro.set_rng_seed(1)
    loss = pyro.infer.Trace_ELBO().differentiable_loss(weight(model.model), weight(model.guide), x, y)
    assert torch.allclose(loss, (recon + kl).sum(), rtol=1e-6)


def test_kl_warmup_schedule():
    config = Config(beta=2.0, kl_warmup=4)
    assert kl_weight(config, 1, 0.5) == pytest.approx(0.25)
    assert kl_weight(config, 4, 1.0) == 2.0 and kl_weight(config, 9, 0.1) == 2.0
    assert kl_weight(Config(beta=0.5), 1, 0.01) == 0.5


def test_objective_settings_are_checked():
    with pytest.raises(UserError, match="particles must be at least 1"):
        resolve(Config(particles=0))
    with pytest.raises(UserError, match="beta must be positive"):
        resolve(Config(beta=0))
    with pytest.raises(UserError, match="alpha 1 makes the Renyi bound the ELBO"):
        resolve(Config(elbo="renyi", alpha=1.0))
    with pytest.raises(UserError, match="cannot warm up"):
        resolve(Config(elbo="jit", kl_warmup=2))


@pytest.mark.slow
@pytest.mark.parametrize("elbo", ["iwae", "renyi", "trace"])
def test_multi_particle_objectives_train(tmp_path, elbo):
    trainer = train_small(
        tmp_path, model="cvae", elbo=elbo, particles=3, epochs=2, beta=1.0, kl_warmup=1 if elbo == "trace" else 0
    )
    history = trainer.history
    assert history[1].test_neg_elbo < history[0].test_neg_elbo < 300


def test_evaluate_reports_a_likelihood_between_the_elbo_and_zero(tmp_path):
    trainer = train_small(tmp_path, model="vae", epochs=2)
    result = evaluate(trainer.model, trainer.test_data.head(100), k=100)
    assert result["images"] == 100 and result["k"] == 100
    # -log p(x) <= -ELBO (the bound) up to noise, and the gap is real for a 2-epoch model
    assert 0 < result["nll"] < result["neg_elbo"] - 0.5
    assert 0 < result["nll_stderr"] < 5
    assert 1 <= result["active_units"] <= result["z_dim"] == 8


@pytest.mark.slow
def test_cvae_samples_are_classified_as_the_label_asked_for(tmp_path):
    classifier, accuracy = load_classifier("mnist", train_size=10000, log=lambda line: None)
    assert accuracy > 0.95  # the judge itself: measured 96.8% after 2 epochs on 10,000 images (98.5% on all)
    # the networks the number below was measured with (400 units, one encoder layer)
    model = train_small(tmp_path, model="cvae", epochs=2, train_size=60000, hidden_dim=400, encoder_layers=1).model
    result = conditional_accuracy(model, classifier, n_per_class=50)
    assert len(result["per_class"]) == 10
    assert result["overall"] > 0.4  # chance is 0.1; measured 0.63 after 2 epochs (z_dim 8)
