"""Percentile pruning: keep trials in the top ``100 - percentile`` percent at every step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nasforge.errors import ConfigError
from nasforge.experiment.pruners.base import Pruner
from nasforge.registry import PRUNERS


@PRUNERS.register("percentile")
class PercentilePruner(Pruner):
    """Stop a trial below the ``percentile``-th percentile of the finished trials at that step.

    ``percentile=50`` is the median rule; ``25`` prunes only the worst quarter (more cautious).
    """

    name = "percentile"

    def __init__(self, percentile: float = 25.0, *, warmup_steps: int = 1,
                 min_trials: int = 4) -> None:
        if (isinstance(percentile, bool) or not isinstance(percentile, (int, float))
                or not 0 < percentile < 100):
            raise ConfigError(
                f"pruner 'percentile': percentile must be between 0 and 100 (exclusive), got "
                f"{percentile!r}"
            )
        self.percentile = float(percentile)
        super().__init__(warmup_steps=warmup_steps, min_trials=min_trials)

    def _decide(self, value: float, raw: float, reference: Sequence[float]) -> bool:
        return value < float(np.percentile(reference, self.percentile))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "percentile": self.percentile}
