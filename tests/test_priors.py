"""Priors as parts (priors.py): checked against exact answers.

A density must integrate to one; a one-component mixture at N(0, I) is the standard prior; a
flow's log-density is the change of variables, here with a Jacobian taken by finite differences.
"""

import pyro.distributions as dist
import pytest
import torch

from conftest import small_config
from pyro_vae import Config, Trainer, build_model
from pyro_vae.errors import UserError
from pyro_vae.evaluate import elbo_terms
from pyro_vae.priors import Flow, GaussianMixture, Mixture, mixture
from pyro_vae.spec import resolve

B = 6


def images(n=B, shape=(1, 28, 28)):
    torch.manual_seed(0)
    return torch.bernoulli(torch.full((n, *shape), 0.3)), torch.arange(n) % 10


def two_dimensional_priors():
    """A mixture, a VampPrior and a flow prior over R^2, each moved away from its starting point."""
    torch.manual_seed(1)
    mix = Mixture(2, components=3)
    with torch.no_grad():
        mix.logits.normal_()
        mix.locs.mul_(2)
        mix.log_scales.uniform_(-1.0, 0.5)
    vae = build_model(
        small_config(model="vae", prior="vamp", prior_components=4, z_dim=2, hidden_dim=16), (1, 6, 6), 10
    )
    with torch.no_grad():
        vae.p_z.pseudo_logits.normal_(0, 2)
    flow = Flow(2, steps=2)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return {"mixture": mix, "vamp": vae.p_z, "flow": flow}


@pytest.mark.parametrize("name", ["mixture", "vamp", "flow"])
def test_prior_densities_integrate_to_one_over_the_plane(name):
    prior = two_dimensional_priors()[name]
    side = torch.linspace(-12, 12, 1201, dtype=torch.float64)
    step = (side[1] - side[0]).item()
    grid = torch.cartesian_prod(side, side).float()
    with torch.no_grad():
        density = prior(len(grid)).log_prob(grid).double().exp()
    mass = density.sum().item() * step**2
    assert abs(mass - 1) < 1e-3, f"{name} integrates to {mass}"
    # and the density is not N(0, I) (the test would pass for the standard prior too otherwise)
    standard = dist.Normal(0.0, 1.0).expand([2]).to_event(1).log_prob(grid).double().exp()
    assert (density - standard).abs().sum().item() * step**2 > 0.1


def test_one_component_mixture_at_the_standard_normal_gives_the_standard_elbo():
    x, y = images()
    models = {}
    for prior in ("standard", "mixture"):
        torch.manual_seed(0)  # the networks are built before the prior: the same weights for both
        models[prior] = build_model(
            small_config(model="vae", prior=prior, prior_components=1 if prior == "mixture" else None), (1, 28, 28), 10
        )
    with torch.no_grad():
        models["mixture"].p_z.locs.zero_()
        models["mixture"].p_z.log_scales.zero_()
    terms = {}
    for prior, model in models.items():
        torch.manual_seed(3)
        terms[prior] = elbo_terms(model, x, y)
    torch.testing.assert_close(terms["mixture"][0], terms["standard"][0])
    torch.testing.assert_close(terms["mixture"][1], terms["standard"][1], atol=1e-4, rtol=1e-5)
    z = 2 * torch.randn(100, models["standard"].z_dim)
    with torch.no_grad():
        torch.testing.assert_close(models["mixture"].prior(100).log_prob(z), models["standard"].prior(100).log_prob(z))


def test_gaussian_mixture_is_torchs_mixture_of_diagonal_gaussians():
    torch.manual_seed(0)
    logits, loc, scale = torch.randn(7), torch.randn(7, 3), torch.rand(7, 3) + 0.05
    ours = GaussianMixture(logits, loc, scale).expand([4, 5])
    theirs = dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Normal(loc, scale).to_event(1)).expand([4, 5])
    z = 3 * torch.randn(4, 5, 3)
    torch.testing.assert_close(ours.log_prob(z), theirs.log_prob(z), atol=1e-4, rtol=1e-6)
    torch.testing.assert_close(ours.mean, theirs.mean)
    torch.testing.assert_close(ours.variance, theirs.variance)
    draws = GaussianMixture(logits, loc, scale).sample((200_000,))
    assert (draws.mean(0) - theirs.mean[0, 0]).abs().max() < 0.02
    assert (draws.var(0) / theirs.variance[0, 0] - 1).abs().max() < 0.03
    # a mixture of components that are not diagonal Gaussians is torch's own
    full = dist.MultivariateNormal(loc, scale_tril=torch.diag_embed(scale))
    assert isinstance(mixture(logits, full), dist.MixtureSameFamily)


def test_flow_prior_log_density_is_the_change_of_variables_with_a_numerical_jacobian(float64):
    torch.manual_seed(0)
    flow = Flow(3, steps=2)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
        prior = flow(5)
        z = prior.sample()  # its own samples

        def to_base(v):  # z -> u, the base point it came from
            for transform in reversed(prior.transforms):
                v = transform.inv(v)
            return v

        u = to_base(z)
        eps = 1e-6
        for i in range(5):
            jacobian = torch.stack(
                [(to_base(z[i] + eps * e) - to_base(z[i] - eps * e)) / (2 * eps) for e in torch.eye(3, dtype=z.dtype)],
                1,
            )
            expected = dist.Normal(0.0, 1.0).log_prob(u[i]).sum() + torch.linalg.slogdet(jacobian)[1]
            assert abs(prior.log_prob(z)[i].item() - expected.item()) < 1e-6
        assert (prior.log_prob(z) - dist.Normal(0.0, 1.0).log_prob(z).sum(-1)).abs().max() > 0.05  # not N(0, I)


def test_learned_priors_train_and_sample_in_a_run(tmp_path):
    """Each prior's weights move in training; its samples are images; --elbo meanfield says once which KL it samples."""
    notes = []
    for prior in ("mixture", "vamp", "flow"):
        lines = []
        config = small_config(
            model="vae", prior=prior, elbo="meanfield", prior_components=None if prior == "flow" else 5
        )
        trainer = Trainer(config, tmp_path / prior, progress=False, log=lines.append)
        before = {k: v.clone() for k, v in trainer.model.p_z.state_dict().items()}
        trainer.fit()
        after = trainer.model.p_z.state_dict()
        assert any((after[k] - before[k]).abs().max() > 1e-3 for k in before), f"{prior}: the prior did not learn"
        samples = trainer.model.sample(4)
        assert samples.shape == (4, 1, 28, 28) and 0 <= samples.min() and samples.max() <= 1
        notes += [line for line in lines if "no closed-form KL" in line]
    assert len(notes) == 3
    assert "z (Normal || GaussianMixture)" in notes[0] and "z (Normal || TransformedDistribution)" in notes[2]


REFUSED = [
    (dict(model="vae", prior="conditional"), "needs a condition"),
    (dict(model="ae", prior="mixture"), "has no prior"),
    (dict(model="ae", guide="iaf"), "one point"),
    (dict(model="hvae", elbo="meanfield"), "independent"),
    (dict(model="vae", prior="flow", prior_components=5), "prior_components"),
    (dict(model="vae", prior="mixture", prior_components=0), "at least 1"),
    (dict(model="vae", prior="gaussian"), "unknown prior 'gaussian'"),
    (dict(model="vae", guide="full"), "unknown guide 'full'"),
    (dict(model="vae", flow_steps=0), "flow_steps"),
    (dict(model="vae", flow_steps=4), "flow_steps is the length of a flow prior or an iaf guide"),
    (dict(model="vae", guide="iaf", amp="bf16"), "in bfloat16; use amp none"),
    # the VampPrior is the guide at pseudo-images: it needs a guide that reads an image alone, cheaply
    (dict(model="cvae", prior="vamp"), "needs a label"),
    (dict(model="hvae", prior="vamp"), "another latent layer"),
    (dict(model="vae", prior="vamp", guide="iaf"), "guide diagonal or full-rank"),
]


@pytest.mark.parametrize("settings,message", REFUSED)
def test_combinations_that_make_no_sense_are_refused_in_one_line(settings, message):
    with pytest.raises(UserError, match=message) as error:
        resolve(Config(**settings))
    assert "\n" not in str(error.value)
