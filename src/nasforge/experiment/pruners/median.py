"""Median stopping rule (Golovin et al., KDD 2017, "Google Vizier"; Optuna's MedianPruner)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nasforge.experiment.pruners.base import Pruner
from nasforge.registry import PRUNERS


@PRUNERS.register("median")
class MedianPruner(Pruner):
    """Stop a trial whose value at a step is below the median of the finished trials' values there."""

    name = "median"

    def _decide(self, value: float, raw: float, reference: Sequence[float]) -> bool:
        return value < float(np.median(reference))
