"""Any folder of pictures as a data set: centre-cropped, resized to a square, labelled by subfolder.

``data prepare image-folder --from DIR`` reads every image under DIR (JPEG, PNG, PGM, ...).
Each is centre-cropped to a square (``--crop`` pixels, or its shorter side) and resized to
``--image-size`` (64 by default), the CelebA recipe of most VAE papers (crop 148, resize 64).
When every image is grey the set is grey (1 channel), otherwise RGB (3 channels). Files in
subfolders take the subfolder's name as their label; files directly in DIR are all one class.
A hash of each file's path puts about a tenth of them in the test set, so adding files does not
move the others. Files that cannot be read as images are skipped and counted.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import UserError

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".pgm", ".ppm", ".pnm", ".tif", ".tiff", ".webp"}
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
TEST_FRACTION = 0.1


def fit_image(image: Image.Image, size: int, crop: int | None = None, mode: str = "RGB") -> torch.Tensor:
    """A picture -> uint8 (C, size, size): centre square of ``crop`` pixels (None: the shorter side), resized.

    mode: 'L' for one grey channel, 'RGB' for three. Pillow's resize filters the image as it
    shrinks it, so small outputs do not alias.
    """
    image = image.convert(mode)
    w, h = image.size
    side = min(w, h) if crop is None else min(crop, w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8))
    return pixels.unsqueeze(0) if pixels.dim() == 2 else pixels.permute(2, 0, 1).contiguous()


MAX_SIZE = 512  # pixels a side: a data set of 1024 x 1024 colour images is 3 MB an image, beyond a laptop's memory


def check_size(size: int, crop: int | None) -> None:
    if not 8 <= size <= MAX_SIZE:
        raise UserError(f"--image-size must be 8..{MAX_SIZE} pixels, not {size}")
    if crop is not None and crop < 1:
        raise UserError(f"--crop must be a positive number of pixels (or left out for the shorter side), not {crop}")


def is_test(key: str) -> bool:
    """A fixed pseudo-random tenth of all keys (file paths), the same on every machine."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 16**8 < TEST_FRACTION


def open_images(paths: list[Path], log=print) -> tuple[list[tuple[Path, Image.Image]], str]:
    """Open (lazily) every readable image; returns them and the common mode, 'L' when all are grey."""
    opened, skipped = [], 0
    for path in paths:
        try:
            opened.append((path, Image.open(path)))
        except (UnidentifiedImageError, OSError):
            skipped += 1
    if skipped:
        log(f"skipped {skipped} of {len(paths)} files that could not be read as images")
    mode = "L" if opened and all(image.mode in GREY_MODES for _, image in opened) else "RGB"
    return opened, mode


def load_images(
    opened: list[tuple[Path, Image.Image]], size: int, crop: int | None, mode: str, log=print
) -> tuple[list, list]:
    """Decode, crop and resize; returns the paths kept and their (C, size, size) tensors."""
    from rich.progress import track

    kept, pixels = [], []
    skipped = 0
    for path, image in track(
        opened, description=f"reading {len(opened)} images", transient=True, disable=len(opened) < 500
    ):
        try:
            pixels.append(fit_image(image, size, crop, mode))
            kept.append(path)
        except OSError:  # truncated or corrupt beyond its header
            skipped += 1
        finally:
            image.close()
    if skipped:
        log(f"skipped {skipped} images whose pixels could not be decoded")
    return kept, pixels


def read_folder(root: Path, size: int = 64, crop: int | None = None, limit: int | None = None, log=print) -> dict:
    """Every image under ``root`` as a data set's arrays (uint8 images, int64 labels, class names)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(
            f"{root} is not a folder; pass --from a folder of images (one subfolder per label, or all in one)"
        )
    check_size(size, crop)
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES and not p.name.startswith("."))[:limit]
    if not paths:
        raise UserError(
            f"no images in {root} (looked for {', '.join(sorted(SUFFIXES))}); point --from at a folder of pictures"
        )
    opened, mode = open_images(paths, log)
    kept, pixels = load_images(opened, size, crop, mode, log)
    if len(kept) < 2:
        raise UserError(
            f"{root} holds {len(kept)} readable image(s); a data set needs at least 2 (one to train on, one to test)"
        )
    relative = [p.relative_to(root) for p in kept]
    labelled = all(len(r.parts) > 1 for r in relative)
    names = [r.parts[0] for r in relative] if labelled else [root.name or "images"] * len(relative)
    classes = sorted(set(names))
    test = [is_test(r.as_posix()) for r in relative]
    if all(test) or not any(test):  # a handful of files: hold out the last one
        test = [False] * (len(kept) - 1) + [True]
    arrays = {"classes": classes, "source": str(root)}
    for split, wanted in (("train", False), ("test", True)):
        index = [i for i, t in enumerate(test) if t == wanted]
        arrays[f"x_{split}"] = torch.stack([pixels[i] for i in index])
        arrays[f"y_{split}"] = torch.tensor([classes.index(names[i]) for i in index], dtype=torch.int64)
    log(
        f"{len(kept)} {'grey' if mode == 'L' else 'RGB'} images of {len(classes)} class(es), {size}x{size}: "
        f"{len(arrays['y_train'])} train, {len(arrays['y_test'])} test"
    )
    return arrays


def prepare(
    home: Path,
    *,
    source: Path | None = None,
    image_size: int = 64,
    crop: int | None = None,
    limit: int | None = None,
    log=print,
):
    """The user's folder ``source`` as a data set. Returns (arrays, source)."""
    if source is None:
        raise UserError(
            "image-folder reads your own pictures: run `python cli.py data prepare image-folder --from DIR` first"
        )
    arrays = read_folder(source, image_size, crop, limit, log)
    return arrays, arrays["source"]
