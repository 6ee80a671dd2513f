"""The model contract: everything the trainer, the evaluation, the plots and the CLI use of a model.

A model is an ``nn.Module`` whose ``model`` and ``guide`` are a Pyro program pair over an image
batch, plus a few deterministic helpers that the tools call to look inside it. Subclassing
:class:`pyro_vae.models.LatentVariableModel` gives all of it but ``prior``, ``model`` and
``guide``; a class written from scratch must offer the whole of :class:`Model`.

Who uses what:

=====================================  ==========================================================
``Class(config, image_shape, n)``      spec.build_model: every run builds its model this way; config
                                       is the resolved run (spec.Spec), read like a Config
``model(x, y)``, ``guide(x, y)``       training (any Pyro ELBO), the test ELBO, importance sampling
``parameters()``, ``state_dict()``,    the optimizer, checkpoints, resume, evaluation mode
``train()``, ``eval()``                (``nn.Module`` gives them all)
``encode(x, y)``                       active units, plot-latent, interpolate, traverse, compare
``decode(z, y)``                       interpolate, traverse, manifold
``sample(n, y)``                       the sample figures, conditional accuracy, nearest class
``reconstruct(x, y)``                  the reconstruction figures, compare's pixel error
``prior(n, y)``                        manifold (its ``mean`` and ``stddev``; a flow's base)
``z_dim``, ``num_classes``             latent-space commands; conditional sample grids
``image_shape``                        figures and WAV files
``conditional``, ``generative``        which commands apply (labels; sampling and log p(x)); class
                                       attributes, read before the model is built
``likelihood.discrete``                bits per dimension: a probability of pixel values, or a density
=====================================  ==========================================================

Shapes: x (batch, C, H, W); y (batch,) int64 labels, or (batch, num_classes) condition vectors
(a blend of two classes along an interpolation), or None for an unconditional model; z (batch, z_dim).

Optional: ``parts``, a class attribute naming the options the program honours, "prior" and
"guide" (a model that lists them is built with ``p_z`` and ``q_z`` from --prior and --guide, as
:class:`pyro_vae.models.LatentVariableModel` builds them; other models refuse those options);
``p_z.conditional`` True for a prior that depends on y (sample grids then say a column shares
one noise draw rather than one z); ``mean_field = False`` for a model whose guide draws one latent
site given another (``--elbo meanfield`` is then refused); ``stochastic_layers``, the latent
layers between the prior and the image (1; the HVAE's 2); ``--compile`` compiles each child
module but the parts that build distributions (``likelihood``, ``p_z``, ``q_z``).

Semi-supervised models (``train --labels N``; models/semi_supervised.py) also offer
``missing_labels = True``, a class attribute: ``model`` and ``guide`` then take y = -1 for an image
whose label is hidden, and the trainer sums such labels out with TraceEnum_ELBO (the guide marks
its label site ``enumerate="parallel"``); ``q_y(x)``, the guide's classifier, a Categorical of batch
(batch,), whose test accuracy ``evaluate`` reports; and ``classify(x, y)``, a program whose only
sites are the known labels observed under q(y|x), weighted by ``--classify-weight``.

Priors and guides are parts too, each a small ``nn.Module`` (priors.py, guides.py):

- a prior is built as ``Class(z_dim, **options)`` (the options it names among ``components``,
  ``steps``, ``cond_dim``, ``model``) and called as ``prior(n, c)`` -> a distribution of batch (n,)
  and event (z_dim,); c: condition vectors (n, num_classes) or None; a prior that cannot be made
  with some models or guides says so in a static ``check_combination(model_class, guide_class)``
  that raises UserError, called before anything is built (the VampPrior's);
- a guide's family is built as ``Class(in_dim, z_dim, **options)`` (``steps``); ``head()`` makes the
  encoder's last layer, features (batch, in_dim) -> parameters; ``family(parameters)`` is q(z|x),
  batch (batch,), event (z_dim,); ``code(parameters)`` is the point that stands for it (batch, z_dim).

The KL weight (``--beta``, ``--kl-warmup``) is no part of the contract: the trainer applies it
from outside, around ``model`` and ``guide`` (objectives.KLWeight), so a model holds only the math.

The compiled step (``--step compiled``, the default for long runs; compiled_step.py) runs
``model`` and ``guide`` once per batch shape while a trace records their tensor operations, then
replays the record. Python that reads a tensor's value (``.item()``, ``if x.sum() > 0``), makes a
shape from the data, or keeps state from call to call is not part of such a record: a model that
needs it still trains, with the eager step, after one line that says why.

Two of the package's own Pyro pairs keep only part of the contract, and are not run by the
trainer: PPCA (models/ppca.py, vectors rather than images: ``model``, ``guide``, ``encode``,
``z_dim``) and the quadrant-completion CVAE (models/completion.py, trained by completion.py).
The estimators of evaluate.py (``elbo_terms``, ``draw_log_weights``, ``importance_log_likelihood``)
need only ``model`` and ``guide``, so both work with those.
"""

from __future__ import annotations

import inspect
import itertools
from typing import Protocol, runtime_checkable

import torch
import torch.nn as nn

from .build import BUILT_AS, OPTIONS
from .errors import UserError


@runtime_checkable
class Likelihood(Protocol):
    """p(x|z): an ``nn.Module`` built as ``Class(image_shape, **options)`` and called on the
    decoder's output (batch, C, H, W), returning a distribution whose ``log_prob(x)`` is one number
    per image (batch,) and whose ``mean`` is the decoded image."""

    #: True for a probability of each pixel value (Bernoulli pixels, discretized grey levels);
    #: False for a density over values in [0, 1], which bits per dimension charges a level's width
    discrete: bool

    def __call__(self, decoded: torch.Tensor): ...


@runtime_checkable
class Model(Protocol):
    """A latent-variable model as every tool of pyro-vae uses it (see the module's table)."""

    z_dim: int
    num_classes: int
    image_shape: tuple
    conditional: bool  # the networks see the label y
    generative: bool  # there is a prior to draw new images from (the autoencoder has none)
    likelihood: Likelihood

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """The generative program p(z) p(x|z): latent sites sampled, the image observed at one site."""

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """The variational program q(z|x): the same latent sites as ``model``, none observed."""

    def prior(self, n: int, y: torch.Tensor | None = None):
        """p(z) (or p(z|y)) of ``n`` codes: a distribution of batch (n,) and event (z_dim,)."""

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The guide's mean code: (batch, C, H, W) -> (batch, z_dim)."""

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The likelihood's mean image: (batch, z_dim) -> (batch, C, H, W)."""

    def sample(self, n: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """Mean images of ``n`` codes from the prior: (n, C, H, W)."""

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The decoded mean code of each image: (batch, C, H, W) -> same shape."""


METHODS = ("model", "guide", "prior", "encode", "decode", "sample", "reconstruct")
FLAGS = ("conditional", "generative")
ATTRIBUTES = {"z_dim": int, "num_classes": int, "image_shape": tuple, **{flag: bool for flag in FLAGS}}


def check_model_class(cls, name: str) -> type:
    """Refuse, in one line, a class named as a model that cannot be one; returns the class.

    name: how the user named it (``--model``), for the message.
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise UserError(
            f"model {name!r} is not a model: it is {_what(cls)}, where an nn.Module subclass is needed "
            "(subclass pyro_vae.models.LatentVariableModel)"
        )
    missing = [method for method in METHODS if not callable(getattr(cls, method, None))]
    if missing:
        raise UserError(
            f"model {name!r} ({cls.__name__}) lacks the method{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; see pyro_vae/contract.py for what a model offers"
        )
    flags = [flag for flag in FLAGS if not isinstance(getattr(cls, flag, None), bool)]
    if flags:  # read from the class before a model is built (the default learning rate, the data set's classes)
        raise UserError(
            f"model {name!r} ({cls.__name__}) needs the class attribute{'s' if len(flags) > 1 else ''} "
            f"{' and '.join(f'{flag} = True or False' for flag in flags)}; see pyro_vae/contract.py"
        )
    try:
        inspect.signature(cls).bind(None, None, None)
    except TypeError as e:
        raise UserError(
            f"model {name!r} ({cls.__name__}) must be built as {cls.__name__}(config, image_shape, num_classes): {e}"
        ) from None
    except ValueError:  # no signature to read (a class built in C): let the call decide
        pass
    return cls


def check_model(model, name: str):
    """Refuse, in one line, a built model whose attributes break the contract; returns the model."""
    wrong = [
        f"{attribute} ({kind.__name__})"
        for attribute, kind in ATTRIBUTES.items()
        if not isinstance(getattr(model, attribute, None), kind)
        or (kind is int and isinstance(getattr(model, attribute), bool))
    ]
    if wrong:
        raise UserError(
            f"model {name!r} ({type(model).__name__}) lacks the attribute{'s' if len(wrong) > 1 else ''} "
            f"{', '.join(wrong)}; see pyro_vae/contract.py for what a model offers"
        )
    likelihood = getattr(model, "likelihood", None)
    if not isinstance(getattr(likelihood, "discrete", None), bool):
        raise UserError(
            f"model {name!r} ({type(model).__name__}) needs a likelihood module with a `discrete` "
            "attribute (True for pixel-value probabilities, False for densities)"
        )
    if next(model.parameters(), None) is None:
        raise UserError(f"model {name!r} ({type(model).__name__}) has no parameters to train")
    return model


def check_likelihood_class(cls, name: str) -> type:
    """Refuse, in one line, a class named as a likelihood that cannot be one; returns the class."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise UserError(
            f"likelihood {name!r} is not a likelihood: it is {_what(cls)}, where an nn.Module subclass is needed"
        )
    if not isinstance(getattr(cls, "discrete", None), bool):
        raise UserError(
            f"likelihood {name!r} ({cls.__name__}) lacks the class attribute `discrete` (True for "
            "probabilities of pixel values, False for densities); see pyro_vae/contract.py"
        )
    return cls


def check_prior_class(cls, name: str) -> type:
    """Refuse, in one line, a class named as a prior that cannot be one; returns the class."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise UserError(
            f"prior {name!r} is not a prior: it is {_what(cls)}, where an nn.Module subclass is needed "
            "(see pyro_vae/priors.py)"
        )
    _check_built_as(cls, "prior", name, 1)
    return cls


def check_guide_class(cls, name: str) -> type:
    """Refuse, in one line, a class named as a guide (a variational family) that cannot be one; returns the class."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise UserError(
            f"guide {name!r} is not a variational family: it is {_what(cls)}, where an nn.Module subclass "
            "is needed (see pyro_vae/guides.py)"
        )
    missing = [method for method in ("head", "code") if not callable(getattr(cls, method, None))]
    if missing:
        raise UserError(
            f"guide {name!r} ({cls.__name__}) lacks the method{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
            "see pyro_vae/contract.py for what a guide offers"
        )
    _check_built_as(cls, "guide", name, 2)
    return cls


def _check_built_as(cls, kind: str, name: str, positional: int) -> None:
    """Refuse a part that cannot be built as build.build builds its kind (build.BUILT_AS, build.OPTIONS)."""
    try:
        signature = inspect.signature(cls)
        signature.bind(*[1] * positional, **{option: 1 for option in OPTIONS[kind] if option in signature.parameters})
    except TypeError as e:
        raise UserError(f"{kind} {name!r} ({cls.__name__}) must be built as {BUILT_AS[kind]}: {e}") from None
    except ValueError:  # no signature to read: let the call decide
        pass


def condition_vectors(y: torch.Tensor, num_classes: int, dtype=torch.float32) -> torch.Tensor:
    """y in either form the tools pass it -> condition vectors (batch, num_classes): labels (batch,)
    int64 are made one-hot; vectors (batch, num_classes) are kept as they are."""
    if y.is_floating_point():
        return y.to(dtype)
    # not F.one_hot, which reads the labels back to check them: the compiled step traces this (compiled_step.py)
    return (y.unsqueeze(-1) == torch.arange(num_classes, device=y.device)).to(dtype)


def device_of(model: nn.Module) -> torch.device:
    """The device of a model's weights (its first parameter or buffer)."""
    return next(itertools.chain(model.parameters(), model.buffers())).device


def _what(obj) -> str:
    return f"the {type(obj).__name__} {obj!r}"[:80] if not isinstance(obj, type) else f"the class {obj.__name__}"
