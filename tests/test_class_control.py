"""What makes the CVAE draw the class it is asked for, by default: its own defaults for the prior and
the decoder's depth, a decoder whose every hidden layer reads the label, and runs of older formats
that keep the networks they were trained with."""

import pytest
import torch

from pyro_vae import Config, build_model
from pyro_vae.errors import UserError
from pyro_vae.networks import MLPDecoder, MLPEncoder

from conftest import small_config


def test_each_model_chooses_the_settings_left_out():
    cvae, vae, ae = Config(model="cvae"), Config(model="vae"), Config(model="ae")
    assert (cvae.prior, cvae.decoder_layers) == ("conditional", 2)
    assert (vae.prior, vae.decoder_layers) == ("standard", 1) and (ae.prior, ae.decoder_layers) == ("standard", 1)
    assert Config(model="cvae", prior="standard", decoder_layers=1).validate().prior == "standard"  # given: kept
    assert Config(model="cvae", net="conv").decoder_layers == 1  # the conv decoder has its own plan
    with pytest.raises(UserError, match="--decoder-layers sets the depth of the mlp decoder; --net conv has its own"):
        Config(model="cvae", net="conv", decoder_layers=3).validate()
    assert (cvae.encoder_layers, vae.encoder_layers, Config(model="cvae", encoder_layers=2).encoder_layers) == (1, 1, 2)
    with pytest.raises(UserError, match="--encoder-layers sets the depth of the mlp encoder; --net conv has its own"):
        Config(model="vae", net="conv", encoder_layers=2).validate()
    with pytest.raises(UserError, match="--encoder-layers must be at least 1, not 0"):
        Config(model="vae", encoder_layers=0).validate()
    with pytest.raises(UserError, match="--prior mixture cannot be used with --model ae"):
        Config(model="ae", prior="mixture").validate()


def test_compare_gives_each_model_its_own_defaults_and_keeps_what_was_given():
    shared = Config(model="cvae")
    assert (shared.for_model("vae").prior, shared.for_model("vae").decoder_layers) == ("standard", 1)
    assert shared.for_model("vae").validate() and shared.for_model("ae").validate()
    given = Config(model="cvae", prior="mixture", decoder_layers=3)
    assert (given.for_model("vae").prior, given.for_model("vae").decoder_layers) == ("mixture", 3)


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
    assert len(model.decoder.deeper) == 1 and type(model.p_z).__name__ == "Conditional"
    assert len(build_model(small_config(model="cvae", encoder_layers=3), (1, 28, 28), 10).encoder.deeper) == 2
    vae = build_model(small_config(model="vae"), (1, 28, 28), 10)
    assert len(vae.decoder.deeper) == 0 and type(vae.p_z).__name__ == "Standard"
