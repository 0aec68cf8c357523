"""ASHA: asynchronous successive halving (Li et al., MLSys 2020).

Whenever a worker is free, promote the best not-yet-promoted configuration of the highest rung
that has one in its top ``1/eta`` (counting the rung's finished trials so far); when no rung has
one, start a new configuration at the lowest rung. No worker ever waits for a rung to fill, at the
price of some promotions that synchronous halving would not make. The strategy is told each
configuration after its first rung (``tell="entry"``).
"""

from __future__ import annotations

import math

from nasforge.experiment.schedulers.base import Scheduler, Slot
from nasforge.registry import SCHEDULERS


@SCHEDULERS.register("asha")
class ASHA(Scheduler):
    """Asynchronous successive halving: never returns "wait"."""

    name = "asha"

    def next_slot(self) -> Slot:
        for rung in range(len(self.rungs) - 2, -1, -1):
            nums = self.by_rung.get(rung, [])
            finished = sum(self.is_done(n) for n in nums)
            quota = math.floor(finished / self.eta)
            for n in self.ranked(nums)[:quota]:
                if (self.config_of(n), rung + 1) not in self.reached:
                    return Slot(rung=rung + 1, bracket=0, parent=self.trials[n])
        return Slot(rung=0, bracket=0)
