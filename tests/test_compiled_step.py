"""The compiled step (--step compiled) takes the eager step's steps: the same losses and weights, for every built-in
model, prior, guide, likelihood and estimator; where it cannot, it says so and trains eagerly."""

from __future__ import annotations

import pytest
import torch

from conftest import small_config
from pyro_vae import Config, Trainer
from pyro_vae.config import AUTO_COMPILED_STEPS
from pyro_vae.errors import UserError
from pyro_vae.spec import resolve

STEPS = 3


def twin_runs(tmp_path, compile: bool = False, batch_sizes=(64,) * STEPS, **changes) -> dict:
    """The same run, started from the same seed, stepped on the same batches by the eager and the compiled step.

    Each step has its own KL weight, as under --kl-warmup. compile False runs the traced graph
    without Inductor (the same operations; the compiler's own numbers are checked separately).
    Returns {step: (losses, final weights, log lines)}.
    """
    results = {}
    for step in ("eager", "compiled"):
        lines = []
        trainer = Trainer(
            small_config(step=step, train_size=256, **changes), tmp_path / step, progress=False, log=lines.append
        )
        if trainer.compiled is not None:
            trainer.compiled.compile = compile
        generator = torch.Generator().manual_seed(1)
        x, y = trainer.train_data.x, trainer.train_data.y
        losses, start = [], 0
        for i, size in enumerate(batch_sizes):
            batch = torch.bernoulli(x[start : start + size], generator=generator), y[start : start + size]
            start += size
            trainer.kl.weight = 0.5 + 0.25 * i
            losses.append(trainer.step(*batch).item())
        results[step] = losses, [p.detach().clone() for p in trainer.model.parameters()], lines
    return results


def assert_same_steps(results, rtol: float, atol: float) -> None:
    (eager_losses, eager_weights, _), (losses, weights, _) = results["eager"], results["compiled"]
    assert losses == pytest.approx(eager_losses, rel=1e-5)
    assert len(weights) == len(eager_weights)
    for w, e in zip(weights, eager_weights):
        torch.testing.assert_close(w, e, rtol=rtol, atol=atol)


@pytest.mark.slow
@pytest.mark.parametrize(
    "changes",
    [
        dict(model="vae"),
        dict(model="cvae"),
        dict(model="hvae"),
        dict(model="ae"),
        dict(model="vae", particles=2),
        dict(model="vae", elbo="meanfield"),
        dict(model="cvae", net="conv"),
        dict(model="vae", guide="iaf"),
        dict(model="vae", guide="full-rank"),
        dict(model="vae", prior="mixture"),
        dict(model="vae", prior="vamp"),
        dict(model="vae", prior="flow"),
        dict(model="cvae", prior="standard"),
        dict(model="vae", likelihood="gaussian"),
        dict(model="vae", likelihood="laplace", likelihood_scale=0.1),
        dict(model="vae", likelihood="continuous-bernoulli"),
        dict(model="cvae", dataset="faces", net="conv"),
        dict(model="vae", likelihood="autoregressive"),
        dict(model="hvae", activation="gated", encoder_layers=2),
    ],
    ids=lambda changes: "-".join(map(str, changes.values())),
)
def test_the_traced_step_takes_the_eager_steps(tmp_path, changes):
    results = twin_runs(tmp_path, **changes)
    assert_same_steps(results, rtol=1e-6, atol=1e-7)  # the same operations on the same numbers: equal but for rounding
    assert "traced" in results["compiled"][2][0], results["compiled"][2]


@pytest.mark.slow
def test_inductor_compiles_the_step_to_the_eager_numbers_and_a_new_batch_shape_gets_its_own_graph(tmp_path):
    # 64, 64, then a short last batch of 40: a second trace and compile
    results = twin_runs(tmp_path, compile=True, batch_sizes=(64, 64, 40), model="cvae")
    assert_same_steps(results, rtol=1e-4, atol=1e-5)  # fused kernels sum in another order
    lines = results["compiled"][2]
    assert [line.split(" traced")[0] for line in lines] == [
        "compiled step: Pyro's step on batches of 64x1x28x28",
        "compiled step: Pyro's step on batches of 40x1x28x28",
    ]


def test_a_run_trained_with_the_compiled_step_ends_where_the_eager_run_does(tmp_path):
    histories = {}
    for step in ("eager", "compiled"):
        trainer = Trainer(
            small_config(step=step, epochs=2, kl_warmup=1), tmp_path / step, progress=False, log=lambda line: None
        )
        if trainer.compiled is not None:
            trainer.compiled.compile = False
        histories[step] = trainer.fit()
    for eager, compiled in zip(histories["eager"], histories["compiled"]):
        assert compiled.test_neg_elbo == pytest.approx(eager.test_neg_elbo, abs=1e-3)
        assert compiled.train_neg_elbo == pytest.approx(eager.train_neg_elbo, abs=1e-3)


BRANCHY = '''
from pyro_vae.models import VAE


class Branchy(VAE):
    """A VAE whose model asks the batch a question in Python, which a trace cannot hold."""

    def model(self, x, y=None):
        if x.mean() > 0.5:
            x = 1 - x
        super().model(x, y)
'''

COUNTING = '''
import pyro

from pyro_vae.models import VAE


class Counting(VAE):
    """A VAE whose model keeps Python state from call to call: a trace would freeze it at its first value."""

    calls = 0

    def model(self, x, y=None):
        self.calls += 1
        with pyro.poutine.scale(scale=float(self.calls)):
            super().model(x, y)
'''


@pytest.mark.parametrize(
    "name,text,why",
    [
        ("Branchy", BRANCHY, "Branchy cannot be traced into one graph: its Python reads the value of a tensor"),
        ("Counting", COUNTING, "its first step differs from the eager step's (loss"),
    ],
)
def test_a_model_the_trace_cannot_hold_trains_with_the_eager_step_and_says_why(tmp_path, name, text, why):
    (tmp_path / "mine.py").write_text(text)
    results = twin_runs(tmp_path, model=f"{tmp_path}/mine.py:{name}")
    if name == "Branchy":  # (the trace of Counting counted one call more than the eager run did)
        assert_same_steps(results, rtol=0, atol=0)  # every step eager, in both runs
    lines = results["compiled"][2]
    assert len(lines) == 1 and lines[0].startswith(f"compiled step: {why}"), lines
    assert lines[0].endswith("this run trains with the eager step (--step eager)")


def test_a_non_finite_loss_is_skipped_by_the_compiled_step_as_by_the_eager_one(tmp_path):
    trainer = Trainer(
        small_config(step="compiled", on_nan="skip", likelihood="gaussian"),
        tmp_path,
        progress=False,
        log=lambda line: None,
    )
    trainer.compiled.compile = False
    x, y = trainer.train_data.x[:100], trainer.train_data.y[:100]
    before = [p.detach().clone() for p in trainer.model.parameters()]
    assert torch.isfinite(trainer.step(x, y))  # the graph is made on a finite step
    after = [p.detach().clone() for p in trainer.model.parameters()]
    assert torch.isnan(trainer.step(x.clone().index_fill_(0, torch.tensor([3]), float("nan")), y))
    assert all(torch.equal(p, q) for p, q in zip(trainer.model.parameters(), after))
    assert not all(torch.equal(p, q) for p, q in zip(after, before))


def test_auto_compiles_long_runs_only_and_settings_it_cannot_trace_are_refused(tmp_path):
    steps_per_epoch = 2000 // 100
    long_enough = -(-AUTO_COMPILED_STEPS // steps_per_epoch)
    quiet = dict(progress=False, log=lambda line: None)
    assert Trainer(small_config(epochs=long_enough), tmp_path, **quiet).compiled is not None
    assert Trainer(small_config(epochs=long_enough - 1), tmp_path, **quiet).compiled is None
    assert Trainer(small_config(epochs=long_enough, elbo="iwae", particles=2), tmp_path, **quiet).compiled is None
    assert Trainer(small_config(epochs=long_enough, step="eager"), tmp_path, **quiet).compiled is None
    assert Trainer(small_config(epochs=1, step="compiled"), tmp_path, **quiet).compiled is not None
    for changes, message in [  # from Python, messages name the settings as Config's fields
        (dict(compile=True), "compile compiles the networks inside the eager step"),
        (dict(elbo="jit"), "elbo jit is Pyro's own compiled step"),
        (dict(elbo="renyi"), "elbo renyi runs its backward pass itself"),
        (dict(amp="bf16"), "amp bf16 trains with the eager step"),
        (dict(model="cvae", labels=100), "labels splits each batch by which labels are known"),
    ]:
        with pytest.raises(UserError, match=message):
            resolve(Config(step="compiled", **changes))
