"""pyro-vae's command line: train VAEs as Pyro programs, then look inside them from a run directory.

    python cli.py train --model cvae            # train a conditional VAE on MNIST
    python cli.py sample runs/<name> --label 7  # draw sevens from it
    python cli.py reconstruct runs/<name>
    python cli.py plot-latent runs/<name>       # the test set's codes, coloured by class
    python cli.py interpolate runs/<name> --from-class 1 --to-class 7
    python cli.py evaluate runs/<name> --k 1000 # -log p(x) by importance sampling, active units
    python cli.py compare --epochs 10           # ae vs vae vs cvae, as a Markdown report
    python cli.py complete                      # quadrant completion: baseline vs CVAE
    python cli.py data prepare fashion-mnist

The same commands run as ``python -m pyro_vae ...`` and as the ``pyro-vae`` console script; the
root cli.py is a shim that calls :func:`main`. The commands parse and print: the work is done in
the package (training in training/, a run opened by checkpoint.open_run, the evaluation table in
measure.summary_rows, pictures or sound in outputs.py).

    app.py            the application, its groups, one-line errors, main()
    options.py        the shared options: one per Config field (config.option holds their help), seeds, counts
    training.py       train, compare, complete
    looking.py        sample, reconstruct, plot-latent, manifold, interpolate, traverse, curves
    measuring.py      evaluate
    datasets.py       data prepare
    reproductions.py  reproductions record, reproductions table
"""

from .app import app, data_app, main, reproductions_app

# the command modules register their commands on the application as they are imported, in the order --help lists
# isort: off
from . import training, looking, measuring, datasets, reproductions  # noqa: F401, E402
# isort: on

__all__ = ["app", "data_app", "reproductions_app", "main"]
