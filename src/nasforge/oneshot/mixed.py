"""Moved to :mod:`nasforge.supernet.mixed` (the supernets sit below the evaluators); this path stays importable."""

from nasforge.supernet.mixed import *  # noqa: F403
from nasforge.supernet.mixed import __all__ as __all__
