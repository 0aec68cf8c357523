"""Random search: every architecture drawn uniformly from the space (Bergstra & Bengio, 2012).

Draws are independent, as in NAS-Bench-201's random-search baseline: an architecture evaluated
earlier may be drawn again (with a tabular benchmark that costs a query, as in the paper). Only a
draw that repeats a *pending* architecture (asked in the same batch, or still running) is drawn
again, a bounded number of times, so parallel workers never train the same network at once.
Sequential asks never have anything pending, so they are exactly the plain algorithm.
"""

from __future__ import annotations

from nasforge.registry import STRATEGIES
from nasforge.space.architecture import Architecture
from nasforge.strategies._common import propose_unique
from nasforge.strategies.base import Strategy


@STRATEGIES.register("random")
class RandomSearch(Strategy):
    """Uniform random sampling; the baseline every NAS method must beat (Li & Talwalkar, 2019)."""

    name = "random"

    def _ask(self) -> Architecture:
        return propose_unique(lambda: self.space.sample(self.rng), set(self.pending))
