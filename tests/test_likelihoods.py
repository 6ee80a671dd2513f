import pyro.distributions as dist
import pytest
import torch

from pyro_vae.likelihoods import LIKELIHOODS, BernoulliImage


def test_bernoulli_image_is_pyros_independent_bernoulli():
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(5, 1, 6, 4, generator=g)
    reference = dist.Bernoulli(logits=logits).to_event(3)
    likelihood = LIKELIHOODS["bernoulli"]((1, 6, 4))(logits)
    assert likelihood.batch_shape == reference.batch_shape == (5,)
    assert likelihood.event_shape == reference.event_shape == (1, 6, 4)
    binary = torch.bernoulli(torch.full((5, 1, 6, 4), 0.3), generator=g)
    grey = torch.rand(5, 1, 6, 4, generator=g)
    for x in (binary, grey):  # grey levels: the cross-entropy, as with dist.Bernoulli
        torch.testing.assert_close(likelihood.log_prob(x), dist.Bernoulli(logits=logits, validate_args=False).to_event(3).log_prob(x))
    torch.testing.assert_close(likelihood.mean, reference.mean)
    torch.testing.assert_close(likelihood.variance, reference.variance)


def test_bernoulli_image_gradients_match():
    logits = torch.randn(3, 2, 5, 5, requires_grad=True)
    x = torch.bernoulli(torch.full((3, 2, 5, 5), 0.5))
    (grad,) = torch.autograd.grad(BernoulliImage(logits).log_prob(x).sum(), logits)
    (expected,) = torch.autograd.grad(dist.Bernoulli(logits=logits).to_event(3).log_prob(x).sum(), logits)
    torch.testing.assert_close(grad, expected)


def test_bernoulli_image_samples_and_expands():
    logits = torch.tensor([-30.0, 30.0]).repeat(4, 1, 3, 1)  # (4, 1, 3, 2): pixels almost surely 0, 1
    d = BernoulliImage(logits)
    x = d.sample((7,))
    assert x.shape == (7, 4, 1, 3, 2)
    assert torch.equal(x[..., 0], torch.zeros_like(x[..., 0])) and torch.equal(x[..., 1], torch.ones_like(x[..., 1]))
    assert d.expand((4,)) is d
    wide = d.expand((2, 4))
    assert wide.batch_shape == (2, 4) and wide.log_prob(x[:2]).shape == (2, 4)
    assert wide.log_prob(x[:2]).max() > -1e-6  # the sure pixels cost nothing


def test_bernoulli_image_validates_when_asked():
    d = BernoulliImage(torch.zeros(2, 1, 2, 2), validate_args=True)
    assert torch.allclose(d.log_prob(torch.ones(2, 1, 2, 2)), torch.full((2,), 4 * torch.log(torch.tensor(0.5))))
    with pytest.raises(ValueError):
        d.log_prob(torch.full((2, 1, 2, 2), 0.5))
