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
        torch.testing.assert_close(
            likelihood.log_prob(x), dist.Bernoulli(logits=logits, validate_args=False).to_event(3).log_prob(x)
        )
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


@pytest.mark.parametrize("logit", [-6.0, -1.0, 0.0, 0.7, 4.0])
def test_continuous_bernoulli_is_a_density_on_the_unit_interval(logit):
    likelihood = LIKELIHOODS["continuous-bernoulli"]((1, 1, 1))
    d = likelihood(torch.full((1, 1, 1, 1), logit))
    grid = torch.linspace(0, 1, 20001)
    density = d.log_prob(grid.view(-1, 1, 1, 1)).exp()
    assert torch.trapezoid(density, grid).item() == pytest.approx(
        1.0, abs=1e-3
    )  # the Bernoulli's cross-entropy alone is not
    mean = torch.trapezoid(grid * density, grid).item()
    assert d.mean.item() == pytest.approx(mean, abs=1e-3)  # the decoded image is the density's mean


def test_gaussian_scale_is_learned_or_fixed():
    learned, fixed = LIKELIHOODS["gaussian"]((1, 2, 2)), LIKELIHOODS["gaussian"]((1, 2, 2), scale=0.2)
    assert [name for name, _ in learned.named_parameters()] == ["log_scale"] and float(
        learned.scale.detach()
    ) == pytest.approx(0.1)
    assert list(fixed.parameters()) == [] and float(fixed.scale) == pytest.approx(0.2)
    loc, x = torch.zeros(3, 1, 2, 2), torch.full((3, 1, 2, 2), 0.2)
    torch.testing.assert_close(fixed(loc).log_prob(x), dist.Normal(loc, 0.2).to_event(3).log_prob(x))
    assert fixed.state_dict()["log_scale"].exp().item() == pytest.approx(0.2)  # it travels with a checkpoint


def autoregressive(image_shape, seed=0):
    """The autoregressive likelihood with random weights (its output layer starts at zero, which would hide bugs)."""
    torch.manual_seed(seed)
    likelihood = LIKELIHOODS["autoregressive"](image_shape)
    for weight in likelihood.parameters():
        torch.nn.init.normal_(weight, std=0.5)
    return likelihood


def test_autoregressive_pixels_sum_to_one_over_every_image():
    import itertools

    likelihood = autoregressive((1, 2, 3))
    decoded = torch.randn(4, 1, 2, 3)  # four codes' decoder outputs
    images = torch.tensor(list(itertools.product([0.0, 1.0], repeat=6))).view(64, 1, 1, 2, 3)  # all 2^6 binary images
    total = likelihood(decoded).log_prob(images).exp().sum(0)  # (4,)
    torch.testing.assert_close(total, torch.ones(4))
    # and it is not the factorized Bernoulli: the pixels before a pixel move its probability
    assert not torch.allclose(
        likelihood(decoded).log_prob(images), LIKELIHOODS["bernoulli"]((1, 2, 3))(decoded).log_prob(images)
    )


def test_a_pixel_reads_only_the_pixels_before_it():
    likelihood = autoregressive((1, 28, 28))
    d = likelihood(torch.randn(1, 1, 28, 28))
    x = torch.bernoulli(torch.full((1, 1, 28, 28), 0.3))
    for i, j in [(0, 0), (10, 10), (27, 27), (5, 0)]:
        flipped = x.clone()
        flipped[..., i, j] = 1 - flipped[..., i, j]
        changed = ((d.logits(flipped) - d.logits(x)).abs() > 0).flatten().nonzero().flatten()
        assert changed.numel() > 0 or (i, j) == (27, 27)
        assert changed.numel() == 0 or changed.min() > i * 28 + j  # only pixels after it


def test_autoregressive_decoding_samples_and_broadcasts():
    likelihood = autoregressive((1, 28, 28))
    d = likelihood(torch.randn(3, 1, 28, 28))
    mean = d.mean  # the greedy path, decoded a few rows at a time: the same as reading the whole image
    torch.testing.assert_close(mean, torch.sigmoid(d.logits((mean > 0.5).float())))
    assert d.sample().shape == (3, 1, 28, 28) and set(d.sample().unique().tolist()) <= {0.0, 1.0}
    x = torch.bernoulli(torch.full((3, 1, 28, 28), 0.2))
    many = likelihood(torch.randn(5, 3, 1, 28, 28))  # five codes per image, as importance sampling scores them
    assert many.log_prob(x).shape == (5, 3) and many.expand((2, 5, 3)).log_prob(x).shape == (2, 5, 3)
    torch.testing.assert_close(many.log_prob(x)[2], likelihood(many.decoded[2]).log_prob(x))
