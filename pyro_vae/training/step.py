"""One SVI step: the bound of model and guide on a batch, its gradient, one Adam step.

From model to optimizer step this is SVI as Pyro documents it for PyTorch optimizers: one torch Adam over
every weight is faster than ``pyro.infer.SVI``'s per-parameter wrappers, and its state is a plain state dict.
(``--step compiled`` traces the same step into one graph: compiled_step.py.)
"""

from __future__ import annotations

import pyro
import torch
from pyro.infer import RenyiELBO

from .. import distributed
from ..objectives import kl_weight
from ..schedules import lr_scale


def make_optimizer(parameters, lr: float, device: torch.device, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam over ``parameters``, with PyTorch's fused kernel where it has one; ``eps``: ``--adam-eps``.

    Fused, each weight tensor is updated in one pass instead of about ten elementwise ops: on 2
    CPU cores that makes an MLP training step about 15% faster (benchmarks/train_throughput.py).
    A resumed run keeps the setting its checkpoint was saved with.
    """
    return torch.optim.Adam(parameters, lr=lr, eps=eps, fused=device.type in ("cpu", "cuda"))


def compile_networks(model: torch.nn.Module) -> None:
    """torch.compile each network of ``model`` (encoder, decoder, ...) in place.

    The probabilistic program stays eager Python, so Pyro's tracing works as before; the networks
    run as compiled kernels. Compiling in place keeps the parameters' names, so a checkpoint of a
    compiled run is the same as any other. The first steps, and the first evaluation, wait for
    the compiler (tens of seconds on a CPU).
    """
    for name, module in model.named_children():
        if name not in ("likelihood", "p_z", "q_z"):  # the parts build Distribution objects: nothing worth compiling
            module.compile()


def set_schedules(config, kl, optimizer: torch.optim.Optimizer, epoch: int, fraction: float) -> None:
    """Set the KL weight ``kl`` (objectives.KLWeight: --beta, --kl-warmup) and Adam's learning rate
    (--lr-schedule, --lr-warmup) for the step that ends ``fraction`` (0 < fraction <= 1) of ``epoch``: functions
    of the epoch and the step alone, so a resumed run goes on with the same schedule."""
    kl.weight = kl_weight(config, epoch, fraction)
    if config.lr_warmup or config.lr_schedule != "constant":
        for group in optimizer.param_groups:
            group["lr"] = config.lr * lr_scale(config, epoch, fraction)


class EagerStep:
    """``--step eager``: one SVI step (:func:`svi_step`) with Pyro's Python run on every batch, in the run's
    own param store (``param_state``); ``loss`` is the differentiable loss the compiled step traces."""

    def __init__(self, elbo, program, optimizer, param_state: dict, skip_nonfinite: bool, parallel=None, bf16=False):
        self.elbo, self.program, self.optimizer, self.param_state = elbo, program, optimizer, param_state
        self.skip_nonfinite, self.parallel, self.bf16 = skip_nonfinite, parallel, bf16

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One step on a batch x (B, C, H, W), y (B,) or (B, A); returns its loss, detached."""
        return svi_step(
            self.elbo,
            self.program,
            self.optimizer,
            x,
            y,
            self.param_state,
            self.skip_nonfinite,
            self.parallel,
            self.bf16,
        )

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch, a () tensor to differentiate: the objective on model and guide
        under the KL weight, in this run's param store. (The compiled step traces this.)"""
        with pyro.validation_enabled(False), pyro.get_param_store().scope(self.param_state):
            return self.elbo.differentiable_loss(*self.program, x, y)


def svi_step(
    elbo, program, optimizer, x, y, param_state: dict, skip_nonfinite: bool = False, parallel=None, bf16: bool = False
) -> torch.Tensor:
    """One step of SVI: estimate the bound of ``program`` = (model, guide) on a batch, then one optimizer step.

    ``param_state`` is the run's own Pyro param store (see Trainer). With ``skip_nonfinite``, a
    step whose loss is NaN or infinite (in any process) changes nothing, and its loss comes back
    as NaN (in every process). ``parallel``: the same loss wrapped in
    DistributedDataParallel (distributed.data_parallel), when several processes train together.
    ``bf16``: the forward pass under bfloat16 autocast (the networks return float32, so the bound
    is summed in float32). Returns the loss, detached.
    """
    optimizer.zero_grad(set_to_none=True)
    # argument checks cost time on every step; the tests do them
    with pyro.validation_enabled(False), pyro.get_param_store().scope(param_state):
        with torch.autocast(x.device.type, torch.bfloat16, enabled=bf16):
            if isinstance(elbo, RenyiELBO) and parallel is None:
                # Pyro offers it only as loss_and_grads, which runs backward itself
                loss, to_differentiate = torch.tensor(elbo.loss_and_grads(*program, x, y)), None
            elif parallel is not None:
                loss = parallel(x, y)
                # DDP averages gradients over processes; the loss is a sum over images, so scale back
                # up to the gradient of the global batch's sum, the same step as one process would take
                to_differentiate = loss * distributed.world_size()
            else:
                loss = to_differentiate = elbo.differentiable_loss(*program, x, y)
        if to_differentiate is not None:  # outside autocast, as PyTorch advises
            to_differentiate.backward()
    # several processes skip a step together: a non-finite loss anywhere reached every gradient
    if skip_nonfinite and not torch.isfinite(distributed.all_sum(loss.detach())):
        return torch.full_like(loss.detach(), float("nan"))  # skipped: so every process reports it
    optimizer.step()
    return loss.detach()
