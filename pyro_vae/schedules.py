"""Learning-rate schedules: the share of ``--lr`` that Adam uses at each step of a run.

Each schedule is a function of the run's settings, the epoch (1-based) and the share of that epoch
already trained (0 < fraction <= 1), so a resumed run goes on with the same rates:

- ``constant``: ``--lr`` throughout;
- ``stages``: Burda, Grosse and Salakhutdinov's (2016, section 5): stage i = 0, 1, ..., 7 lasts 3^i
  epochs at ``--lr`` x 10^(-i/7), 3,280 epochs in all; the last rate stays after that;
- ``milestones``: the rate falls by 10^(-1/5) after each of the epochs 200, 350, 500, 750 and 1000
  (pythae's reproductions of the VAE and VampPrior tables);
- ``cosine``: half a cosine from ``--lr`` down to 0 at the end of ``--epochs`` (Loshchilov and
  Hutter, 2017, without restarts), for runs with a fixed budget of epochs.

``--lr-warmup N`` multiplies any of them by a linear ramp over the first N epochs.
"""

from __future__ import annotations

import bisect
import math
from typing import Callable

from .objectives import warmup

STAGES = 8  # Burda et al.'s stages: 1 + 3 + ... + 3^7 = 3,280 epochs
MILESTONES = (200, 350, 500, 750, 1000)


def stages_epochs() -> int:
    """The length of the ``stages`` schedule in epochs: 3,280."""
    return (3**STAGES - 1) // 2


def _constant(config, epoch: int, fraction: float) -> float:
    return 1.0


def _stages(config, epoch: int, fraction: float) -> float:
    # stage i ends after epoch (3^(i+1) - 1) / 2: epochs 1 | 2-4 | 5-13 | 14-40 | ...
    stage = next((i for i in range(STAGES) if epoch <= (3 ** (i + 1) - 1) // 2), STAGES - 1)
    return 10 ** (-stage / 7)


def _milestones(config, epoch: int, fraction: float) -> float:
    return 10 ** (-bisect.bisect_left(MILESTONES, epoch) / 5)  # milestones passed before this epoch


def _cosine(config, epoch: int, fraction: float) -> float:
    done = min((epoch - 1 + fraction) / config.epochs, 1.0)
    return 0.5 * (1 + math.cos(math.pi * done))


# --lr-schedule choices: name -> share of --lr after ``fraction`` of ``epoch``
SCHEDULES: dict[str, Callable[..., float]] = {
    "constant": _constant,
    "stages": _stages,
    "milestones": _milestones,
    "cosine": _cosine,
}


def lr_scale(config, epoch: int, fraction: float) -> float:
    """The share of ``config.lr`` used after ``fraction`` (0 < fraction <= 1) of ``epoch`` (1-based):
    the schedule's (``--lr-schedule``), ramped up over the first ``--lr-warmup`` epochs.

    The warm-up steadies the start: on the faces, Adam's first full-size steps can throw a
    conditional-prior CVAE out of its start (test -ELBO +1.2 million after epoch 2 for seed 3;
    docs/results.md).
    """
    return SCHEDULES[config.lr_schedule](config, epoch, fraction) * warmup(config.lr_warmup, epoch, fraction)
