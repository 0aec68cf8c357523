"""Moved to :mod:`nasforge.supernet.base` (the supernets sit below the evaluators); this path stays importable."""

from nasforge.supernet.base import *  # noqa: F403
from nasforge.supernet.base import __all__ as __all__
