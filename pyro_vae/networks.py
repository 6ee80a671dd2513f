"""Neural networks: the deterministic functions the probabilistic programs call.

Nothing here is random or Pyro-specific. An encoder maps an image (and an optional condition
vector c) to the location and scale of a diagonal Gaussian over z; a decoder maps z (and c)
to the parameters of the likelihood, shaped like the image (logits for a Bernoulli).
Outputs are float32 even when the layers run in bfloat16 under autocast (``--amp bf16``), so
the log-densities of the ELBO are computed and summed in float32.

Shapes: x: (batch, C, H, W); c: (batch, cond_dim) or None; z: (batch, z_dim). A decoder also
takes z with extra leading dimensions, (particles, batch, z_dim), as vectorized ELBOs draw it,
and returns (particles, batch, C, H, W); c may have leading dimensions of its own (every label at
once, (K, 1, cond_dim), as enumeration shapes it), and the output takes the broadcast shape.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

NETS = ("mlp", "conv")
ACTIVATIONS = ("relu", "tanh", "gated")  # --activation: the mlp's hidden nonlinearity

# A scale must stay positive; the floor keeps log q(z|x) finite when the exponential underflows.
MIN_SCALE = 1e-4


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """A network's output for the ELBO: bfloat16 (under autocast) made float32; float32 and float64 kept."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def conditioned(layer: nn.Linear, h: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """``layer`` applied to the features h with the condition c appended: layer([h, c]).

    Computed as W_h h + W_c c + b, which broadcasts: c may carry leading dimensions h lacks (the
    ten labels a semi-supervised model sums over, (10, 1, cond_dim), against h (batch, in_dim) ->
    (10, batch, out)) and h ones c lacks (particles), and h's product is made once, not once per label.
    """
    if c is None:
        return layer(h)
    width = h.shape[-1]
    return F.linear(h, layer.weight[:, :width], layer.bias) + F.linear(c.to(h.dtype), layer.weight[:, width:])


def hidden_layer(in_dim: int, hidden_dim: int, activation: str = "relu") -> nn.Linear:
    """The linear map of one mlp hidden layer: a gated layer makes the unit and its gate in one product."""
    return nn.Linear(in_dim, 2 * hidden_dim if activation == "gated" else hidden_dim)


def activate(pre: torch.Tensor, activation: str) -> torch.Tensor:
    """A hidden layer's output from its pre-activation (batch..., width): relu, tanh, or gated,
    where the pre-activation holds the unit a and the gate g side by side, -> a * sigmoid(g)."""
    if activation == "gated":
        unit, gate = pre.chunk(2, dim=-1)
        return unit * torch.sigmoid(gate)
    return torch.tanh(pre) if activation == "tanh" else F.relu(pre)


def deeper_layers(hidden_dim: int, cond_dim: int, layers: int, activation: str = "relu") -> nn.ModuleList:
    """The hidden layers after the first of an mlp of ``layers`` hidden layers, each reading the condition too."""
    return nn.ModuleList(hidden_layer(hidden_dim + cond_dim, hidden_dim, activation) for _ in range(layers - 1))


def hidden_features(
    first: nn.Linear, deeper: nn.ModuleList, h: torch.Tensor, c: torch.Tensor | None, activation: str = "relu"
) -> torch.Tensor:
    """h (batch..., in_dim) through hidden layers (ReLU by default) that each read c as well
    -> (batch..., hidden_dim)."""
    h = activate(conditioned(first, h, c), activation)
    for layer in deeper:
        h = activate(conditioned(layer, h, c), activation)
    return h


class GaussianHead(nn.Module):
    """features -> (loc, scale) of a diagonal Gaussian, each (batch, z_dim)."""

    def __init__(self, in_dim: int, z_dim: int):
        super().__init__()
        self.loc = nn.Linear(in_dim, z_dim)
        self.scale = nn.Linear(in_dim, z_dim)

    def forward(self, h):
        return full_precision(self.loc(h)), torch.exp(full_precision(self.scale(h))) + MIN_SCALE


class MLPEncoder(nn.Module):
    """x (+ c) -> ``layers`` ReLU hidden layers, each also reading c -> head: 784-400-z by default.

    The head turns the hidden features (batch, hidden_dim) into the guide's parameters: by default
    a diagonal Gaussian's (loc, scale); a guide part (guides.py) may bring its own, as a function
    that makes it (called after the hidden layer is made, so that the default's weights are drawn
    in the same order whatever the head).

    ReLU rather than Pyro's example's softplus: the same bound at z_dim 50, and with z_dim 2 it
    reaches 154 nats in 10 epochs against softplus's 164, with classes far better separated.
    """

    def __init__(
        self,
        image_shape,
        z_dim: int,
        hidden_dim: int = 400,
        cond_dim: int = 0,
        head: Callable[[], nn.Module] | None = None,
        layers: int = 1,
        activation: str = "relu",
    ):
        super().__init__()
        self.activation = activation
        self.hidden = hidden_layer(math.prod(image_shape) + cond_dim, hidden_dim, activation)
        self.deeper = deeper_layers(hidden_dim, cond_dim, layers, activation)
        self.head = GaussianHead(hidden_dim, z_dim) if head is None else head()

    def forward(self, x, c=None):
        return self.head(hidden_features(self.hidden, self.deeper, x.flatten(1), c, self.activation))


class MLPDecoder(nn.Module):
    """z (+ c) -> ``layers`` ReLU hidden layers, each also reading c -> likelihood parameters shaped like the image.

    A condition read by every hidden layer, not by the first alone, is what makes a CVAE draw the
    class it is asked for: on MNIST, two such layers took the share of samples judged to be the
    class asked for from 90% to 95% at 20 epochs, where one layer reading c at its output as well
    changed nothing (docs/results.md#class-control).
    """

    def __init__(
        self,
        image_shape,
        z_dim: int,
        hidden_dim: int = 400,
        cond_dim: int = 0,
        layers: int = 1,
        activation: str = "relu",
    ):
        super().__init__()
        self.image_shape, self.activation = tuple(image_shape), activation
        self.hidden = hidden_layer(z_dim + cond_dim, hidden_dim, activation)
        self.deeper = deeper_layers(hidden_dim, cond_dim, layers, activation)
        self.out = nn.Linear(hidden_dim, math.prod(image_shape))

    def forward(self, z, c=None):
        h = hidden_features(
            self.hidden, self.deeper, z, c, self.activation
        )  # (batch..., hidden_dim): z's and c's leading dimensions
        return self.out(h).float().view(*h.shape[:-1], *self.image_shape)


def _conv_plan(image_shape) -> tuple[list[int], int, int]:
    """Channels of the stride-2 conv stack and the feature map's size at its bottom.

    Halve while the side stays even and above 7: 28 -> 14 -> 7 (2 layers), 64 -> 32 -> 16 -> 8 -> 4 (4 layers).
    """
    _, h, w = image_shape
    channels = []
    while h % 2 == 0 and w % 2 == 0 and min(h, w) > 7 and len(channels) < 5:
        channels.append(min(32 * 2 ** len(channels), 256))
        h, w = h // 2, w // 2
    return channels, h, w


class ConvEncoder(nn.Module):
    """x -> stride-2 convolutions -> flatten (+ c) -> hidden -> head (as in :class:`MLPEncoder`)."""

    def __init__(
        self,
        image_shape,
        z_dim: int,
        hidden_dim: int = 400,
        cond_dim: int = 0,
        head: Callable[[], nn.Module] | None = None,
    ):
        super().__init__()
        channels, h, w = _conv_plan(image_shape)
        layers, c_in = [], image_shape[0]
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.SiLU()]
            c_in = c_out
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.hidden = nn.Linear(c_in * h * w + cond_dim, hidden_dim)
        self.head = GaussianHead(hidden_dim, z_dim) if head is None else head()

    def forward(self, x, c=None):
        h = F.silu(conditioned(self.hidden, self.features(x), c))
        return self.head(h)


class ConvDecoder(nn.Module):
    """z (+ c) -> hidden -> feature map -> stride-2 transposed convolutions -> parameters like the image."""

    def __init__(self, image_shape, z_dim: int, hidden_dim: int = 400, cond_dim: int = 0):
        super().__init__()
        channels, h, w = _conv_plan(image_shape)
        self.bottom = (channels[-1], h, w)
        self.hidden = nn.Sequential(
            nn.Linear(z_dim + cond_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, math.prod(self.bottom)), nn.SiLU()
        )
        layers = []
        outs = channels[::-1][1:] + [image_shape[0]]
        for c_in, c_out in zip(channels[::-1], outs):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.SiLU()]
        self.upsample = nn.Sequential(*layers[:-1])  # no activation on the output: it is a logit

    def forward(self, z, c=None):
        h = self.hidden[1:](conditioned(self.hidden[0], z, c))  # (batch..., C * H * W) at the bottom
        x = self.upsample(h.reshape(-1, *self.bottom))
        return x.float().view(*h.shape[:-1], *x.shape[1:])


class GaussianMLP(nn.Module):
    """v (batch..., in_dim) -> ``layers`` hidden layers (ReLU by default) -> (loc, scale) of a diagonal
    Gaussian, each (batch..., out_dim).

    The conditional Gaussians between two stochastic layers (models/hvae.py): p(z1|z2) and q(z2|z1).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, layers: int = 1, activation: str = "relu"):
        super().__init__()
        self.activation = activation
        self.hidden = hidden_layer(in_dim, hidden_dim, activation)
        self.deeper = deeper_layers(hidden_dim, 0, layers, activation)
        self.head = GaussianHead(hidden_dim, out_dim)

    def forward(self, v):
        return self.head(hidden_features(self.hidden, self.deeper, v, None, self.activation))


class PriorNet(nn.Module):
    """c -> (loc, scale) of a learned conditional prior p(z|c)."""

    def __init__(self, cond_dim: int, z_dim: int, hidden_dim: int = 64):
        super().__init__()
        self.hidden = nn.Linear(cond_dim, hidden_dim)
        self.head = GaussianHead(hidden_dim, z_dim)

    def forward(self, c):
        return self.head(F.softplus(self.hidden(c)))


class MaskedConv2d(nn.Conv2d):
    """A same-size convolution that, at each pixel, sees only the pixels before it in raster order
    (rows above, then the pixels to its left): van den Oord et al.'s (2016) masked convolution.

    ``first``: the mask of the first layer (type A), which hides the pixel itself too; later layers
    (type B) see it, since their input at that pixel holds only what came before it.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, first: bool):
        super().__init__(c_in, c_out, kernel, padding=kernel // 2)
        mask = torch.ones_like(self.weight)  # (c_out, c_in, kernel, kernel)
        mask[:, :, kernel // 2, kernel // 2 + (0 if first else 1) :] = 0  # the pixel itself (A) and those to its right
        mask[:, :, kernel // 2 + 1 :] = 0  # the rows below
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelContext(nn.Module):
    """What the pixels before each pixel say about it: x (batch, C, H, W) -> (batch, 2C, H, W), at
    each pixel two numbers per channel (an offset and a gain for its logit) computed from the
    pixels before it alone.

    A 7x7 masked convolution (the 3 rows above and the 3 pixels to the left), ``layers`` residual
    3x3 masked convolutions that widen the view, and two 1x1 convolutions. The output layer starts
    at zero, so that a model starts as the plain factorized one (offset 0, gain 1).
    """

    def __init__(self, channels: int = 1, width: int = 32, layers: int = 2):
        super().__init__()
        self.first = MaskedConv2d(channels, width, 7, first=True)
        self.blocks = nn.ModuleList(MaskedConv2d(width, width, 3, first=False) for _ in range(layers))
        self.mix = nn.Conv2d(width, width, 1)
        self.out = nn.Conv2d(width, 2 * channels, 1)
        self.rows_above = 7 // 2 + layers  # how far up a pixel's output reads: 3 rows, and 1 more per 3x3 layer
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        h = F.relu(self.first(x))
        for block in self.blocks:
            h = h + F.relu(block(h))
        return self.out(F.relu(self.mix(h)))


class CompletionNet(nn.Module):
    """A deterministic guess of a whole image from part of it: two ReLU hidden layers.

    x: (batch, C, H, W) with -1 at the hidden pixels -> logits of every pixel, the same shape.
    """

    def __init__(self, image_shape, hidden_dim: int = 500):
        super().__init__()
        self.image_shape = tuple(image_shape)
        n = math.prod(image_shape)
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, n),
        )

    def forward(self, x):
        return self.layers(x).view(-1, *self.image_shape)


def build_encoder(
    net: str,
    image_shape,
    z_dim: int,
    hidden_dim: int,
    cond_dim: int = 0,
    head: Callable[[], nn.Module] | None = None,
    layers: int = 1,
    activation: str = "relu",
) -> nn.Module:
    """The encoder ``net`` names, ending in the layer ``head()`` makes (features (batch, hidden_dim)
    -> the guide's parameters; a diagonal Gaussian's (loc, scale) when None); ``layers`` and
    ``activation``: the MLP's hidden layers (the conv encoder has its own plan)."""
    if net == "mlp":
        return MLPEncoder(image_shape, z_dim, hidden_dim, cond_dim, head, layers, activation)
    return ConvEncoder(image_shape, z_dim, hidden_dim, cond_dim, head)


def build_decoder(
    net: str, image_shape, z_dim: int, hidden_dim: int, cond_dim: int = 0, layers: int = 1, activation: str = "relu"
) -> nn.Module:
    """The decoder ``net`` names; ``layers`` and ``activation``: the MLP's hidden layers (the conv decoder
    has its own plan)."""
    if net == "mlp":
        return MLPDecoder(image_shape, z_dim, hidden_dim, cond_dim, layers, activation)
    return ConvDecoder(image_shape, z_dim, hidden_dim, cond_dim)
