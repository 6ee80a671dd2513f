"""Building a part: one helper, and one table of the options each kind of part may take.

A prior is built as ``Class(z_dim, **options)``, a guide as ``Class(in_dim, z_dim, **options)``, a
likelihood as ``Class(image_shape, **options)``. A part takes an option by naming it in its signature
(the flow prior names ``steps``, the VampPrior ``components`` and ``model``); it is given only those it
names, so any part combines with any model. The contract checks (contract.py) and the run's rules
(spec.py) read the same table.
"""

from __future__ import annotations

import inspect

#: kind of part -> how it is built, and the keyword options it may name in its signature
BUILT_AS = {
    "prior": "Class(z_dim, **options)",
    "guide": "Class(in_dim, z_dim, **options)",
    "likelihood": "Class(image_shape, **options)",
}
OPTIONS = {
    "prior": ("components", "steps", "cond_dim", "model"),
    "guide": ("steps",),
    "likelihood": ("scale",),
}


def takes(cls: type, option: str) -> bool:
    """Whether the part ``cls`` names ``option`` in its signature (and so is built with it)."""
    try:
        return option in inspect.signature(cls).parameters
    except ValueError:  # no signature to read (a class built in C): it takes none
        return False


def build(kind: str, cls: type, *args, **options):
    """``cls(*args, **options)`` with the options of ``kind`` that ``cls`` takes; an option given as None is
    left out, so the part keeps its own default (``components`` of a mixture prior, a learned ``scale``):
    ``build("prior", Mixture, 8, components=None, steps=2, cond_dim=0, model=vae)`` is ``Mixture(8)``."""
    unknown = set(options) - set(OPTIONS[kind])
    if unknown:
        raise ValueError(f"{kind}s take the options {', '.join(OPTIONS[kind])}, not {', '.join(sorted(unknown))}")
    return cls(*args, **{name: value for name, value in options.items() if value is not None and takes(cls, name)})
