"""The semi-supervised CVAE (Kingma, Rezende, Mohamed and Welling, 2014: their model M2): the CVAE
with the label y observed where it is known and latent where it is not.

    p(y)     = Categorical(1/K, ..., 1/K)            a uniform prior over the K classes
    p(z|y)   = prior                                 as the CVAE's (priors.py; a learned Gaussian per class by default)
    p(x|y,z) = likelihood(decoder(z, y))             the CVAE's decoder
    q(y|x)   = Categorical(logits = classifier(x))   the guide's classifier (--classifier), for images without a label
    q(z|x,y) = family(encoder(x, y))                 the CVAE's guide

A labelled image's bound is the CVAE's, on log p(x|y) (its log p(y) is a constant, left out):

    L(x, y) = E_q(z|x,y)[log p(x|y,z)] - KL(q(z|x,y) || p(z|y))

and an unlabelled image's is on log p(x), with y summed out exactly over the K classes:

    U(x) = sum_y q(y|x) [L(x, y) + log p(y)] + H(q(y|x))

Pyro's TraceEnum_ELBO computes that sum by running the guide and the model once on all K labels
together (``enumerate="parallel"``: y of shape (K, 1) broadcasts against the batch), so the
networks see (K, batch, ...) tensors; no draw of y, no noise from it.

A missing label is written y = -1. The classifier enters U(x) only, where it learns which label
makes the image likeliest; Kingma et al. (their eq. 9) also train it on the labelled images
directly, with weight alpha: :meth:`classify` is that term as a program (y observed under
q(y|x)), which the trainer adds with ``--classify-weight`` (objectives.ClassifierTerm).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn as nn

from ..classifier import Classifier
from ..networks import build_encoder, full_precision
from .cvae import CVAE

#: the networks q(y|x) can be (--classifier)
CLASSIFIERS = ("cnn", "mlp")


def build_classifier(config, image_shape, num_classes: int) -> nn.Module:
    """q(y|x)'s network: x (batch, C, H, W) -> class logits (batch, K).

    cnn (the default): the small convolutional net the package judges samples with (classifier.py).
    From 100 MNIST labels it reached 90.6% where the mlp reached 85.9% after 7 epochs, same seed
    (docs/results.md#learning-from-a-few-labels): translation-invariant features are what a
    hundred labels cannot teach an mlp. mlp: the encoder's network (--net) with one hidden layer and
    K outputs, as in Kingma et al.
    """
    if config.classifier == "cnn":
        return Classifier(image_shape, num_classes)
    return build_encoder(
        config.net, image_shape, num_classes, config.hidden_dim, head=lambda: nn.Linear(config.hidden_dim, num_classes)
    )


class SemiSupervisedCVAE(CVAE):
    #: takes y = -1 for an image whose label is missing (``train --labels N``)
    missing_labels = True
    # the networks M2 was measured with (docs/results.md#learning-from-a-few-labels): its decoder runs once
    # per class on every unlabelled image, where the cvae's wider default would cost the most (not measured)
    defaults = CVAE.defaults | {"hidden_dim": 400, "encoder_layers": 1}

    def __init__(self, config, image_shape, num_classes: int):
        super().__init__(config, image_shape, num_classes)
        self.classifier = build_classifier(config, image_shape, num_classes)  # q(y|x)
        self.register_buffer("label_logits", torch.zeros(num_classes), persistent=False)  # p(y): uniform

    def q_y(self, x: torch.Tensor) -> dist.Categorical:
        """q(y|x): x (batch, C, H, W) -> a Categorical of batch (batch,) over the K classes."""
        return dist.Categorical(logits=full_precision(self.classifier(x)))

    def model(self, x, y):
        """x: (batch, C, H, W); y: (batch,) int64 labels, -1 where the label is missing."""
        pyro.module("decoder", self.decoder)
        pyro.module("likelihood", self.likelihood)
        pyro.module("prior", self.p_z)
        known = y >= 0
        if known.any():  # L(x, y): the CVAE's program, y given
            with pyro.plate("labelled", int(known.sum())):
                self.generate("", x[known], y[known])
        if not known.all():  # U(x): y a latent variable
            with pyro.plate("unlabelled", int((~known).sum())):
                y = pyro.sample("y_unlabelled", dist.Categorical(logits=self.label_logits))  # y ~ p(y)
                self.generate("_unlabelled", x[~known], y)

    def generate(self, part: str, x, y):
        """z ~ p(z) (or p(z|y)), then x ~ p(x|y,z), observed; ``part`` names the sites."""
        z = pyro.sample("z" + part, self.prior(x.shape[0], y))
        pyro.sample("x" + part, self.likelihood(self.decoder(z, self.condition(y))), obs=x)

    def guide(self, x, y):
        pyro.module("encoder", self.encoder)
        pyro.module("guide", self.q_z)
        pyro.module("classifier", self.classifier)
        known = y >= 0
        if known.any():
            with pyro.plate("labelled", int(known.sum())):
                pyro.sample("z", self.q_z(self.encoder(x[known], self.condition(y[known]))))  # z ~ q(z|x,y)
        if not known.all():
            with pyro.plate("unlabelled", int((~known).sum())):
                x = x[~known]
                y = pyro.sample("y_unlabelled", self.q_y(x), infer={"enumerate": "parallel"})  # y ~ q(y|x), summed out
                pyro.sample("z_unlabelled", self.q_z(self.encoder(x, self.condition(y))))  # z ~ q(z|x,y)

    def classify(self, x, y):
        """Kingma et al.'s classification term: each known label observed under q(y|x) (no latent sites)."""
        pyro.module("classifier", self.classifier)
        known = y >= 0
        with pyro.plate("labelled", int(known.sum())):
            pyro.sample("y", self.q_y(x[known]), obs=y[known])
