"""Measuring a trained model: the ELBO and its parts, log p(x) by importance sampling, active units.

    ELBO(x) = E_q[log p(x|z)] - E_q[log q(z|x) - log p(z)]
            = -reconstruction                - KL

    log p(x) ~ log (1/k) sum_i p(x, z_i) / q(z_i|x),   z_i ~ q(z|x)   (Burda et al., 2016)

The importance-weighted estimate is a lower bound on log p(x) in expectation that rises with k
towards it; its gap is far smaller than the ELBO's. Every term is read off Pyro traces of the
model and guide, so this works for any model/guide pair without model-specific code. For a
conditional model the same numbers are of log p(x|y).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from .contract import device_of
from .data import ImageSet


def elbo_terms(model, x: torch.Tensor, y: torch.Tensor, guide=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Single-sample estimates of -log p(x|z) and KL(q(z|x) || p(z)), each (batch,) in nats.

    guide: another q(z|x) for the model's latent sites, called as ``guide(x, y)`` (default: the model's own).
    """
    guide_trace = poutine.trace(guide or model.guide).get_trace(x, y)
    model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(x, y)
    recon = x.new_zeros(x.shape[0])
    kl = x.new_zeros(x.shape[0])
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample":
            continue
        log_p = site["fn"].log_prob(site["value"])
        if site["is_observed"]:
            recon = recon - log_p
        else:
            kl = kl + guide_trace.nodes[name]["fn"].log_prob(site["value"]) - log_p
    return recon, kl


def bits_per_dim(nats: float, model, data: ImageSet) -> float:
    """Nats per image -> bits per pixel value (per dimension), the unit of most image-model papers.

    A density over grey levels in [0, 1] (Gaussian, Laplace, continuous Bernoulli) on 8-bit
    pictures also pays for the width of one level, log2(255) bits per value, which makes it the
    probability of the stored 8-bit image and so comparable with discrete models (Theis, van den
    Oord and Bethge, 2016); it is a bound on that probability when the density was trained and is
    measured on dequantized images (``--binarize dequantize``), and may be anything otherwise: a
    density can pile up on the levels themselves. Spectrograms are not quantized: their figure is the plain conversion.
    """
    dims = math.prod(data.image_shape)
    level = math.log2(255) if not model.likelihood.discrete and data.features is None else 0.0
    return nats / (dims * math.log(2)) + level


@dataclass(frozen=True)
class ElboEstimate:
    """The ELBO of a model over a data set (:func:`evaluate_elbo`): means in nats per image, one z ~ q(z|x) each."""

    neg_elbo: float  # -ELBO = recon + kl (lower is better)
    recon: float  # -E_q[log p(x|z)]
    kl: float  # E_q[log q(z|x) - log p(z)], the single-sample estimate of the KL divergence
    bits_per_dim: float  # the -ELBO in bits per dimension (:func:`bits_per_dim`)


@torch.no_grad()
def evaluate_elbo(model, data: ImageSet, batch_size: int = 1000) -> ElboEstimate:
    """Mean -ELBO, reconstruction and KL over ``data``, in nats per image (lower -ELBO is better),
    and the -ELBO in bits per dimension."""
    totals = torch.zeros(2, device=data.x.device)
    was_training = model.training
    model.eval()
    with pyro.validation_enabled(False):
        for x, y in data.batches(batch_size):
            recon, kl = elbo_terms(model, x, y)
            totals += torch.stack([recon.sum(), kl.sum()])
    model.train(was_training)
    recon, kl = (totals / len(data)).tolist()
    return ElboEstimate(recon + kl, recon, kl, bits_per_dim(recon + kl, model, data))


def log_weights(model, x: torch.Tensor, y: torch.Tensor, guide=None) -> torch.Tensor:
    """log p(x, z) - log q(z|x) at one z ~ q(z|x) per image: (batch,). Its mean is the ELBO.

    guide: another q(z|x), as in :func:`elbo_terms`.
    """
    recon, kl = elbo_terms(model, x, y, guide)
    return -(recon + kl)


def draw_log_weights(model, x: torch.Tensor, y: torch.Tensor | None, draws: int, guide=None) -> torch.Tensor:
    """log p(x, z) - log q(z|x) at ``draws`` independent z ~ q(z|x) per image: (draws, batch).

    Model and guide run once under a plate of draws (dim -2), so the encoder sees each image once
    and the decoder gets codes (draws, batch, z_dim). guide: as in :func:`elbo_terms`, called on
    the images themselves; its sites broadcast over the draws.
    """
    with pyro.plate("draws", draws, dim=-2):
        return log_weights(model, x, y, guide)


@torch.no_grad()
def importance_log_likelihood(
    model, data: ImageSet, k: int = 1000, max_rows: int = 8192, progress=None
) -> torch.Tensor:
    """The importance-weighted estimate of log p(x) of every image, with ``k`` draws each: (N,) nats.

    The draws are vectorized (:func:`draw_log_weights`): the decoder gets at most ``max_rows``
    codes at a time, which bounds memory for any k on the CPU and on a GPU (twice as fast as
    replicating every image k times, benchmarks/eval_throughput.py). ``progress(done, total)`` is
    called per batch of images.
    """
    was_training = model.training
    model.eval()
    draws = min(k, max_rows)  # draws per pass
    images = max(1, max_rows // draws)  # images per pass
    estimates, done = [], 0
    with pyro.validation_enabled(False):
        for x, y in data.batches(images):
            chunks = [draw_log_weights(model, x, y, min(draws, k - start)) for start in range(0, k, draws)]
            estimates.append(torch.logsumexp(torch.cat(chunks), dim=0) - math.log(k))
            done += len(x)
            if progress is not None:
                progress(done, len(data))
    model.train(was_training)
    return torch.cat(estimates)


@torch.no_grad()
def mean_elbo(
    model, x: torch.Tensor, y: torch.Tensor | None, guide=None, samples: int = 100, max_rows: int = 8192
) -> torch.Tensor:
    """The ELBO of each image averaged over ``samples`` draws of z: (N,) nats.

    guide: as in :func:`elbo_terms`. Draws are made ``max_rows`` codes at a time.
    """
    total, done = torch.zeros(x.shape[0], device=x.device), 0
    while done < samples:
        draws = min(samples - done, max(1, max_rows // x.shape[0]))
        total += draw_log_weights(model, x, y, draws, guide).sum(0)
        done += draws
    return total / samples


def _gaussian_sites(model, x: torch.Tensor, y: torch.Tensor | None) -> dict:
    """The encoder's q(z|x) at each latent site of the guide on ``x``, where the fitted guide starts: name ->
    distribution, each with a closed-form mean and spread (else a ValueError that says which guide to use)."""
    with torch.no_grad():
        guide_trace = poutine.trace(model.guide).get_trace(x, y)
    sites = {
        name: site["fn"]
        for name, site in guide_trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
    }
    for name, fn in sites.items():  # the fitted guide starts at the encoder's mean and spread
        try:
            fn.mean, fn.stddev
        except NotImplementedError:
            raise ValueError(
                f"the amortization gap starts a per-image Gaussian at the encoder's q(z|x), and site {name!r} "
                f"is a {type(fn).__name__} with no closed-form mean; use a model with a Gaussian guide "
                "(--guide diagonal or full-rank)"
            ) from None
    return sites


def _per_image_guide(sites: dict, n: int):
    """A Pyro guide with a free Gaussian per image and latent site, q_i(z) = Normal(m_i, s_i), started at
    ``sites`` (:func:`_gaussian_sites`) for ``n`` images; returns (guide, its parameters)."""
    loc = {name: fn.mean.detach().clone().requires_grad_() for name, fn in sites.items()}
    log_scale = {name: fn.stddev.detach().log().requires_grad_() for name, fn in sites.items()}
    event_dims = {name: len(fn.event_shape) for name, fn in sites.items()}

    def fitted_guide(images, labels=None):
        if images.shape[0] != n:
            raise ValueError(f"this guide was fitted to {n} images, not {images.shape[0]}: call it on those images")
        with pyro.plate("data", n):
            for name in sites:
                pyro.sample(name, dist.Normal(loc[name], log_scale[name].exp()).to_event(event_dims[name]))

    return fitted_guide, [*loc.values(), *log_scale.values()]


def amortization_gap(
    model,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    steps: int = 300,
    lr: float = 0.02,
    particles: int = 8,
    samples: int = 100,
    seed: int = 0,
) -> dict:
    """How much ELBO the encoder gives up by serving every image with one network.

    The amortized guide q(z|x) = Normal(encoder(x)) is compared with a guide fitted to each image
    on its own, q_i(z) = Normal(m_i, s_i) with free parameters per image, started at the encoder's
    output and improved by ``steps`` Adam steps on the reparameterized ELBO (``particles`` draws
    per step); the model's weights stay as they are. Each image's best diagonal Gaussian does as well as a
    diagonal encoder or better: the difference is the amortization gap (Cremer, Li and Duvenaud, 2018).
    Against a richer family (a full-rank guide) it also holds the family's gain, and can be negative; a
    flow guide, with no closed-form mean, is refused.

    x: (N, ...) images; y: (N,) labels for a conditional model, else None. Returns, in nats: "encoder" and
    "optimized", each image's ELBO under the two guides, (N,), averaged over ``samples`` draws; "gap", their
    difference (N,); "trace", the fitted guide's mean ELBO estimate at each step, (steps,); and "guide", the fitted
    guide itself, a Pyro guide ``guide(x, y)`` for these N images (for :func:`draw_log_weights`, to
    importance-sample log p(x) with it as the proposal).
    """
    if not model.generative:
        raise ValueError("the autoencoder has no prior, so no ELBO to compare; use a vae or cvae")
    was_training = model.training
    model.eval()
    device = x.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), pyro.validation_enabled(False):
        torch.manual_seed(seed)
        sites = _gaussian_sites(model, x, y)
        fitted_guide, parameters = _per_image_guide(sites, x.shape[0])
        optimizer = torch.optim.Adam(parameters, lr=lr)
        history = []
        for _ in range(steps):
            elbo = (
                draw_log_weights(model, x, y, particles, fitted_guide).sum() / particles
            )  # the sum over images of each image's ELBO estimate
            for p, g in zip(parameters, torch.autograd.grad(-elbo, parameters)):  # the model's weights get no gradient
                p.grad = g
            optimizer.step()
            history.append(elbo.detach() / x.shape[0])
        encoder = mean_elbo(model, x, y, samples=samples)
        optimized = mean_elbo(model, x, y, fitted_guide, samples=samples)
    model.train(was_training)
    history = torch.stack(history) if history else torch.zeros(0, device=device)
    for p in parameters:  # the fitted guide's parameters are settled: no more gradients
        p.requires_grad_(False)
        p.grad = None
    return {
        "encoder": encoder,
        "optimized": optimized,
        "gap": optimized - encoder,
        "trace": history,
        "guide": fitted_guide,
    }


@torch.no_grad()
def active_units(model, data: ImageSet, threshold: float = 0.01, batch_size: int = 1000) -> tuple[int, torch.Tensor]:
    """How many latent dimensions the model uses (Burda et al., 2016).

    A dimension is active when its guide mean E_q[z_d|x] varies across the data by more than
    ``threshold`` (variance): an inactive one ignores x, and its q(z_d|x) stays at the prior.
    Returns (count, per-dimension variance (z_dim,)).
    """
    was_training = model.training
    model.eval()
    codes = torch.cat([model.encode(x, y) for x, y in data.batches(batch_size)])
    model.train(was_training)
    variance = codes.var(dim=0)
    return int((variance > threshold).sum()), variance


@torch.no_grad()
def conditional_accuracy(
    model, classifier, n_per_class: int = 100, seed: int = 0, features: dict | None = None
) -> dict:
    """How often the model's samples for label c are classified as c, per class and overall.

    Draws ``n_per_class`` images from p(x|y=c) for every class c (the likelihood's mean images).
    With ``features`` (a spectrogram data set's settings) the samples are also made into sound,
    written as WAV files, read back and featurized again like any recording, and classified once
    more: ``from_wav`` measures what a listener would get, Griffin-Lim's losses included.
    """
    device = device_of(model)
    labels = torch.arange(model.num_classes, device=device).repeat_interleave(n_per_class)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        images = model.sample(len(labels), labels)

    def score(predicted):
        right = (predicted.to(device) == labels).float().view(model.num_classes, n_per_class)
        return {"per_class": right.mean(1).tolist(), "overall": right.mean().item()}

    result = {**score(classifier.predict(images)), "samples_per_class": n_per_class}
    if features is not None:
        result["from_wav"] = score(classifier.predict(_through_wav(images, features).to(device)))
    return result


@torch.no_grad()
def classifier_accuracy(model, data: ImageSet, batch_size: int = 1000) -> float:
    """How often a semi-supervised model's classifier q(y|x) puts most mass on the true label of an image
    of ``data``."""
    was_training = model.training
    model.eval()
    right = sum(int((model.q_y(x).logits.argmax(-1) == y).sum()) for x, y in data.batches(batch_size))
    model.train(was_training)
    return right / len(data)


@torch.no_grad()
def nearest_class(model, data: ImageSet, n_per_class: int = 20, seed: int = 0, mirror: bool = False) -> dict:
    """Whether the samples drawn for each class look most like that class's images in ``data``.

    For every class c, ``n_per_class`` images are drawn from p(x|y=c) and compared with every
    held-out image of every class q by root-mean-square pixel difference; d(c, q) is the mean over
    those pairs. Class c is matched when its own held-out images are the nearest: argmin_q d(c, q) = c.
    For faces this asks: do the samples drawn for person 12 look most like person 12's unseen
    photographs? No judge network is involved, so the number holds for any data set.

    mirror: compare each sample with a held-out image and with its left-right mirror image, and
    keep the nearer. That is the distance to judge a model trained with ``--flip`` by: it learned
    each person in both orientations and draws both, and a mirrored photograph of a person is
    still that person, though in pixels it can be nearer other people (on the ORL faces, each
    person's mirrored training photographs are nearest their own held-out ones for only 42.5% of
    people, the photographs themselves for 87.5%). Face verification scores a face and its mirror
    image for the same reason.

    Returns {"overall": the share of classes matched, "per_class": matched or not (0/1), "rank":
    where each class's own images rank among all classes' (0 = nearest), "own" and "other": the
    mean d(c, c) and the mean d(c, q) over q != c, as RMS differences of pixel values in [0, 1],
    "samples_per_class", and "mirror"}.
    """
    device = device_of(model)
    labels = torch.arange(model.num_classes, device=device).repeat_interleave(n_per_class)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        samples = model.sample(len(labels), labels).flatten(1)  # (classes * n, D)
    held_out = data.x.to(device)
    rms = torch.cdist(samples, held_out.flatten(1))  # (classes * n, images)
    if mirror:
        rms = torch.minimum(rms, torch.cdist(samples, held_out.flip(-1).flatten(1)))
    rms = rms / held_out[0].numel() ** 0.5
    present = torch.bincount(data.y, minlength=model.num_classes) > 0
    # mean over the samples of class c and the held-out images of class q: (classes, classes)
    by_sample_class = rms.view(model.num_classes, n_per_class, -1).mean(1)
    one_hot = torch.nn.functional.one_hot(data.y, model.num_classes).float().to(device)
    distance = (by_sample_class @ one_hot) / one_hot.sum(0).clamp(min=1)
    distance[:, ~present] = float("inf")
    rank = (distance < distance.diagonal().unsqueeze(1)).sum(1)
    matched = (rank == 0) & present
    own = distance.diagonal()[present]
    others = distance[present][:, present]
    other = (others.sum() - own.sum()) / max(others.numel() - own.numel(), 1)
    return {
        "overall": matched[present].float().mean().item(),
        "per_class": matched.int().tolist(),
        "rank": rank.tolist(),
        "own": own.mean().item(),
        "other": other.item(),
        "samples_per_class": n_per_class,
        "mirror": mirror,
    }


def _through_wav(images: torch.Tensor, features: dict) -> torch.Tensor:
    """Spectrograms -> sound -> WAV files on disk -> read back -> spectrograms, as a recording would be."""
    from .audio import MelFeatures, through_wav

    return through_wav(MelFeatures.from_dict(features).decode(images), features)


def evaluate(
    model,
    data: ImageSet,
    *,
    k: int = 1000,
    classifier=None,
    n_per_class: int = 100,
    mirror: bool = False,
    max_rows: int = 8192,
    progress=None,
) -> dict:
    """Every number ``evaluate`` reports for ``model`` on ``data``, as a JSON-ready dict (nats per image).

    neg_elbo, recon, kl: the ELBO and its parts; nll, nll_stderr: -log p(x) (or -log p(x|y)) by
    importance sampling with k draws, and the standard error of its mean over the images;
    active_units; for a conditional model of classes, nearest_class (``mirror``: as in
    :func:`nearest_class`, for a model trained with flips); and, with a ``classifier`` and a
    conditional model, conditional_accuracy. ``max_rows``: as in :func:`importance_log_likelihood`.
    """
    result = {"images": len(data), **dataclasses.asdict(evaluate_elbo(model, data))}
    if not model.generative:  # the autoencoder: no prior, so no likelihood to estimate
        return result
    log_px = importance_log_likelihood(model, data, k, max_rows, progress=progress)
    result |= {
        "k": k,
        "nll": -log_px.mean().item(),
        "nll_stderr": (log_px.std() / math.sqrt(len(log_px))).item() if len(log_px) > 1 else 0.0,
    }
    result["nll_bits_per_dim"] = bits_per_dim(result["nll"], model, data)
    count, variance = active_units(model, data)
    result |= {"active_units": count, "z_dim": len(variance)}
    if model.conditional and not data.attributes:
        result["nearest_class"] = nearest_class(model, data, mirror=mirror)
    if hasattr(model, "q_y"):
        result["classifier_accuracy"] = classifier_accuracy(model, data)
    if classifier is not None and model.conditional:
        result["conditional_accuracy"] = conditional_accuracy(model, classifier, n_per_class, features=data.features)
    return result
