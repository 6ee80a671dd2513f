"""Sound as images: fixed-length clips <-> normalized log-mel spectrograms, and WAV files.

A clip is made mono, resampled, trimmed of the silence around it, peak-normalized and padded
(or cut) to a fixed length. Its log-mel spectrogram, in decibels, is mapped linearly from
[db_max - top_db, db_max] onto [0, 1] (values below are clipped to 0), so the models and plots
treat it as a one-channel image: x: (batch, 1, n_mels, frames).

``db_max`` is measured on the training clips; it and the transform settings travel with the
data set and with every run (:meth:`MelFeatures.to_dict`), so a run alone can turn the images
its model generates back into sound: undo the scaling, invert the mel filter bank (least
squares) and recover a phase with Griffin-Lim.
"""

from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .files import atomic_path

SILENCE_DB = 40.0  # trimming: frames this far below the clip's loudest frame are silence
PEAK = 0.9  # clips are scaled to this peak amplitude, read and written alike
MAX_SECONDS = 10.0  # per clip
MIN_BANDS, MAX_FRAMES = (
    8,
    2048,
)  # mel bands and frames of an image: fewer blur speech away; more frames do not fit a batch
GRIFFIN_LIM_CHUNK = 50  # clips per Griffin-Lim call: 200 at once take 2.4 times as long as four times 50 (CPU caches)


@dataclass
class MelFeatures:
    """The settings that turn a clip into an image and back (defaults: 1 s at 16 kHz -> 64 x 64)."""

    sample_rate: int = 16000
    duration: float = 1.0  # seconds per clip
    n_mels: int = 64
    hop: int = 250  # samples between frames
    n_fft: int = 1024
    top_db: float = 80.0  # dynamic range kept below db_max
    db_max: float = 0.0  # the loudest value of the training set, in dB (set by fit)

    @property
    def samples(self) -> int:
        return round(self.sample_rate * self.duration)

    @property
    def frames(self) -> int:
        return self.samples // self.hop

    @property
    def shape(self) -> tuple[int, int, int]:
        return (1, self.n_mels, self.frames)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MelFeatures":
        return cls(**d)

    def check(self) -> "MelFeatures":
        """These settings, or a UserError naming the first one out of range (in the options' own words)."""
        if not (math.isfinite(self.duration) and self.duration > 0):
            raise UserError(f"--duration must be a positive number of seconds, not {self.duration}")
        if self.duration > MAX_SECONDS:
            raise UserError(
                f"--duration must be at most {MAX_SECONDS} s (spoken digits last about one), not {self.duration}"
            )
        if self.hop < 1:
            raise UserError(f"--hop must be at least 1 sample (16 kHz: the default 250 is 15.6 ms), not {self.hop}")
        if (
            not MIN_BANDS <= self.n_mels <= self.n_fft // 2
        ):  # an FFT of n_fft samples has n_fft/2 + 1 frequency bins to share out
            raise UserError(
                f"--n-mels must be {MIN_BANDS}..{self.n_fft // 2} (the FFT of {self.n_fft} samples "
                f"has {self.n_fft // 2 + 1} frequencies), not {self.n_mels}"
            )
        if not MIN_BANDS <= self.frames <= MAX_FRAMES:
            change = (
                "lower --hop or lengthen --duration" if self.frames < MIN_BANDS else "raise --hop or shorten --duration"
            )
            raise UserError(
                f"{self.duration:g} s at --hop {self.hop} gives {self.frames} frames, "
                f"where {MIN_BANDS}..{MAX_FRAMES} fit an image; {change}"
            )
        if self.sample_rate < 1000:
            raise UserError(f"a sample rate of {self.sample_rate} Hz is too low for speech; use 16000")
        return self

    def _mel(self):
        import torchaudio

        return torchaudio.transforms.MelSpectrogram(
            self.sample_rate, n_fft=self.n_fft, hop_length=self.hop, n_mels=self.n_mels, power=2.0
        )

    def decibels(self, waves: torch.Tensor) -> torch.Tensor:
        """waves: (N, samples) -> log-mel power in dB: (N, n_mels, frames)."""
        power = self._mel()(waves)[..., : self.frames]  # centred frames: one more than needed
        return 10 * torch.log10(power.clamp_min(1e-10))

    def fit(self, waves: torch.Tensor) -> "MelFeatures":
        """Take db_max from the training clips ``waves: (N, samples)``."""
        return dataclasses.replace(self, db_max=round(float(self.decibels(waves).max()), 3))

    @torch.no_grad()
    def encode(self, waves: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """waves: (N, samples) -> images (N, 1, n_mels, frames) in [0, 1]."""
        parts = [self.decibels(waves[i : i + batch_size]) for i in range(0, len(waves), batch_size)]
        x = (torch.cat(parts) - (self.db_max - self.top_db)) / self.top_db
        return x.clamp_(0, 1).unsqueeze(1)

    def stft(self, waves: torch.Tensor) -> torch.Tensor:
        """waves: (N, samples) -> complex STFT (N, n_fft // 2 + 1, frames + 1), the one ``decibels`` measures
        (Hann window, centred frames): its magnitude squared, through the mel bank, is the mel power."""
        window = torch.hann_window(self.n_fft, device=waves.device)
        return torch.stft(
            waves, self.n_fft, self.hop, window=window, center=True, pad_mode="reflect", return_complex=True
        )

    @torch.no_grad()
    def linear_power(self, images: torch.Tensor) -> torch.Tensor:
        """images (N, 1, n_mels, frames), any range (clipped to [0, 1]) -> power per STFT bin
        (N, n_fft // 2 + 1, frames + 1).

        Undoes the scaling to dB, then the mel filter bank by least squares (minimum norm, negative
        power set to 0): 64 bands become 513 bins, so the fine structure inside a band (harmonics) is
        not recovered. The last frame, dropped by ``encode``, is a copy of the one before.
        """
        import torchaudio

        images = images.detach().float().cpu().clamp(0, 1)[:, 0]
        power = 10 ** ((images * self.top_db + self.db_max - self.top_db) / 10)
        power = torch.cat([power, power[..., -1:]], dim=-1)  # the frame encode() dropped
        n_stft = self.n_fft // 2 + 1
        return torchaudio.transforms.InverseMelScale(n_stft, self.n_mels, self.sample_rate)(power).clamp_min(0)

    @torch.no_grad()
    def invert(
        self, power: torch.Tensor, phase: torch.Tensor | None = None, n_iter: int = 48, seed: int = 0
    ) -> torch.Tensor:
        """STFT power (N, n_fft // 2 + 1, frames + 1) -> waves (N, samples), peak PEAK.

        phase: the angle of each bin, same shape (e.g. ``self.stft(waves).angle()``): the waves are its
        inverse STFT with magnitude ``power ** 0.5``. None: Griffin-Lim guesses a phase (``n_iter``
        rounds, from a random start drawn with ``seed``), as a generated image has none.
        """
        import torchaudio

        if phase is not None:
            spectrum = torch.polar(power.sqrt(), phase.to(power.dtype))
            window = torch.hann_window(self.n_fft, device=power.device)
            waves = torch.istft(spectrum, self.n_fft, self.hop, window=window, center=True, length=self.samples)
            return normalize_peak(waves)
        griffin_lim = torchaudio.transforms.GriffinLim(
            self.n_fft, n_iter=n_iter, hop_length=self.hop, power=2.0, length=self.samples
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(
                seed
            )  # Griffin-Lim starts from a random phase, drawn clip after clip: chunks draw the same
            waves = torch.cat([griffin_lim(part) for part in power.split(GRIFFIN_LIM_CHUNK)])
        return normalize_peak(waves)

    @torch.no_grad()
    def decode(self, images: torch.Tensor, n_iter: int = 48, seed: int = 0) -> torch.Tensor:
        """images (N, 1, n_mels, frames), any range (clipped to [0, 1]) -> waves (N, samples), peak PEAK:
        the mel bank inverted (:meth:`linear_power`), then a phase guessed by Griffin-Lim (:meth:`invert`)."""
        return self.invert(self.linear_power(images), n_iter=n_iter, seed=seed)


def normalize_peak(waves: torch.Tensor) -> torch.Tensor:
    """Scale each clip (..., samples) so its largest amplitude is PEAK (silent clips stay silent)."""
    peak = waves.abs().amax(-1, keepdim=True)
    return waves * (PEAK / peak.clamp_min(1e-8))


def fit_clip(wave: torch.Tensor, rate: int, features: MelFeatures) -> torch.Tensor:
    """One clip of any length and rate -> (samples,): mono, resampled, trimmed, peak-normalized, padded.

    wave: (samples,) or (channels, samples). The clip starts where the sound does; a longer
    sound is cut at the fixed length, a shorter one is followed by silence.
    """
    import torchaudio

    wave = torch.as_tensor(wave, dtype=torch.float32)
    if wave.dim() == 2:
        wave = wave.mean(0)
    if rate != features.sample_rate:
        wave = torchaudio.functional.resample(wave, rate, features.sample_rate)
    frame = max(features.sample_rate // 100, 1)  # 10 ms
    energy = wave[: len(wave) // frame * frame].view(-1, frame).pow(2).mean(-1)
    if len(energy) and energy.max() > 0:
        loud = (10 * torch.log10(energy.clamp_min(1e-12) / energy.max()) > -SILENCE_DB).nonzero().flatten()
        wave = wave[int(loud[0]) * frame : (int(loud[-1]) + 1) * frame]
    out = torch.zeros(features.samples)
    out[: min(len(wave), features.samples)] = wave[: features.samples]
    return normalize_peak(out)


def read_wav(path: str | Path) -> tuple[torch.Tensor, int]:
    """A WAV (or any format libsndfile reads) -> (wave (channels, samples) float32, rate)."""
    import soundfile

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(data.T)), rate


def read_wav_bytes(data: bytes) -> tuple[torch.Tensor, int]:
    import soundfile

    wave, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(wave.T)), rate


def write_wav(wave: torch.Tensor, path: str | Path, rate: int) -> Path:
    """Write one clip ``wave: (samples,)`` in [-1, 1] as 16-bit mono PCM, atomically."""
    import soundfile

    path = Path(path)
    with atomic_path(path) as tmp:
        soundfile.write(str(tmp), wave.detach().cpu().clamp(-1, 1).numpy(), rate, subtype="PCM_16", format="WAV")
    return path


def through_wav(waves: torch.Tensor, features: dict) -> torch.Tensor:
    """waves (N, samples) -> images (N, 1, n_mels, frames), as a recording would be featurized: each clip
    written as a 16-bit WAV file, read back, fitted (:func:`fit_clip`: trimmed, padded) and encoded."""
    import tempfile

    settings = MelFeatures.from_dict(features)
    with tempfile.TemporaryDirectory() as folder:
        paths = [write_wav(wave, Path(folder) / f"{i}.wav", settings.sample_rate) for i, wave in enumerate(waves)]
        return settings.encode(torch.stack([fit_clip(*read_wav(p), settings) for p in paths]))


def write_clips(
    images: torch.Tensor, names: list[str], folder: str | Path, features: dict, seed: int = 0
) -> list[Path]:
    """Turn spectrogram images (N, 1, n_mels, frames) back into sound and write ``folder/<name>.wav`` for each."""
    settings = MelFeatures.from_dict(features)
    waves = settings.decode(images, seed=seed)
    return [write_wav(wave, Path(folder) / f"{name}.wav", settings.sample_rate) for wave, name in zip(waves, names)]
