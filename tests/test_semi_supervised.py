"""The semi-supervised CVAE (Kingma et al.'s M2, ``train --model cvae --labels N``): its bound, its
labels and its tools, with numbers."""

import json
import math
import warnings

import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from typer.testing import CliRunner

from conftest import small_config, train_small
from pyro_vae import Trainer, build_model, checkpoint, load_model
from pyro_vae.cli import app
from pyro_vae.config import CLASSIFY_WEIGHT, Config
from pyro_vae.data.labels import MISSING, LabelledShare, keep_labels
from pyro_vae.errors import UserError
from pyro_vae.models import CVAE, SemiSupervisedCVAE
from pyro_vae.networks import conditioned
from pyro_vae.objectives import make_elbo
from pyro_vae.spec import for_model, resolve

K = 3  # classes of the small models


def small_m2(image_shape=(1, 4, 4), **changes):
    torch.manual_seed(0)
    return build_model(small_config(labels=K, z_dim=2, hidden_dim=8, **changes), image_shape, num_classes=K)


def test_labels_make_the_cvae_semi_supervised_and_nothing_else():
    assert type(small_m2()) is SemiSupervisedCVAE
    assert type(build_model(small_config(), (1, 28, 28), 10)) is CVAE
    with pytest.raises(UserError, match="labels needs a model that learns from unlabelled images: use model cvae"):
        resolve(small_config(model="vae", labels=100))
    with pytest.raises(UserError, match="TraceEnum_ELBO.*leave elbo out"):
        resolve(small_config(labels=100, elbo="iwae"))
    with pytest.raises(UserError, match="classify_weight weighs the labelled images of labels N"):
        resolve(small_config(classify_weight=10.0))
    with pytest.raises(UserError, match="classify_weight must be 0 or more, not -1"):
        resolve(small_config(labels=100, classify_weight=-1.0))
    # compare --labels: the labels (and their weight) go to the cvae alone; the others train as always
    shared = Config(model="cvae", labels=100, classify_weight=20.0)
    assert (for_model(resolve(shared), "vae").labels, for_model(resolve(shared), "vae").classify_weight) == (
        None,
        CLASSIFY_WEIGHT,
    )
    assert resolve(for_model(resolve(shared), "vae")) and resolve(for_model(resolve(shared), "ae"))
    assert (for_model(resolve(shared), "cvae").labels, for_model(resolve(shared), "cvae").classify_weight) == (
        100,
        20.0,
    )
    # ... and when no model compared can take them, compare says so before anything trains
    result = CliRunner().invoke(app, ["compare", "--labels", "100", "--model", "vae", "--model", "ae"])
    assert result.exit_code == 2 and "none of vae, ae does; add --model cvae, or leave --labels out" in result.output


def test_conditioned_layer_equals_the_layer_on_the_concatenation_and_broadcasts():
    torch.manual_seed(0)
    layer = torch.nn.Linear(7 + 3, 5)
    h, c = torch.randn(4, 7), F.one_hot(torch.tensor([0, 2, 1, 1]), 3).float()
    assert torch.allclose(conditioned(layer, h, c), layer(torch.cat([h, c], -1)), atol=1e-6)
    every_label = F.one_hot(torch.arange(3), 3).float().view(3, 1, 3)  # as enumeration shapes it
    out = conditioned(layer, h, every_label)  # (3, 4, 5): each image under each label
    assert out.shape == (3, 4, 5)
    for label in range(3):
        assert torch.allclose(out[label], layer(torch.cat([h, every_label[label].expand(4, 3)], -1)), atol=1e-6)


def test_enumerated_bound_equals_the_sampled_bound_in_expectation(float64):
    """TraceEnum_ELBO sums y out exactly; Trace_ELBO draws it from q(y|x). Over many draws of z
    (and y) the two estimate the same bound: their means agree within their standard errors."""
    model = small_m2()
    x = torch.bernoulli(torch.full((2, 1, 4, 4), 0.4, dtype=torch.float64), generator=torch.Generator().manual_seed(1))
    y = torch.full((2,), MISSING)
    pyro.set_rng_seed(0)
    batches, particles = 60, 100  # each estimate the mean of 100 vectorized draws

    def estimates(elbo_class):
        elbo = elbo_class(num_particles=particles, vectorize_particles=True, max_plate_nesting=1)
        with warnings.catch_warnings():  # Trace_ELBO says it leaves y's enumeration flag unused: as meant here
            warnings.simplefilter("ignore", UserWarning)
            return torch.stack(
                [elbo.differentiable_loss(model.model, model.guide, x, y).detach() for _ in range(batches)]
            )

    enumerated, sampled = estimates(TraceEnum_ELBO), estimates(Trace_ELBO)
    gap = (enumerated.mean() - sampled.mean()).abs()
    stderr = math.sqrt((enumerated.var() + sampled.var()) / batches)
    assert gap < 4 * stderr, (enumerated.mean(), sampled.mean(), stderr)
    # precise enough to tell a wrong sum: leaving out the entropy of q(y|x) alone would shift the
    # bound by about 2 log 3 = 2.2 nats for these two images
    assert 4 * stderr < 1.0, stderr
    assert enumerated.var() < sampled.var() / 2  # summing y out removes its share of the noise


def test_with_every_label_given_the_objective_is_the_cvaes(float64):
    m2 = small_m2()
    # the plain cvae with M2's networks (--labels keeps one encoder layer, where the cvae's default has two)
    cvae = build_model(small_config(z_dim=2, hidden_dim=8, encoder_layers=1), (1, 4, 4), num_classes=K).double()
    cvae.load_state_dict({k: v for k, v in m2.state_dict().items() if not k.startswith("classifier.")})
    x = torch.bernoulli(torch.full((6, 1, 4, 4), 0.4, dtype=torch.float64), generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 2, 1, 0])

    def loss_and_grads(model, elbo):
        model.zero_grad()
        pyro.set_rng_seed(3)
        loss = elbo.differentiable_loss(model.model, model.guide, x, y)
        loss.backward()
        return loss.detach(), {k: p.grad for k, p in model.named_parameters() if not k.startswith("classifier.")}

    m2_loss, m2_grads = loss_and_grads(m2, make_elbo(small_config(labels=K, classify_weight=0.0), m2))
    cvae_loss, cvae_grads = loss_and_grads(cvae, Trace_ELBO(max_plate_nesting=1))
    assert torch.allclose(m2_loss, cvae_loss, rtol=1e-12)
    assert all(torch.allclose(m2_grads[k], cvae_grads[k], rtol=1e-9, atol=1e-12) for k in cvae_grads)
    # with the classification term: plus alpha times the cross-entropy of q(y|x), nothing else
    alpha = 7.0
    pyro.set_rng_seed(3)
    with_term = make_elbo(small_config(labels=K, classify_weight=alpha), m2).differentiable_loss(
        m2.model, m2.guide, x, y
    )
    cross_entropy = F.cross_entropy(m2.classifier(x), y, reduction="sum")
    assert torch.allclose(with_term, cvae_loss + alpha * cross_entropy, rtol=1e-12)


def test_model_and_guide_split_a_batch_by_its_missing_labels():
    model = small_m2()
    x = torch.bernoulli(torch.full((5, 1, 4, 4), 0.4))
    y = torch.tensor([2, MISSING, 0, MISSING, MISSING])
    trace = poutine.trace(poutine.enum(model.guide, first_available_dim=-2)).get_trace(x, y)
    assert trace.nodes["z"]["value"].shape == (2, 2)  # the labelled images: one z each
    assert trace.nodes["y_unlabelled"]["value"].shape == (K, 1)  # every label, for all unlabelled images at once
    assert trace.nodes["z_unlabelled"]["value"].shape == (K, 3, 2)  # a z for each label and image
    model_trace = poutine.trace(poutine.replay(model.model, trace=trace)).get_trace(x, y)
    assert torch.equal(model_trace.nodes["x"]["value"], x[[0, 2]])
    assert torch.equal(model_trace.nodes["x_unlabelled"]["value"], x[[1, 3, 4]])


def test_keep_labels_keeps_n_per_class_of_the_true_labels(mnist):
    train = mnist[0].head(3000)
    kept = keep_labels(train, 100, seed=0)
    known = kept.y != MISSING
    assert int(known.sum()) == 100
    assert torch.equal(kept.y[known], train.y[known])  # a kept label is the true one
    assert torch.bincount(kept.y[known], minlength=10).tolist() == [10] * 10
    assert torch.equal(keep_labels(train, 100, seed=0).y, kept.y)  # the seed decides
    assert not torch.equal(keep_labels(train, 100, seed=1).y, kept.y)
    assert (
        torch.bincount(
            keep_labels(train, 13, seed=0).y[keep_labels(train, 13, seed=0).y != MISSING], minlength=10
        ).tolist()
        == [2, 2, 2] + [1] * 7
    )
    with pytest.raises(UserError, match="--labels must be between 10 .one per class. and 3000"):
        keep_labels(train, 5, seed=0)


def test_every_batch_gets_labelled_images_with_their_true_labels(mnist):
    train = mnist[0].head(3000)
    kept = keep_labels(train, 20, seed=0)
    share = LabelledShare(kept, 64)
    assert share.size == 20  # all of them, when there are fewer than asked
    g = torch.Generator().manual_seed(0)
    x, y = share.join(train.x[:8], torch.full((8,), MISSING), g)
    assert x.shape == (28, 1, 28, 28) and int((y != MISSING).sum()) == 20
    rows = {tuple(row.flatten().tolist()): label for row, label in zip(train.x, train.y.tolist())}
    assert all(rows[tuple(image.flatten().tolist())] == label for image, label in zip(x[8:], y[8:].tolist()))


@pytest.mark.slow
def test_semi_supervised_training_learns_a_classifier_and_every_tool_reads_it(tmp_path, mnist):
    run = tmp_path / "m2"
    trainer = train_small(run, labels=20, epochs=2, train_size=3000, test_size=1000)
    accuracy = trainer.history[-1].test_classifier_accuracy
    assert accuracy > 0.3, accuracy  # 20 labels, 60 small steps: about 0.4 (chance: 0.1)
    assert "test_classifier_accuracy" in (run / "metrics.csv").read_text().splitlines()[0]
    from typer.testing import CliRunner

    from pyro_vae.cli import app

    runner = CliRunner()
    result = runner.invoke(
        app,
        ["evaluate", str(run), "--k", "5", "--n", "200", "--samples-per-class", "5", "--out", str(tmp_path / "e.json")],
    )
    assert result.exit_code == 0, result.output
    numbers = json.loads((tmp_path / "e.json").read_text())
    assert 0.3 < numbers["classifier_accuracy"] <= 1 and "q(y|x)" in result.output
    for command in (["sample", str(run), "--label", "7", "--n", "4"], ["plot-latent", str(run)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, (command, result.output)


def test_a_semi_supervised_run_of_format_3_opens_with_its_mlp_classifier(tmp_path, mnist):
    """Format 3 had no --classifier (q(y|x) was the encoder's network, now --classifier mlp; the
    default is the cnn) nor --encoder-layers (one). Such a run opens with the networks it was built
    with, and resumes."""
    trainer = train_small(tmp_path, labels=20, classifier="mlp", train_size=1000, test_size=200)
    path = tmp_path / checkpoint.CHECKPOINT
    state = torch.load(path, weights_only=True)
    settings = {
        k: v for k, v in state["config"].items() if k not in ("classifier", "encoder_layers")
    }  # new in format 4
    torch.save(state | {"format": 3, "config": settings}, path)
    (tmp_path / checkpoint.CONFIG).write_text(json.dumps(settings))
    model, config, _ = load_model(tmp_path)
    assert (config.classifier, config.encoder_layers) == ("mlp", 1) and not any(
        "features" in k for k in model.state_dict()
    )
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
    resumed = Trainer.resume(tmp_path, epochs=2, progress=False, log=lambda line: None)
    resumed.fit()
    assert resumed.epoch == 2 and resumed.config.classifier == "mlp"
    assert Config(model="cvae", labels=100).classifier == "cnn"
    with pytest.raises(UserError, match="classifier is the network of q.y.x., which labels N adds"):
        resolve(small_config(classifier="mlp"))
