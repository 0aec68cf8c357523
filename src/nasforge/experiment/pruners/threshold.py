"""Threshold pruning: stop a trial whose reported value leaves fixed bounds (e.g. a diverged run)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from nasforge.errors import ConfigError
from nasforge.experiment.pruners.base import Pruner
from nasforge.registry import PRUNERS


@PRUNERS.register("threshold")
class ThresholdPruner(Pruner):
    """Stop when the reported value is below ``lower`` or above ``upper`` (raw values, no sign).

    E.g. ``lower=15`` stops a 10-class classifier still at chance after ``warmup_steps`` epochs.
    """

    name = "threshold"
    needs_reference = False

    def __init__(self, lower: float | None = None, upper: float | None = None, *,
                 warmup_steps: int = 1) -> None:
        for label, v in (("lower", lower), ("upper", upper)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or math.isnan(v)):
                raise ConfigError(f"pruner 'threshold': {label} must be a number, got {v!r}")
        if lower is None and upper is None:
            raise ConfigError("pruner 'threshold' needs lower=..., upper=... or both")
        if lower is not None and upper is not None and lower > upper:
            raise ConfigError(f"pruner 'threshold': lower {lower:g} is above upper {upper:g}")
        self.lower, self.upper = lower, upper
        super().__init__(warmup_steps=warmup_steps, min_trials=1)

    def _decide(self, value: float, raw: float, reference: Sequence[float]) -> bool:
        return ((self.lower is not None and raw < self.lower)
                or (self.upper is not None and raw > self.upper))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "lower": self.lower, "upper": self.upper,
                "warmup_steps": self.warmup_steps}
