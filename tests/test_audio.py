"""Spoken digits: synthesized with espeak-ng, made into log-mel images, modelled, and written back as WAV files."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

from pyro_vae import Config, Trainer, audio, data
from pyro_vae.audio import PEAK, MelFeatures, fit_clip, normalize_peak, read_wav, write_clips
from pyro_vae.classifier import train_classifier
from pyro_vae.data import spoken_digits
from pyro_vae.errors import UserError
from pyro_vae.evaluate import conditional_accuracy
from test_cli import cli

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)"
)

CLIPS = 1000  # 80 training and 20 test clips per digit


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A data folder of its own holding a small synthesized set, so a user's own cache is never touched."""
    folder = tmp_path_factory.mktemp("audio-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYRO_VAE_DATA", str(folder))
        data.prepare("spoken-digits", clips=CLIPS, seed=0, log=lambda line: None)
        yield folder


@pytest.fixture(scope="module")
def digits(home):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYRO_VAE_DATA", str(home))
        return data.load("spoken-digits", "cpu", "none")


@pytest.fixture(scope="module")
def cvae(home, tmp_path_factory):
    """A CVAE with a learned conditional prior, trained for a minute on the small set (conv nets, Gaussian
    likelihood)."""
    run = tmp_path_factory.mktemp("audio-runs") / "cvae"
    config = Config(model="cvae", dataset="spoken-digits", prior="conditional", epochs=25, batch_size=32, device="cpu")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYRO_VAE_DATA", str(home))
        trainer = Trainer(config, run, progress=False, log=lambda line: None)
        trainer.fit()
    return run, trainer


def wav_facts(path: Path) -> dict:
    info = soundfile.info(str(path))
    wave, _ = soundfile.read(str(path), dtype="float32")
    return {
        "rate": info.samplerate,
        "channels": info.channels,
        "samples": info.frames,
        "rms": float(np.sqrt(np.mean(wave**2))),
        "clipped": float(np.mean(np.abs(wave) >= 0.999)),
    }


def assert_good_wavs(paths, count: int, features: MelFeatures):
    assert len(paths) == count
    for path in paths:
        facts = wav_facts(path)
        assert facts["rate"] == 16000 and facts["channels"] == 1 and facts["samples"] == features.samples, facts
        assert facts["rms"] > 0.02, f"{path.name} is nearly silent: {facts}"
        assert facts["clipped"] < 0.001, f"{path.name} is clipped: {facts}"


@pytest.mark.slow
def test_synthesized_set_is_balanced_and_split_by_voice(home, digits):
    train, test = digits
    assert train.classes == spoken_digits.WORDS
    assert train.image_shape == (1, 64, 64) and train.features["sample_rate"] == 16000
    assert torch.bincount(train.y).tolist() == [80] * 10 and torch.bincount(test.y).tolist() == [20] * 10
    assert 0 <= float(train.x.min()) and float(train.x.max()) <= 1 and float(train.x.max()) > 0.99
    arrays = torch.load(home / "spoken-digits.pt", weights_only=True)
    train_voices = {s.rsplit("-", 1)[-1] for s in arrays["speakers_train"]}
    test_voices = {s.rsplit("-", 1)[-1] for s in arrays["speakers_test"]}
    assert not train_voices & test_voices and len(train_voices) > 8
    # every clip is also kept as a WAV file, named as the Free Spoken Digit Dataset names them
    wavs = sorted((home / "spoken-digits").rglob("*.wav"))
    assert len(wavs) == CLIPS
    assert_good_wavs(wavs[:20], 20, MelFeatures.from_dict(train.features))


@pytest.mark.slow
def test_spectrograms_turn_back_into_sound_that_reads_the_same(digits, tmp_path):
    """Image -> Griffin-Lim -> WAV -> image: the round trip keeps the spectrogram within a few dB."""
    train, _ = digits
    features = MelFeatures.from_dict(train.features)
    x = train.x[::80][:10]  # one clip of each digit
    paths = write_clips(x, [str(i) for i in range(len(x))], tmp_path, train.features)
    again = features.encode(torch.stack([fit_clip(*read_wav(p), features) for p in paths]))
    error_db = (again - x).abs().mean().item() * features.top_db
    assert error_db < 3.0, f"the round trip moved the spectrogram by {error_db:.2f} dB on average"


def test_fit_clip_trims_resamples_and_pads():
    features = MelFeatures()
    tone = torch.sin(torch.arange(11025) / 22050 * 2 * torch.pi * 440) * 0.3  # 0.5 s of A at 22.05 kHz
    quiet = torch.zeros(2205)  # 0.1 s of silence either side
    clip = fit_clip(torch.stack([torch.cat([quiet, tone, quiet])] * 2), 22050, features)  # stereo in
    assert clip.shape == (features.samples,)
    assert abs(float(clip.abs().max()) - PEAK) < 1e-5
    sounding = (clip.abs() > 0.01).nonzero().flatten()
    assert int(sounding[0]) < 160 and abs(int(sounding[-1]) - 8000) < 200  # starts at once, lasts 0.5 s


def test_folder_of_labelled_wavs(home, tmp_path):
    """Both layouts users have: FSDD file names, and one subfolder per label with Speech Commands' test list."""
    features = MelFeatures()
    source = sorted((home / "spoken-digits" / "train").glob("*.wav"))
    fsdd = tmp_path / "fsdd"
    fsdd.mkdir()
    for path in source[::8]:
        shutil.copy(path, fsdd / path.name)
    (fsdd / "notes.txt").write_text("not audio")
    arrays = spoken_digits.read_folder(fsdd, features, log=lambda line: None)
    n = len(arrays["y_train"]) + len(arrays["y_test"])
    assert n == len(source[::8]) and len(arrays["y_test"]) > 0
    assert not set(arrays["speakers_train"]) & set(arrays["speakers_test"])
    assert arrays["classes"] == spoken_digits.WORDS

    commands = tmp_path / "speech-commands"
    for word in ("two", "seven"):
        (commands / word).mkdir(parents=True)
    pick = {
        "two": [p for p in source if p.name.startswith("2_")][:6],
        "seven": [p for p in source if p.name.startswith("7_")][:6],
    }
    for word, paths in pick.items():
        for i, path in enumerate(paths):
            shutil.copy(path, commands / word / f"speaker{i}_nohash_0.wav")
    (commands / "seven" / "broken_nohash_0.wav").write_bytes(b"RIFF not really a wav")
    (commands / "testing_list.txt").write_text("two/speaker0_nohash_0.wav\nseven/speaker0_nohash_0.wav\n")
    lines = []
    arrays = spoken_digits.read_folder(commands, features, log=lines.append)
    assert arrays["classes"] == spoken_digits.WORDS  # digit words keep digit order
    assert sorted(arrays["y_test"].tolist()) == [2, 7] and len(arrays["y_train"]) == 10
    assert lines == [f"skipped 1 of 13 files in {commands} that could not be read as audio"]


def test_bad_audio_sources_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="no labelled audio"):
        spoken_digits.read_folder(tmp_path, MelFeatures())
    with pytest.raises(UserError, match="not a folder"):
        spoken_digits.read_folder(tmp_path / "missing", MelFeatures())
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="apt-get install espeak-ng"):
        spoken_digits.synthesize(100, 0, MelFeatures())


@pytest.mark.slow
def test_classifier_hears_unseen_voices(digits):
    train, test = digits
    torch.manual_seed(0)
    _, accuracy = train_classifier(train, test, epochs=15, log=lambda line: None)
    assert accuracy > 0.85, accuracy  # 800 clips; the default 3,000 reach 99% (docs/results.md)


@pytest.mark.slow
def test_cvae_speaks_the_digit_asked_for(cvae, digits):
    """Samples for digit c are heard as c, before and after the trip through WAV files."""
    run, trainer = cvae
    train, test = digits
    assert trainer.history[-1].test_neg_elbo < trainer.history[0].test_neg_elbo - 1000
    # the learned noise scale is the maximum-likelihood one: about the root-mean-square reconstruction error
    with torch.no_grad():
        rms = (trainer.model.reconstruct(test.x, test.y) - test.x).pow(2).mean().sqrt().item()
    assert 0.8 < trainer.model.likelihood.scale.item() / rms < 1.5, (trainer.model.likelihood.scale.item(), rms)
    classifier, _ = train_classifier(train, test, epochs=15, log=lambda line: None)
    result = conditional_accuracy(trainer.model.eval(), classifier, n_per_class=10, features=train.features)
    print(result)
    assert result["overall"] > 0.6 and result["from_wav"]["overall"] > 0.5, result


@pytest.mark.slow
def test_cli_writes_wavs_for_sample_reconstruct_and_interpolate(home, cvae, tmp_path):
    run, trainer = cvae
    features = MelFeatures.from_dict(trainer.train_data.features)
    env = {"PYRO_VAE_DATA": str(home)}
    result = cli("sample", run, "--label", "7", "--n", "4", "--out", tmp_path / "sevens", env=env)
    assert result.returncode == 0, result.stderr
    assert_good_wavs(sorted((tmp_path / "sevens").glob("*.wav")), 4, features)
    assert (tmp_path / "sevens" / "spectrograms.png").stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "sevens").glob("*.wav")) == [f"seven-{i}.wav" for i in range(4)]

    result = cli("reconstruct", run, "--n", "3", "--out", tmp_path / "recon", env=env)
    assert result.returncode == 0, result.stderr
    assert_good_wavs(sorted((tmp_path / "recon").glob("*.wav")), 6, features)

    result = cli(
        "interpolate", run, "--from-class", "1", "--to-class", "7", "--steps", "5", "--out", tmp_path / "path", env=env
    )
    assert result.returncode == 0, result.stderr
    assert_good_wavs(sorted((tmp_path / "path").glob("*.wav")), 5, features)
    assert (tmp_path / "path" / "interpolate.png").stat().st_size > 0


@pytest.mark.slow
def test_prepare_options_belong_to_spoken_digits():
    result = cli("data", "prepare", "mnist", "--clips", "100")
    assert result.returncode == 2 and "mnist does not take --clips; it has no options" in result.stderr


def test_the_way_back_in_two_steps_mel_inversion_then_phase(tmp_path):
    """linear_power (mel inversion) and invert (a phase) make up decode; with the clip's own STFT phase the
    inversion is exact, and what remains is the mel inversion's loss alone."""
    features = MelFeatures()
    t = torch.arange(features.samples) / features.sample_rate
    buzz = lambda hz: sum(torch.sin(2 * torch.pi * hz * k * t) / k for k in range(1, 12)) * (t < 0.6)  # noqa: E731
    waves = normalize_peak(
        torch.stack([buzz(180), buzz(240)])
    )  # (2, samples): 0.6 s of two buzzes, then silence, peak PEAK
    features = features.fit(waves)
    spectrum = features.stft(waves)
    assert spectrum.shape == (2, features.n_fft // 2 + 1, features.frames + 1) and spectrum.is_complex()
    mel = torchaudio.transforms.MelScale(features.n_mels, features.sample_rate, n_stft=features.n_fft // 2 + 1)
    assert torch.allclose(
        10 * torch.log10(mel(spectrum.abs() ** 2)[..., : features.frames].clamp_min(1e-10)),
        features.decibels(waves),
        atol=1e-3,
    )
    # the true magnitude with the true phase gives the clip back
    back = features.invert(spectrum.abs() ** 2, spectrum.angle())
    assert back.shape == waves.shape and (back - waves).abs().max() < 1e-4
    # decode is the two steps, Griffin-Lim's phase drawn with the same seed
    images = features.encode(waves)
    power = features.linear_power(images)
    assert power.shape == spectrum.shape and power.min() >= 0
    assert torch.equal(features.decode(images, seed=3), features.invert(power, seed=3))
    # the mel inversion alone moves the spectrogram (harmonics closer than a band are smeared), Griffin-Lim's phase more
    db = lambda w: (features.encode(w) - images).abs().mean().item() * features.top_db  # noqa: E731
    mel_only, both = db(features.invert(power, spectrum.angle())), db(features.decode(images))
    assert 0.1 < mel_only < both < 10, (mel_only, both)
    # through_wav: written as 16-bit WAV files, read back, fitted and encoded, the clips read the same
    moved = (
        audio.through_wav(waves, features.to_dict()) - images
    ).abs() * features.top_db  # dB; 16-bit steps tell near the floor
    assert moved.mean() < 0.05 and moved.max() < 1.5
