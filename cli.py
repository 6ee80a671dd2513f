"""pyro-vae's command line, run by path: ``python cli.py train ...`` (and ``torchrun ... cli.py train``).

The commands live in pyro_vae/cli.py; ``python -m pyro_vae`` and the ``pyro-vae`` console script
run the same ones.
"""

import sys

from pyro_vae.cli import app, main

__all__ = ["app", "main"]  # app: for tests that drive the commands in-process

if __name__ == "__main__":
    sys.exit(main())
