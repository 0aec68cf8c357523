"""One-shot (weight-sharing) architecture search: supernets, DARTS, GDAS, SPOS, ENAS, once-for-all.

A supernet (``space.supernet(**build_args)``) shares weights among every architecture of a space;
a one-shot method trains it once and returns an Architecture, which ``space.build(arch)`` (or
``supernet.extract(arch)``, with the trained weights) turns into a plain network.

The supernets themselves live in :mod:`nasforge.supernet` (below the evaluators, which score
architectures on them); the names below are re-exported from there.
"""

from nasforge.supernet import (
    MODES,
    MixedOp,
    Sampled,
    Supernet,
    Weighted,
    build_supernet,
    gumbel_hard,
    register_supernet,
    supernet_spaces,
)

__all__ = [
    "MODES",
    "MixedOp",
    "Sampled",
    "Supernet",
    "Weighted",
    "build_supernet",
    "gumbel_hard",
    "register_supernet",
    "supernet_spaces",
]
