"""The compiled training step (``--step compiled``): Pyro's ELBO traced once, then run as one compiled graph.

Pyro spends about a millisecond of Python on every step: it runs the model and the guide under its
tracing handlers, builds each distribution and sums the log-densities. None of that depends on
the numbers in a batch, only on its shape. So this step runs it once per batch shape, under
torch.fx's ``make_fx``, which records every tensor operation of the loss and of its gradients
(the draw of z included) as one graph of aten operations; Inductor (``torch.compile``) fuses the
graph into a few kernels, and every later step runs the graph alone. The optimizer step stays
PyTorch's fused Adam, already one kernel per weight tensor.

The numbers are the eager step's, to float rounding:

- the graph is Pyro's own ``differentiable_loss`` on the run's model and guide; the KL weight
  (objectives.KLWeight) is an input of the graph, so --kl-warmup changes it without a new trace;
- Inductor draws random numbers with PyTorch's generator (its ``fallback_random`` option), so z
  is drawn as in the eager step: a seed, or a resumed run, gives the same draws;
- the first step of each batch shape is also taken eagerly, from the same random state, and the
  two losses and gradients must agree; where they do not, the run goes on with the eager step.

A model whose Python reads tensor values (``.item()``, ``if x.sum() > 0``) cannot be traced, and
neither can a step that Inductor cannot compile (no C++ compiler, say): such a run trains with the
eager step, and the log says why in one line.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Callable
from unittest import mock

import pyro.infer.trace_elbo
import pyro.infer.trace_mean_field_elbo
import pyro.infer.traceenum_elbo
import torch
import torch.nn as nn
from torch.fx.experimental.proxy_tensor import make_fx

# how far the graph's first step may stray from the eager one: float rounding, summed in another order
LOSS_RTOL, GRAD_RTOL = 1e-5, 1e-3


class CompiledStep:
    """``step(x, y) -> loss``: one training step, run as a graph compiled once per batch shape.

    model: the module whose parameters ``optimizer`` trains; loss: ``loss(x, y)``, the run's
    differentiable loss (Pyro's ELBO on the model and guide under ``kl``), a () tensor;
    kl: the KLWeight handler around the program; eager: the eager step ``eager(x, y) -> loss``,
    taken where no graph can be. compile: False runs the traced graph as it is, without Inductor
    (the same operations, no compiler; the tests use it). skip_nonfinite: a step whose loss is
    NaN or infinite changes nothing and returns NaN (``--on-nan skip``).

    x: (B, C, H, W), y: (B,) or (B, A); returns the batch's loss, detached.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: Callable,
        kl,
        optimizer: torch.optim.Optimizer,
        eager: Callable,
        *,
        log: Callable[[str], None] = print,
        compile: bool = True,
        skip_nonfinite: bool = False,
    ):
        self.model, self.loss, self.kl, self.optimizer, self.eager = model, loss, kl, optimizer, eager
        self.log, self.compile, self.skip_nonfinite = log, compile, skip_nonfinite
        # (shapes and dtypes of x and y) -> (graph, the parameters it returns gradients for), or None: eager
        self.graphs: dict[tuple, tuple[Callable, list[nn.Parameter]] | None] = {}
        self._weight: tuple[torch.Tensor, float] | None = None  # the KL weight: the graph's input, and its value

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        key = (x.shape, x.dtype, y.shape, y.dtype)
        if key not in self.graphs:
            return self.first_step(key, x, y)
        if self.graphs[key] is None:
            return self.eager(x, y)
        graph, trained = self.graphs[key]
        loss, grads = graph(self.inputs(), self.weight(x.device), x, y)
        return self.apply(loss, grads, trained)

    def inputs(self) -> list[torch.Tensor]:
        """The graph's weights: the model's parameters, then its buffers (the tensors themselves, detached)."""
        return [t.detach() for t in (*self.model.parameters(), *self.model.buffers())]

    def weight(self, device: torch.device) -> torch.Tensor:
        """The KL weight now, as a () tensor on ``device``; refilled only when it changes."""
        if self._weight is None or self._weight[0].device != device:
            self._weight = torch.tensor(float(self.kl.weight), device=device), float(self.kl.weight)
        elif self._weight[1] != self.kl.weight:
            self._weight = self._weight[0].fill_(self.kl.weight), float(self.kl.weight)
        return self._weight[0]

    def apply(self, loss: torch.Tensor, grads: list[torch.Tensor], trained: list[nn.Parameter]) -> torch.Tensor:
        """Give the parameters their gradients and take the optimizer's step; the loss comes back."""
        if self.skip_nonfinite and not torch.isfinite(loss):
            return torch.full_like(loss, float("nan"))
        self.optimizer.zero_grad(
            set_to_none=True
        )  # a weight this graph does not reach keeps no gradient of an earlier step
        for p, g in zip(trained, grads):
            p.grad = g
        self.optimizer.step()
        return loss

    def first_step(self, key: tuple, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Trace and compile the graph for this batch shape, and take its first step, checked against the
        eager step's."""
        start = time.perf_counter()
        state = _rng_state(x.device)
        # first eagerly: this also registers the weights in Pyro's param store, which the trace then leaves alone
        eager_loss, eager_grads = self.eager_loss_and_grads(x, y)
        after = _rng_state(x.device)
        try:
            tracing = time.perf_counter()
            graph, trained = self.trace(x, y)
            traced = time.perf_counter() - tracing
            if self.compile:
                graph = torch.compile(graph, fullgraph=True, dynamic=False, options={"fallback_random": True})
            _set_rng_state(state, x.device)  # the graph draws the same z as the eager step did
            with _quiet("torch.utils.cpp_extension"):  # Inductor's note that a CPU machine has no CUDA
                loss, grads = graph(self.inputs(), self.weight(x.device), x, y)
        except Exception as e:  # noqa: BLE001 (any failure of tracing or compiling leaves the eager step)
            _set_rng_state(after, x.device)
            return self.eager_from_now(
                key, f"{type(self.model).__name__} cannot be traced into one graph: {_why(e)}", eager_loss, eager_grads
            )
        difference = _difference(loss, grads, trained, eager_loss, eager_grads)
        if difference:
            _set_rng_state(after, x.device)
            return self.eager_from_now(
                key, f"its first step differs from the eager step's ({difference})", eager_loss, eager_grads
            )
        self.graphs[key] = graph, trained
        shape = "x".join(map(str, x.shape))
        self.log(
            f"compiled step: Pyro's step on batches of {shape} traced in {traced:.1f} s, compiled and checked against "
            f"the eager step in {time.perf_counter() - start - traced:.1f} s"
        )
        return self.apply(loss, grads, trained)

    def eager_from_now(
        self, key: tuple, why: str, loss: torch.Tensor, grads: list[torch.Tensor | None]
    ) -> torch.Tensor:
        """Take this step with the eager step's loss and gradients, and every later one of this shape eagerly."""
        self.graphs[key] = None
        self.log(f"compiled step: {why}; this run trains with the eager step (--step eager)")
        reached = [(p, g) for p, g in zip(self.model.parameters(), grads) if g is not None]
        return self.apply(loss, [g for _, g in reached], [p for p, _ in reached])

    def trace(self, x: torch.Tensor, y: torch.Tensor) -> tuple[Callable, list[nn.Parameter]]:
        """The graph (weights, kl_weight, x, y) -> (loss, gradients) of the model's loss, and the
        parameters those gradients are for (those the loss uses, in the model's order)."""
        module = _Loss(self.model, self.loss)
        params, buffers = dict(self.model.named_parameters()), dict(self.model.named_buffers())
        names = [f"model.{name}" for name in (*params, *buffers)]
        used: list[int] = []  # filled while tracing: which parameters the loss reaches

        def loss_and_grads(weights, kl_weight, x, y):
            self.kl.weight = kl_weight
            loss = torch.func.functional_call(module, dict(zip(names, weights)), (x, y))
            grads = torch.autograd.grad(loss, weights[: len(params)], allow_unused=True)
            used[:] = [i for i, g in enumerate(grads) if g is not None]
            return loss.detach(), [grads[i] for i in used]

        weights = [p.detach().requires_grad_(True) for p in params.values()] + [b.detach() for b in buffers.values()]
        weight = float(self.kl.weight)
        try:
            with _pyro_without_item(), torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
                graph = make_fx(loss_and_grads, tracing_mode="fake")(
                    weights, torch.tensor(weight, device=x.device), x, y
                )
        finally:
            self.kl.weight = weight
        parameters = list(params.values())
        return graph, [parameters[i] for i in used]

    def eager_loss_and_grads(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """The eager step's loss and gradients on this batch (None for a parameter the loss does not reach)."""
        loss = self.loss(x, y)
        return loss.detach(), list(torch.autograd.grad(loss, list(self.model.parameters()), allow_unused=True))


class _Loss(nn.Module):
    """The loss of ``model`` as a module, so that torch.func.functional_call can hand it the traced weights."""

    def __init__(self, model: nn.Module, loss: Callable):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, x, y):
        return self.loss(x, y)


@contextlib.contextmanager
def _pyro_without_item():
    """While tracing: Pyro's ELBOs keep their loss a tensor (``torch_item`` detaches instead of
    reading the value back), and skip their NaN warning (the trainer checks the loss itself)."""
    detach = lambda t: t.detach() if torch.is_tensor(t) else t  # noqa: E731
    with contextlib.ExitStack() as stack:
        for module in (pyro.infer.trace_elbo, pyro.infer.trace_mean_field_elbo):
            stack.enter_context(mock.patch.object(module, "torch_item", detach))
        for module in (pyro.infer.trace_elbo, pyro.infer.trace_mean_field_elbo, pyro.infer.traceenum_elbo):
            stack.enter_context(mock.patch.object(module, "warn_if_nan", lambda value, *args, **kwargs: value))
        yield


@contextlib.contextmanager
def _quiet(logger: str):
    """Only errors from ``logger`` for a while."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _difference(loss, grads, trained, eager_loss, eager_grads) -> str | None:
    """How the graph's first step differs from the eager step beyond float rounding, in words; None if it does not."""
    if not torch.isfinite(eager_loss):
        return None if not torch.isfinite(loss) else f"loss {loss.item():.6g}, eager {eager_loss.item():.6g}"
    if not math.isclose(loss.item(), eager_loss.item(), rel_tol=LOSS_RTOL, abs_tol=LOSS_RTOL):
        return f"loss {loss.item():.8g}, eager {eager_loss.item():.8g}"
    reached = [g for g in eager_grads if g is not None]
    if len(reached) != len(trained):
        return f"it trains {len(trained)} weight tensors, the eager step {len(reached)}"
    off = (
        torch.stack([(g - e).pow(2).sum() for g, e in zip(grads, reached)]).sum().sqrt() if reached else torch.zeros(())
    )
    norm = torch.stack([e.pow(2).sum() for e in reached]).sum().sqrt() if reached else torch.zeros(())
    if off > GRAD_RTOL * norm + 1e-6:
        return f"gradients apart by {(off / norm).item():.1e} of their norm"
    return None


def _rng_state(device: torch.device) -> tuple:
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_state(state: tuple, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _why(e: Exception) -> str:
    """What stopped the trace, in a few words."""
    if "DataDependent" in type(e).__name__:  # torch's GuardOnDataDependentSymNode, DataDependentOutputException
        return "its Python reads the value of a tensor (an .item(), an `if` on a tensor, or a shape the data decides)"
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:160] if lines else 'no message'}"
