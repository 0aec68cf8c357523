"""Weight-sharing supernets of the search spaces, shared by one-shot methods and evaluators.

A supernet (``space.supernet(**build_args)``) holds every architecture of a space in one network
whose candidate operations share weights (:class:`Supernet`, :class:`MixedOp`). This package has
the base class and mixing modes (``base``, ``mixed``), one builder per space (``nb201``, ``darts``,
``elastic``; importing this package registers them in :data:`nasforge.registry.SUPERNETS`), and
the helpers that train and score them (``batches``, ``evaluation``, ``checkpoint``), and
``original``: weights in the original DARTS and NAS-Bench-201 code's layout, both ways.

It sits beside the evaluators, below the experiment: the weight-sharing evaluator scores
architectures on a trained supernet, and :mod:`nasforge.oneshot` trains them with DARTS, GDAS,
SPOS, ENAS and once-for-all.
"""

from nasforge.supernet import darts as darts
from nasforge.supernet import elastic as elastic
from nasforge.supernet import nb201 as nb201
from nasforge.supernet.base import (
    MODES,
    Path,
    Supernet,
    build_supernet,
    check_arch,
    register_supernet,
    seeded_supernet,
    space_options,
    supernet_spaces,
)
from nasforge.supernet.mixed import MixedOp, Sampled, Selection, Weighted, gumbel_hard
from nasforge.supernet.original import from_original, to_original

__all__ = [
    "MODES",
    "MixedOp",
    "Path",
    "Sampled",
    "Selection",
    "Supernet",
    "Weighted",
    "build_supernet",
    "check_arch",
    "from_original",
    "gumbel_hard",
    "register_supernet",
    "seeded_supernet",
    "space_options",
    "supernet_spaces",
    "to_original",
]
