"""Multi-trial search strategies (ask/tell); each module registers itself in ``STRATEGIES``."""

from nasforge.strategies.base import Strategy

__all__ = ["Strategy"]

# Importing a module registers its strategy (one import per file, sorted).
from nasforge.strategies import random_search as random_search  # noqa: E402
from nasforge.strategies import rea as rea  # noqa: E402
from nasforge.strategies import bananas as bananas  # noqa: E402
from nasforge.strategies import local_search as local_search  # noqa: E402
