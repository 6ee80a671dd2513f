import os
import pickle
import time

import numpy as np
import pytest
import torch

from pyro_vae import Config, data
from pyro_vae.data import cache
from pyro_vae.data import mnist as source
from pyro_vae.data.augment import augment
from pyro_vae.data.imageset import ImageSet
from pyro_vae.errors import UserError
from pyro_vae.spec import resolve


def test_mnist_is_the_canonical_copy(mnist):
    train, test = mnist
    assert (len(train), len(test)) == (60000, 10000)
    assert train.image_shape == (1, 28, 28) and train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert torch.bincount(train.y).tolist() == mnist_counts("train")
    assert torch.bincount(test.y).tolist() == mnist_counts("test")
    assert float(train.x.min()) == 0.0 and float(train.x.max()) == 1.0
    arrays = data.load_arrays("mnist")
    assert source.digest(arrays["x_train"], arrays["y_train"]) == source.EXPECTED["mnist"]["train_sha256"]
    assert source.digest(arrays["x_test"], arrays["y_test"]) == source.EXPECTED["mnist"]["test_sha256"]


def mnist_counts(split):
    return source.EXPECTED["mnist"][f"{split}_counts"]


def test_check_refuses_a_copy_with_one_pixel_changed():
    arrays = {k: v.clone() for k, v in data.load_arrays("mnist").items() if k != "classes"}
    source.check("mnist", arrays, "test")  # the real copy passes
    arrays["x_test"][17, 14, 14] ^= 1
    with pytest.raises(UserError, match="sha256"):
        source.check("mnist", arrays, "test")


def test_check_refuses_wrong_counts_and_rescaled_pixels():
    arrays = {k: v for k, v in data.load_arrays("mnist").items() if k != "classes"}
    short = dict(arrays, y_train=arrays["y_train"][:-1], x_train=arrays["x_train"][:-1])
    with pytest.raises(UserError, match="label counts"):
        source.check("mnist", short, "test")
    halved = dict(arrays, x_train=arrays["x_train"] // 2)
    with pytest.raises(UserError, match="pixels span 0..127"):
        source.check("mnist", halved, "test")


def test_mnist_pickle_reader_restores_exact_bytes():
    rng = np.random.default_rng(0)
    parts = [(rng.integers(0, 256, (n, 784)).astype(np.float32) / 256, rng.integers(0, 10, n)) for n in (5, 3, 4)]
    arrays = source.read_mnist_pickle(pickle.dumps(tuple(parts), protocol=4))
    assert arrays["x_train"].shape == (8, 28, 28) and arrays["x_test"].shape == (4, 28, 28)
    expected = np.concatenate([parts[0][0], parts[1][0]]) * 256
    assert np.array_equal(arrays["x_train"].reshape(8, 784).numpy(), expected.astype(np.uint8))
    assert arrays["y_train"].tolist() == list(parts[0][1]) + list(parts[1][1])


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_mnist_pickle_reader_refuses_anything_but_numpy():
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system"):
        source.read_mnist_pickle(pickle.dumps(_RunsCode()))


def test_idx_reader(tmp_path):
    values = torch.arange(24, dtype=torch.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in values.shape)
    (tmp_path / "a.idx").write_bytes(header + values.numpy().tobytes())
    assert torch.equal(source.read_idx(tmp_path / "a.idx"), values)


@pytest.mark.skipif(not source.FASHION_DEBIAN_DIR.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian():
    train, test = data.load("fashion-mnist", "cpu", "none")
    assert (len(train), len(test)) == (60000, 10000)
    assert torch.bincount(train.y).tolist() == [6000] * 10 and torch.bincount(test.y).tolist() == [1000] * 10
    assert train.classes[9] == "Ankle boot"
    assert 0.25 < float(train.x.mean()) < 0.32  # grey garments, unlike MNIST's 0.13


def test_torchvision_source_fails_fast_or_gives_the_real_data(tmp_path):
    start = time.perf_counter()
    arrays = source.from_torchvision("mnist", tmp_path)
    if arrays is None:  # offline: the next source must get its turn quickly
        assert time.perf_counter() - start < 30
    else:
        source.check("mnist", arrays, "torchvision")


@pytest.mark.slow
def test_binarization_modes(mnist):
    grey_train, grey_test = data.load("mnist", "cpu", "none")
    assert len(grey_test.x.unique()) > 100
    dyn_train, dyn_test = mnist
    assert len(dyn_train.x.unique()) > 100  # the trainer draws binary images from these each time
    assert set(dyn_test.x.unique().tolist()) == {0.0, 1.0}
    again_test = data.load("mnist", "cpu", "dynamic")[1]
    assert torch.equal(dyn_test.x, again_test.x)  # the test set's one draw is fixed
    static_train, static_test = data.load("mnist", "cpu", "static")
    assert set(static_train.x.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(static_test.x, dyn_test.x)
    # a binary draw keeps each pixel's mean: about 13% of MNIST's ink
    assert abs(float(static_train.x.mean()) - float(grey_train.x.mean())) < 0.002


def test_dequantization_spreads_each_grey_level_over_its_own_width(mnist):
    grey_train, grey_test = data.load("mnist", "cpu", "none")
    train, test = data.load("mnist", "cpu", "dequantize")
    assert torch.equal(train.x, grey_train.x)  # the trainer moves the training images, afresh each time
    noise = (test.x - grey_test.x) * 255  # in units of one level: uniform on [-1/2, 1/2]
    assert noise.abs().max() <= 0.5 + 1e-4 and noise.abs().max() > 0.499
    assert abs(float(noise.mean())) < 0.001 and abs(float(noise.var()) - 1 / 12) < 0.001
    assert torch.equal(test.x, data.load("mnist", "cpu", "dequantize")[1].x)  # one fixed draw of the test set
    rest, valid = data.hold_out(train, 1000, seed=0, binarize="dequantize")
    assert len(valid.x.unique()) > 100_000  # validation images are drawn once too: no two pixels alike
    config = Config(binarize="dequantize", likelihood="gaussian")
    first, second = (
        augment(grey_train.x[:64], config, torch.Generator().manual_seed(0)),
        augment(grey_train.x[:64], config, torch.Generator().manual_seed(1)),
    )
    assert ((first - grey_train.x[:64]) * 255).abs().max() <= 0.5 + 1e-4 and not torch.equal(first, second)


@pytest.mark.parametrize("likelihood", ["bernoulli", "examples/mixture_prior.py:DiscretizedLogistic"])
def test_dequantization_is_refused_for_a_probability_of_the_levels(likelihood):
    with pytest.raises(UserError, match=f"binarize dequantize .* likelihood {likelihood} gives the levels themselves"):
        resolve(Config(binarize="dequantize", likelihood=likelihood))
    assert resolve(Config(binarize="dequantize", likelihood="laplace")).binarize == "dequantize"


def test_batches_cover_the_set_once_in_a_seeded_order():
    s = ImageSet(torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10), [str(i) for i in range(10)])
    g = torch.Generator().manual_seed(1)
    seen = torch.cat([y for _, y in s.batches(4, shuffle=True, generator=g)])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    kept = [len(y) for _, y in s.batches(4, drop_last=True)]
    assert kept == [4, 4] and s.num_batches(4, drop_last=True) == 2 and s.num_batches(4) == 3
    again = torch.cat([y for _, y in s.batches(4, shuffle=True, generator=torch.Generator().manual_seed(1))])
    assert torch.equal(seen, again)


def test_data_home_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "here"))
    assert cache.data_home() == tmp_path / "here" and (tmp_path / "here").is_dir()
    assert cache.load_cached("mnist") is None
    (tmp_path / "here" / "mnist.pt").write_bytes(b"not a torch file")
    assert cache.load_cached("mnist") is None  # a broken cache is prepared again, not trusted


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(UserError, match="unknown data set 'cifar'; choose one of: mnist, fashion-mnist"):
        data.load("cifar")
