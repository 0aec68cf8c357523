"""Moved to :mod:`nasforge.supernet.evaluation` (the supernets sit below the evaluators); this path stays importable."""

from nasforge.supernet.evaluation import *  # noqa: F403
from nasforge.supernet.evaluation import __all__ as __all__
