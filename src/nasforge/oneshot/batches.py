"""Moved to :mod:`nasforge.supernet.batches` (the supernets sit below the evaluators); this path stays importable."""

from nasforge.supernet.batches import *  # noqa: F403
from nasforge.supernet.batches import __all__ as __all__
