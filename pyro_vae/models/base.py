"""What every latent-variable model here offers besides its Pyro program.

A model subclasses :class:`LatentVariableModel` and writes two methods that read like the math:

- ``model(x, y)``: the generative program p(z) p(x|z), with x observed;
- ``guide(x, y)``: the amortized variational distribution q(z|x);

and, if it does not take the prior part, ``prior(n, y)``: the distribution p(z) (or p(z|y)) of
``n`` codes, batch (n,), event (z_dim,). They hold only the math: training knobs are applied from
outside, by the trainer. What the tools use of a model is written down in contract.py.

The base class builds the parts a run's config names and derives from them the deterministic
helpers the CLI needs (:meth:`encode`, :meth:`decode`, :meth:`sample`, :meth:`reconstruct`):

- ``likelihood``: p(x|z) from the decoder's output (likelihoods.py, ``--likelihood``);
- ``encoder`` and ``decoder``: the networks (networks.py, ``--net``); the encoder ends in the guide's head;
- ``q_z``: the variational family, the encoder's output -> q(z|x) (guides.py, ``--guide``);
- ``p_z``: the prior, ``p_z(n, c)`` -> p(z) or p(z|y) of n codes (priors.py, ``--prior``).

A model that writes them into its program lists them in ``parts``; the CLI refuses ``--prior``
or ``--guide`` for a model that does not, rather than ignore them.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..build import build
from ..contract import condition_vectors
from ..networks import build_decoder, build_encoder


class LatentVariableModel(nn.Module):
    #: whether the networks see the label y (a CVAE) or not
    conditional = False
    #: whether the model has a prior to sample new images from (the autoencoder has none)
    generative = True
    #: the options this model's program honours: "prior" (p_z) and "guide" (q_z)
    parts: tuple = ()
    #: latent layers between the prior and the image (the HVAE has two; the VampPrior needs one)
    stochastic_layers = 1
    #: this model's own defaults for settings left out (config.model_defaults): --prior, --hidden-dim,
    #: --encoder-layers, --decoder-layers
    defaults: dict = {}

    def __init__(self, config, image_shape, num_classes: int, code_dim: int | None = None):
        """config: the resolved run (spec.Spec), which reads like its settings and holds the classes of
        the parts (``config.parts``); code_dim: the width of the code the encoder and decoder meet, if
        not ``config.z_dim`` (a model with more than one stochastic layer: the bottom one)."""
        super().__init__()
        if not hasattr(config, "parts"):  # a plain Config: its part names are not resolved to classes yet
            raise TypeError(
                "build a model with pyro_vae.build_model(config, image_shape, num_classes): it resolves config"
            )
        self.z_dim = config.z_dim
        self.num_classes = num_classes
        self.image_shape = tuple(image_shape)
        code_dim = code_dim or config.z_dim
        cond_dim = num_classes if self.conditional else 0
        chosen = config.parts
        self.likelihood = build("likelihood", chosen.likelihood, image_shape, scale=config.likelihood_scale)
        self.q_z = build("guide", chosen.guide, config.hidden_dim, code_dim, steps=config.flow_steps)
        self.encoder = build_encoder(
            config.net,
            image_shape,
            code_dim,
            config.hidden_dim,
            cond_dim,
            self.q_z.head,
            config.encoder_layers,
            config.activation,
        )
        self.decoder = build_decoder(
            config.net, image_shape, code_dim, config.hidden_dim, cond_dim, config.decoder_layers, config.activation
        )
        self.p_z = build(
            "prior",
            chosen.prior,
            config.z_dim,
            components=config.prior_components,
            steps=config.flow_steps,
            cond_dim=cond_dim,
            model=self,
        )

    def condition(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """The condition vector the networks see: (batch, num_classes), or None for unconditional models.

        y: labels (batch,) int64, made one-hot; or condition vectors (batch, num_classes) given
        as they are (a blend of two classes, for instance, to morph one into the other).
        """
        if not self.conditional:
            return None
        if y is None:
            raise ValueError(f"{type(self).__name__} is conditional: pass the labels y")
        return condition_vectors(y, self.num_classes, next(self.decoder.parameters()).dtype)

    def prior(self, n: int, y: torch.Tensor | None = None):
        """p(z) (or p(z|y)) of ``n`` codes: batch (n,), event (z_dim,)."""
        return self.p_z(n, self.condition(y))

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None):
        raise NotImplementedError

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None):
        raise NotImplementedError

    # deterministic helpers: no Pyro sample sites, no param-store side effects

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The guide's code of each image, its mean E_q[z] (for an IAF guide the flow at zero noise):
        x (batch, C, H, W) -> (batch, z_dim)."""
        return self.q_z.code(self.encoder(x, self.condition(y)))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The likelihood's mean E[x|z]: z (batch, z_dim) -> (batch, C, H, W) in [0, 1]."""
        return self.likelihood(self.decoder(z, self.condition(y))).mean

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """Mean images of ``n`` codes drawn from the prior: (n, C, H, W)."""
        return self.decode(self.prior(n, y).sample(), y)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decode the guide's mean code of each image: (batch, C, H, W) -> same shape."""
        return self.decode(self.encode(x, y), y)
