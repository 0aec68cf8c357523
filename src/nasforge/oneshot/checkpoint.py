"""Moved to :mod:`nasforge.supernet.checkpoint` (the supernets sit below the evaluators); this path stays importable."""

from nasforge.supernet.checkpoint import *  # noqa: F403
from nasforge.supernet.checkpoint import __all__ as __all__
