"""Moved to :mod:`nasforge.supernet.elastic` (the supernets sit below the evaluators); this path stays importable."""

from nasforge.supernet.elastic import *  # noqa: F403
from nasforge.supernet.elastic import __all__ as __all__
