"""Spoken digits: "zero" .. "nine" as sound, made into log-mel images (see pyro_vae/audio.py).

Two sources:

- **synthesized** (the default, works offline): Debian's ``espeak-ng`` speaks each digit with a
  speaker drawn from English accents x voice variants, at a random speed and pitch. A speaker is
  an accent-variant pair; the test set's variants are never used for training, so the test set
  holds voices the model has not heard. The clips are also kept as WAV files under
  ``<data home>/spoken-digits/`` in the Free Spoken Digit Dataset's naming, to listen to.
- **a folder of labelled WAV files** (``--from DIR``): the Free Spoken Digit Dataset's naming
  ``{digit}_{speaker}_{n}.wav``, or one subfolder per label as in Speech Commands (where its
  ``testing_list.txt`` is present, it names the test clips; digit words become digits). Speakers
  are split between train and test by a hash of their name. Files that cannot be read are
  skipped and counted.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from ..audio import MelFeatures, fit_clip, read_wav, read_wav_bytes, write_wav
from ..errors import UserError

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
# espeak-ng voice variants: timbre, sex and age. The last four are held out for the test set.
TRAIN_VARIANTS = [
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "f1",
    "f2",
    "f3",
    "f4",
    "klatt",
    "klatt2",
    "croak",
    "edward",
    "john",
    "linda",
]
TEST_VARIANTS = ["m7", "f5", "klatt3", "grandma"]
SPEEDS = (110, 220)  # words per minute
PITCHES = (25, 75)  # espeak-ng's 0..99 scale
TEST_FRACTION = 0.2
FSDD_NAME = re.compile(r"^(\d)_([^_]+)_(\d+)$")


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise UserError(
            "spoken-digits are synthesized with espeak-ng, which is not installed; install it "
            "(Debian/Ubuntu: apt-get install espeak-ng; macOS: brew install espeak-ng), "
            "or pass --from DIR with your own WAVs"
        )
    return exe


def _speak(exe: str, word: str, voice: str, speed: int, pitch: int) -> tuple[torch.Tensor, int]:
    result = subprocess.run(
        [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word], capture_output=True, timeout=60
    )
    if result.returncode != 0 or not result.stdout:
        raise UserError(f"espeak-ng failed on voice {voice}: {result.stderr.decode(errors='replace').strip()[:200]}")
    return read_wav_bytes(result.stdout)


def synthesize(clips: int, seed: int, features: MelFeatures, wav_dir: Path | None = None, log=print) -> dict:
    """``clips`` spoken digits, as many of each, split by voice variant. Returns the data set's arrays."""
    exe = _espeak()
    if clips < 20:
        raise UserError(f"--clips must be at least 20 (two per digit), not {clips}")
    g = torch.Generator().manual_seed(seed)
    jobs = []  # (split, label, speaker, voice, speed, pitch)
    per_digit = clips // len(WORDS)
    n_test = max(1, round(per_digit * TEST_FRACTION))
    for label in range(len(WORDS)):
        for i in range(per_digit):
            split, variants = ("test", TEST_VARIANTS) if i < n_test else ("train", TRAIN_VARIANTS)
            accent = ACCENTS[int(torch.randint(len(ACCENTS), (1,), generator=g))]
            variant = variants[int(torch.randint(len(variants), (1,), generator=g))]
            speed = int(torch.randint(SPEEDS[0], SPEEDS[1] + 1, (1,), generator=g))
            pitch = int(torch.randint(PITCHES[0], PITCHES[1] + 1, (1,), generator=g))
            jobs.append((split, label, f"{accent}+{variant}", speed, pitch))
    log(
        f"synthesizing {len(jobs)} spoken digits with espeak-ng "
        f"({len(ACCENTS)} accents x {len(TRAIN_VARIANTS) + len(TEST_VARIANTS)} voices)"
    )
    with ThreadPoolExecutor(max_workers=8) as pool:
        spoken = list(pool.map(lambda job: _speak(exe, WORDS[job[1]], job[2], job[3], job[4]), jobs))
    clips_by_split: dict[str, list] = {"train": [], "test": []}
    for n, ((split, label, voice, _, _), (wave, rate)) in enumerate(zip(jobs, spoken)):
        speaker = voice.replace("+", "-")
        clips_by_split[split].append((fit_clip(wave, rate, features), label, speaker, f"{label}_{speaker}_{n}"))
    return _arrays(clips_by_split, features, WORDS, wav_dir, source=f"espeak-ng, seed {seed}")


def _label_of(path: Path, root: Path) -> tuple[str, str] | None:
    """(label name, speaker) of one file: FSDD naming, else the subfolder it sits in (None when neither)."""
    match = FSDD_NAME.match(path.stem)
    if match:
        return WORDS[int(match.group(1))], match.group(2)
    if path.parent == root:
        return None
    speaker = path.stem.split("_nohash_")[0] if "_nohash_" in path.stem else path.stem.split("_")[0]
    return path.parent.name, speaker


def _is_test(speaker: str) -> bool:
    return int(hashlib.sha256(speaker.encode()).hexdigest(), 16) % 100 < TEST_FRACTION * 100


def read_folder(root: Path, features: MelFeatures, log=print) -> dict:
    """The labelled WAV files under ``root`` (FSDD naming or one subfolder per label) as a data set."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"{root} is not a folder; pass --from a folder of labelled WAV files")
    files = sorted(
        p for p in root.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg") and not p.name.startswith(".")
    )
    labelled = [(p, _label_of(p, root)) for p in files]
    labelled = [(p, lab) for p, lab in labelled if lab is not None]
    if not labelled:
        raise UserError(
            f"no labelled audio in {root}: name files {{digit}}_{{speaker}}_{{n}}.wav (Free Spoken Digit Dataset) "
            "or put each label's files in a subfolder named after it"
        )
    names = sorted({lab for _, (lab, _) in labelled})
    classes = WORDS if set(names) <= set(WORDS) else names  # digit words keep digit order
    testing = root / "testing_list.txt"  # Speech Commands' own split
    test_files = set(testing.read_text().split()) if testing.exists() else None
    clips_by_split: dict[str, list] = {"train": [], "test": []}
    skipped = 0
    for path, (label, speaker) in labelled:
        try:
            wave, rate = read_wav(path)
        except Exception:
            skipped += 1
            continue
        if wave.numel() == 0:
            skipped += 1
            continue
        is_test = path.relative_to(root).as_posix() in test_files if test_files is not None else _is_test(speaker)
        clips_by_split["test" if is_test else "train"].append(
            (fit_clip(wave, rate, features), classes.index(label), speaker, None)
        )
    if skipped:
        log(f"skipped {skipped} of {len(labelled)} files in {root} that could not be read as audio")
    for split in ("train", "test"):
        if not clips_by_split[split]:
            raise UserError(
                f"{root} gives no {split} clips ({len(labelled) - skipped} readable, split by speaker); "
                "add clips from more speakers"
            )
    return _arrays(clips_by_split, features, classes, None, source=str(root))


def _arrays(clips_by_split: dict, features: MelFeatures, classes: list[str], wav_dir: Path | None, source: str) -> dict:
    """Featurize the clips (db_max fitted on the training clips) into the cache's arrays."""
    waves = {s: torch.stack([c[0] for c in clips]) for s, clips in clips_by_split.items()}
    features = features.fit(waves["train"])
    arrays = {"classes": list(classes), "features": features.to_dict(), "source": source}
    for split, clips in clips_by_split.items():
        arrays[f"x_{split}"] = features.encode(waves[split]).to(torch.float16)
        arrays[f"y_{split}"] = torch.tensor([c[1] for c in clips], dtype=torch.int64)
        arrays[f"speakers_{split}"] = [c[2] for c in clips]
        if wav_dir is not None:
            for wave, _, _, name in clips:
                write_wav(wave, wav_dir / split / f"{name}.wav", features.sample_rate)
    return arrays


def prepare(
    home: Path,
    *,
    clips: int = 3000,
    seed: int = 0,
    source: Path | None = None,
    features: MelFeatures | None = None,
    log=print,
):
    """Make the spoken-digit data set: synthesized, or read from the folder ``source``. Returns (arrays, source)."""
    features = (features or MelFeatures()).check()
    if source is not None:
        arrays = read_folder(source, features, log=log)
    else:
        wav_dir = home / "spoken-digits"
        shutil.rmtree(wav_dir, ignore_errors=True)
        arrays = synthesize(clips, seed, features, wav_dir, log=log)
    return arrays, arrays["source"]
