"""Training: stochastic variational inference with a Pyro ELBO, in named pieces.

    setup.py    a run from its resolved description (spec.Spec): its data, the name of its loss, its folder
    step.py     one SVI step (the eager one; compiled_step.py traces it), the optimizer
    loop.py     the Trainer: the loop over epochs and steps
    epoch.py    the end of an epoch: measured, recorded, reported, drawn
    launch.py   starting a run and continuing one, as `train` and `train --resume` do
    state.py    what a checkpoint holds, and the random streams that make a resumed run exact
    faults.py   NaN losses, signals, checkpoints by the clock
    writers.py  which process writes a run, and its lock

The data path, one step of :meth:`Trainer.train_epoch` (B = --batch-size, P = the number of processes):

    data set on the device   x (N, C, H, W) in [0, 1]; y (N,) class labels or (N, A) attribute vectors
    -> batch                 x (B, C, H, W), y (B,) or (B, A): the next B of this epoch's shuffled order
    -> binarize, flip        data.augment: --binarize dynamic draws every pixel anew (dequantize: moves it within
                             its grey level), --flip mirrors half the images
    -> this process's slice  distributed.shard: x (B/P, C, H, W); the whole batch in one process
    -> model and guide       both under objectives.KLWeight, which weighs log p(z) and log q(z|x) by the KL weight
    -> ELBO                  loss = -ELBO of the slice, summed over its images (Trace_ELBO by default)
    -> optimizer step        loss.backward(); one Adam step on all weights (step.svi_step)
                             (--step compiled: model, guide, ELBO and backward run as one graph, traced
                             once per batch shape and compiled: compiled_step.py)
    -> checkpoint            after each epoch: test ELBO, checkpoint, metrics.csv, figures (Trainer.fit_epoch);
                             inside an epoch, the point reached every --checkpoint-every (Trainer.save_point)

A run killed at any moment keeps its last checkpoint: of the last epoch, or of the point reached inside one
at most --checkpoint-every (10 minutes) ago; every file is written atomically (faults.py says the rest).
"""

from .loop import Trainer
from .setup import default_run_dir
from .step import make_optimizer, svi_step

__all__ = ["Trainer", "default_run_dir", "make_optimizer", "svi_step"]
