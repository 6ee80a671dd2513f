"""CelebA in torchvision's layout on disk, with its 40 binary attributes as possible conditions.

    ROOT/                      (or ROOT/celeba/, as torchvision downloads it)
      img_align_celeba/        000001.jpg, 000002.jpg, ...
      list_attr_celeba.txt     count, then the 40 attribute names, then "000001.jpg -1 1 ..." per image
      list_eval_partition.txt  optional: "000001.jpg 0|1|2" (train, validation, test)

Images are centre-cropped to 148 x 148 and resized to 64 x 64 (``--crop``, ``--image-size``), as
in most VAE papers. Training uses partitions 0 and 1, the test set partition 2; without the
partition file a hash of the file name holds out a tenth. The attributes are kept as 0/1
columns; ``train --condition Smiling,Eyeglasses`` picks the ones a CVAE is conditioned on.

Without ``--from``, torchvision's downloader is tried (it needs Google Drive and 1.4 GB).
"""

from __future__ import annotations

import socket
from pathlib import Path

import torch

from ..errors import UserError
from .image_folder import check_size, is_test, load_images, open_images

IMAGES, ATTRIBUTES, PARTITIONS = "img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt"
DEFAULT_CROP = 148
DOWNLOAD_TIMEOUT_S = 20


def find_root(source: Path) -> Path:
    """``source`` or its ``celeba/`` subfolder, whichever holds the layout; a clear error otherwise."""
    for root in (source, source / "celeba"):
        if (root / IMAGES).is_dir() and (root / ATTRIBUTES).is_file():
            return root
    raise UserError(
        f"{source} is not in CelebA's layout: it needs {IMAGES}/ and {ATTRIBUTES} (directly or under celeba/)"
    )


def read_attributes(path: Path) -> tuple[list[str], dict[str, list[int]]]:
    """(the attribute names, {file name: 0/1 per attribute}) from list_attr_celeba.txt."""
    lines = path.read_text().splitlines()
    try:
        names = lines[1].split()
        rows = {}
        for line in lines[2:]:
            if line.strip():
                name, *values = line.split()
                if len(values) != len(names):
                    raise ValueError(f"{name} has {len(values)} values for {len(names)} attributes")
                rows[name] = [int(int(v) > 0) for v in values]  # the file says -1 / 1
    except (IndexError, ValueError) as e:
        raise UserError(
            f"{path} is not a CelebA attribute list ({e}); it should hold a count, the names, then one row per image"
        ) from e
    return names, rows


def download(home: Path) -> Path | None:
    """torchvision's CelebA download into the data folder, or None where it cannot be had."""
    from torchvision import datasets

    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        datasets.CelebA(str(home / "torchvision"), split="all", target_type="attr", download=True)
    except Exception:
        return None
    finally:
        socket.setdefaulttimeout(old_timeout)
    return home / "torchvision" / "celeba"


def prepare(
    home: Path,
    *,
    source: Path | None = None,
    image_size: int = 64,
    crop: int | None = DEFAULT_CROP,
    limit: int | None = None,
    log=print,
) -> tuple[dict, str]:
    """CelebA from the folder ``source`` (or torchvision's download), as arrays. Returns (arrays, source)."""
    check_size(image_size, crop)
    if source is None:
        source = download(home)
        if source is None:
            raise UserError(
                "CelebA could not be downloaded; fetch it yourself (torchvision's layout) and pass --from DIR"
            )
    root = find_root(Path(source).expanduser())
    names, attributes = read_attributes(root / ATTRIBUTES)
    partition = {}
    if (root / PARTITIONS).is_file():
        partition = dict(line.split()[:2] for line in (root / PARTITIONS).read_text().splitlines() if line.strip())
    files = [root / IMAGES / f for f in sorted(attributes) if (root / IMAGES / f).is_file()][:limit]
    if not files:
        raise UserError(f"none of the images listed in {root / ATTRIBUTES} is in {root / IMAGES}")
    opened, _ = open_images(files, log)
    kept, pixels = load_images(opened, image_size, crop, "RGB", log)
    test = [partition[p.name] == "2" if p.name in partition else is_test(p.name) for p in kept]
    if all(test) or not any(test):
        raise UserError(
            f"{root} gives an empty train or test set from {len(kept)} images; add images or a fuller {PARTITIONS}"
        )
    arrays = {"classes": ["face"], "attribute_names": names, "source": str(root)}
    for split, wanted in (("train", False), ("test", True)):
        index = [i for i, t in enumerate(test) if t == wanted]
        arrays[f"x_{split}"] = torch.stack([pixels[i] for i in index])
        arrays[f"y_{split}"] = torch.zeros(len(index), dtype=torch.int64)
        arrays[f"attributes_{split}"] = torch.tensor([attributes[kept[i].name] for i in index], dtype=torch.uint8)
    log(
        f"{len(kept)} CelebA images, {image_size}x{image_size}: "
        f"{len(arrays['y_train'])} train, {len(arrays['y_test'])} test"
    )
    return arrays, str(root)
