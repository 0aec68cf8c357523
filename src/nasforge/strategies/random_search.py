"""Random search: every architecture drawn uniformly from the space (Bergstra & Bengio, 2012)."""

from __future__ import annotations

from nasforge.registry import STRATEGIES
from nasforge.space.architecture import Architecture
from nasforge.strategies.base import Strategy


@STRATEGIES.register("random")
class RandomSearch(Strategy):
    """Uniform random sampling; the baseline every NAS method must beat (Li & Talwalkar, 2019)."""

    name = "random"

    def _ask(self) -> Architecture:
        return self.space.sample(self.rng)
