"""What makes the CVAE draw the class it is asked for, by default: its own defaults for the prior and
the networks' width and depth, an encoder and a decoder whose every hidden layer reads the label, and
runs of older formats that keep the networks they were trained with."""

import pytest
import torch

from conftest import small_config
from pyro_vae import Config, build_model
from pyro_vae.errors import UserError
from pyro_vae.networks import MLPDecoder, MLPEncoder
from pyro_vae.spec import for_model, resolve


def test_each_model_chooses_the_settings_left_out():
    cvae, vae, ae = resolve(Config(model="cvae")), resolve(Config(model="vae")), resolve(Config(model="ae"))
    assert (cvae.prior, cvae.decoder_layers) == ("conditional", 2)
    assert (vae.prior, vae.decoder_layers) == ("standard", 1) and (ae.prior, ae.decoder_layers) == ("standard", 1)
    assert resolve(Config(model="cvae", prior="standard", decoder_layers=1)).prior == "standard"  # given: kept
    assert resolve(Config(model="cvae", net="conv")).decoder_layers == 1  # the conv decoder has its own plan
    with pytest.raises(UserError, match="decoder_layers sets the depth of the mlp decoder; net conv has its own"):
        resolve(Config(model="cvae", net="conv", decoder_layers=3))
    assert (cvae.hidden_dim, cvae.encoder_layers, vae.hidden_dim, vae.encoder_layers) == (600, 2, 400, 1)
    assert (
        resolve(Config(model="cvae", encoder_layers=1, hidden_dim=64)).encoder_layers,
        resolve(Config(model="cvae", hidden_dim=64)).hidden_dim,
    ) == (1, 64)
    conv = resolve(Config(model="cvae", net="conv"))
    assert (conv.hidden_dim, conv.encoder_layers) == (400, 1)  # the widths and depths chosen are the mlp's
    m2 = resolve(Config(model="cvae", labels=100))  # the semi-supervised form keeps the networks it was measured with
    assert (m2.hidden_dim, m2.encoder_layers, m2.decoder_layers, m2.prior) == (400, 1, 2, "conditional")
    with pytest.raises(UserError, match="encoder_layers sets the depth of the mlp encoder; net conv has its own"):
        resolve(Config(model="vae", net="conv", encoder_layers=2))
    with pytest.raises(UserError, match="encoder_layers must be at least 1, not 0"):
        resolve(Config(model="vae", encoder_layers=0))
    with pytest.raises(UserError, match="prior mixture cannot be used with model ae"):
        resolve(Config(model="ae", prior="mixture"))


def test_compare_gives_each_model_its_own_defaults_and_keeps_what_was_given():
    shared = Config(model="cvae")
    vae = for_model(resolve(shared), "vae")
    assert (vae.prior, vae.hidden_dim, vae.encoder_layers, vae.decoder_layers) == ("standard", 400, 1, 1)
    assert resolve(vae) and resolve(for_model(resolve(shared), "ae"))
    assert (for_model(resolve(vae), "cvae").hidden_dim, for_model(resolve(vae), "cvae").encoder_layers) == (600, 2)
    given = Config(model="cvae", prior="mixture", hidden_dim=500, decoder_layers=3)
    assert (
        for_model(resolve(given), "vae").prior,
        for_model(resolve(given), "vae").hidden_dim,
        for_model(resolve(given), "vae").decoder_layers,
    ) == (
        "mixture",
        500,
        3,
    )
    # a setting given at the cvae's own default is still given: the CLI names what was typed
    wide = for_model(
        resolve(Config(model="cvae", hidden_dim=600, encoder_layers=2)), "vae", given={"hidden_dim", "encoder_layers"}
    )
    assert (wide.hidden_dim, wide.encoder_layers, wide.decoder_layers) == (600, 2, 1)


def test_every_hidden_layer_of_the_decoder_and_encoder_reads_the_condition():
    torch.manual_seed(0)
    decoder = MLPDecoder((1, 4, 4), z_dim=3, hidden_dim=6, cond_dim=2, layers=3)
    assert [layer.in_features for layer in [decoder.hidden, *decoder.deeper]] == [3 + 2, 6 + 2, 6 + 2]
    z = torch.randn(5, 3)
    a, b = torch.tensor([[1.0, 0.0]]).expand(5, 2), torch.tensor([[0.0, 1.0]]).expand(5, 2)
    # the second layer's condition weights alone change the output: the label reaches past the first layer
    before = decoder(z, a) - decoder(z, b)
    with torch.no_grad():
        decoder.deeper[0].weight[:, 6:] += 1.0
    assert not torch.allclose(before, decoder(z, a) - decoder(z, b))
    assert decoder(z, a).shape == (5, 1, 4, 4)
    encoder = MLPEncoder((1, 4, 4), z_dim=3, hidden_dim=6, cond_dim=2, layers=2)
    assert [layer.in_features for layer in [encoder.hidden, *encoder.deeper]] == [16 + 2, 6 + 2]
    x = torch.rand(5, 1, 4, 4)
    before = encoder(x, a)[0] - encoder(x, b)[0]
    with torch.no_grad():
        encoder.deeper[0].weight[:, 6:] += 1.0
    assert not torch.allclose(before, encoder(x, a)[0] - encoder(x, b)[0])
    assert [t.shape for t in encoder(x, a)] == [(5, 3), (5, 3)]


def test_the_cvae_is_built_with_its_defaults():
    model = build_model(small_config(model="cvae"), (1, 28, 28), 10)
    assert len(model.encoder.deeper) == len(model.decoder.deeper) == 1 and type(model.p_z).__name__ == "Conditional"
    assert len(build_model(small_config(model="cvae", encoder_layers=3), (1, 28, 28), 10).encoder.deeper) == 2
    vae = build_model(small_config(model="vae"), (1, 28, 28), 10)
    assert len(vae.encoder.deeper) == len(vae.decoder.deeper) == 0 and type(vae.p_z).__name__ == "Standard"
