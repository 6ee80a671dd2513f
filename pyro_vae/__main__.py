"""``python -m pyro_vae train ...``: the command line of pyro_vae/cli.py."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
