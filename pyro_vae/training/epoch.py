"""The end of an epoch: what is measured, what the history records, what the log says, what is drawn."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import checkpoint
from ..evaluate import classifier_accuracy, evaluate_elbo
from ..plots import reconstruction_figure, sample_figure
from .state import best_epoch, random_state_kept

FIGURE_INTERVAL_S = 30  # the sample and reconstruction figures are redrawn at most this often, and at the end


def measure(model, test_data, valid_data, device: torch.device) -> tuple[dict, float | None]:
    """The test metrics of ``model`` (evaluate.evaluate_elbo, and a semi-supervised model's classifier
    accuracy), and the validation -ELBO (None without --validation).

    Measuring draws z too: each measure from the run's random state, which training then goes on from as
    if nothing had looked.
    """
    with random_state_kept(device):
        test = evaluate_elbo(model, test_data)
    with random_state_kept(device):
        valid = evaluate_elbo(model, valid_data)["neg_elbo"] if valid_data is not None else None
    if hasattr(model, "q_y"):  # a semi-supervised model's classifier: how often it names the test label
        test["classifier_accuracy"] = classifier_accuracy(model, test_data)
    return test, valid


def history_row(epoch: int, train_loss: float, test: dict, valid: float | None, seconds: float) -> dict:
    """The epoch's row of the run's history (and of metrics.csv), rounded as it is saved."""
    return {
        "epoch": epoch,
        "train_neg_elbo": round(train_loss, 4),
        "test_neg_elbo": round(test["neg_elbo"], 4),
        "test_recon": round(test["recon"], 4),
        "test_kl": round(test["kl"], 4),
        "test_bits_per_dim": round(test["bits_per_dim"], 5),
        **({"valid_neg_elbo": round(valid, 4)} if valid is not None else {}),
        **(
            {"test_classifier_accuracy": round(test["classifier_accuracy"], 5)} if "classifier_accuracy" in test else {}
        ),
        "seconds": round(seconds, 2),
    }


def report(epoch: int, epochs: int, train_name: str, train_loss: float, test: dict, valid, best: bool) -> str:
    """The log line of an epoch: its training objective, the test -ELBO and its terms, and the rest measured."""
    return (
        f"epoch {epoch}/{epochs}  -ELBO in nats per image (lower is better): "
        f"{train_name} {train_loss:.2f}  test {test['neg_elbo']:.2f} "
        f"= recon {test['recon']:.2f} + KL {test['kl']:.2f}"
        f" ({test['bits_per_dim']:.3f} bits/dim)"
        + (f"  q(y|x) test accuracy {test['classifier_accuracy']:.2%}" if "classifier_accuracy" in test else "")
        + (f"  validation {valid:.2f}" + (" (best so far: best.pt)" if best else "") if valid is not None else "")
    )


def early_stop_line(history: list[dict], epoch: int, patience: int) -> str:
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
