"""The end of an epoch: what is measured, what the history records, what the log says, what is drawn."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import checkpoint
from ..evaluate import ElboEstimate, classifier_accuracy, evaluate_elbo
from ..history import EpochRecord, best_epoch
from ..plots import reconstruction_figure, sample_figure
from .state import random_state_kept

FIGURE_INTERVAL_S = 30  # the sample and reconstruction figures are redrawn at most this often, and at the end


def measure(model, test_data, valid_data, device: torch.device) -> tuple[ElboEstimate, float | None, float | None]:
    """The test -ELBO of ``model`` and its terms (evaluate.evaluate_elbo), the validation -ELBO (None without
    --validation), and a semi-supervised model's classifier accuracy on the test labels (None for the others).

    Measuring draws z too: each measure from the run's random state, which training then goes on from as
    if nothing had looked.
    """
    with random_state_kept(device):
        test = evaluate_elbo(model, test_data)
    with random_state_kept(device):
        valid = evaluate_elbo(model, valid_data).neg_elbo if valid_data is not None else None
    # a semi-supervised model's classifier: how often it names the test label
    accuracy = classifier_accuracy(model, test_data) if hasattr(model, "q_y") else None
    return test, valid, accuracy


def record(
    epoch: int, train_loss: float, test: ElboEstimate, valid: float | None, accuracy: float | None, seconds: float
) -> EpochRecord:
    """The epoch's record in the run's history (and its row of metrics.csv), rounded as it is saved."""
    return EpochRecord(
        epoch=epoch,
        train_neg_elbo=round(train_loss, 4),
        test_neg_elbo=round(test.neg_elbo, 4),
        test_recon=round(test.recon, 4),
        test_kl=round(test.kl, 4),
        test_bits_per_dim=round(test.bits_per_dim, 5),
        valid_neg_elbo=round(valid, 4) if valid is not None else None,
        test_classifier_accuracy=round(accuracy, 5) if accuracy is not None else None,
        seconds=round(seconds, 2),
    )


def report(epochs: int, train_name: str, record: EpochRecord, best: bool) -> str:
    """The log line of an epoch: its training objective, the test -ELBO and its terms, and the rest measured."""
    accuracy, valid = record.test_classifier_accuracy, record.valid_neg_elbo
    return (
        f"epoch {record.epoch}/{epochs}  -ELBO in nats per image (lower is better): "
        f"{train_name} {record.train_neg_elbo:.2f}  test {record.test_neg_elbo:.2f} "
        f"= recon {record.test_recon:.2f} + KL {record.test_kl:.2f}"
        f" ({record.test_bits_per_dim:.3f} bits/dim)"
        + (f"  q(y|x) test accuracy {accuracy:.2%}" if accuracy is not None else "")
        + (f"  validation {valid:.2f}" + (" (best so far: best.pt)" if best else "") if valid is not None else "")
    )


def early_stop_line(history: list[EpochRecord], epoch: int, patience: int) -> str:
    """The log line of a run that --early-stopping ended at ``epoch``."""
    return (
        f"stopped early at epoch {epoch}: the validation -ELBO has not improved for {patience} "
        f"epochs since epoch {best_epoch(history)}, kept in best.pt"
    )


def draw(model, train_data, test_data, run_dir: Path, seed: int) -> None:
    """The run's sample grid and reconstructions, from fixed noise and fixed test images."""
    spectrogram = train_data.features or False  # a spectrogram's features label its axes
    if model.generative:
        sample_figure(
            model,
            train_data.classes,
            run_dir / checkpoint.SAMPLES,
            seed=seed,
            ncol=8 if spectrogram else 10,
            spectrogram=spectrogram,
            attributes=train_data.attributes,
        )
    n = min(len(test_data), 20) // 10 * 10 or len(test_data)
    x, y = test_data.x[:n], test_data.y[:n]
    reconstruction_figure(model, x, y, run_dir / checkpoint.RECONSTRUCTIONS, ncol=min(n, 10), spectrogram=spectrogram)
