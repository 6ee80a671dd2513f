"""A run's history: one :class:`EpochRecord` per epoch trained, and the rules read from it.

The checkpoint keeps each record as a plain mapping (:meth:`EpochRecord.row`), so that it loads with
``weights_only`` and its metrics.csv has one column per field; loading turns the rows back into records.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import UserError


@dataclass(frozen=True, kw_only=True)
class EpochRecord:
    """What one epoch measured, in nats per image (lower is better), rounded as it is saved."""

    epoch: int
    train_neg_elbo: float  # the training objective (--elbo), the mean over the epoch's steps
    test_neg_elbo: float
    test_recon: float  # -E_q[log p(x|z)]
    test_kl: float  # E_q[log q(z|x) - log p(z)]
    test_bits_per_dim: float | None = None  # None in runs trained before it was recorded
    valid_neg_elbo: float | None = None  # with --validation N
    test_classifier_accuracy: float | None = None  # a semi-supervised model's q(y|x) on the test labels
    seconds: float  # the epoch's wall-clock time, testing and saving included

    def row(self) -> dict:
        """The record as the checkpoint and metrics.csv keep it: its fields in order, those not measured left out."""
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}

    @classmethod
    def from_row(cls, row: dict) -> "EpochRecord":
        """The record a checkpoint's row holds, or a UserError naming what it lacks; keys that no field names
        (a newer version's) are left aside."""
        fields = {field.name for field in dataclasses.fields(cls)}
        try:
            return cls(**{key: value for key, value in row.items() if key in fields})
        except TypeError:
            missing = sorted(
                field.name
                for field in dataclasses.fields(cls)
                if field.default is dataclasses.MISSING and field.name not in row
            )
            raise UserError(f"an epoch's metrics lack {', '.join(missing)}") from None


def best_epoch(history: list[EpochRecord]) -> int | None:
    """The epoch with the lowest validation -ELBO in ``history`` (the first of equals); None without --validation."""
    scored = [record for record in history if record.valid_neg_elbo is not None]
    return min(scored, key=lambda record: record.valid_neg_elbo).epoch if scored else None


def stopped_early(history: list[EpochRecord], epoch: int, patience: int | None) -> bool:
    """Whether --early-stopping ``patience`` ends a run at ``epoch``: no better validation -ELBO for that
    many epochs."""
    best = best_epoch(history)
    return patience is not None and best is not None and epoch - best >= patience
