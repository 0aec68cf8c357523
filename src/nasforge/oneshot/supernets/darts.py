"""Moved to :mod:`nasforge.supernet.darts` (the supernets sit below the evaluators); this path stays importable."""

from nasforge.supernet.darts import *  # noqa: F403
from nasforge.supernet.darts import __all__ as __all__
