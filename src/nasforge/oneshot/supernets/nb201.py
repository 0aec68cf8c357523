"""Moved to :mod:`nasforge.supernet.nb201` (the supernets sit below the evaluators); this path stays importable."""

from nasforge.supernet.nb201 import *  # noqa: F403
from nasforge.supernet.nb201 import __all__ as __all__
