"""Budgets: how much an experiment may spend."""

from __future__ import annotations

import math
from dataclasses import dataclass

from nasforge.errors import ConfigError


@dataclass(frozen=True)
class Budget:
    """Stop after ``max_trials`` trials, ``max_seconds`` of wall time, ``max_cost`` seconds of
    (possibly simulated) evaluation cost, or ``max_fidelity`` units of fidelity spent (training
    epochs: a promotion that continues a rung spends only its extra epochs, an early-stopped
    trial only the epochs it trained), whichever comes first.

    The trial that crosses a limit still counts, as in NAS-Bench-201's protocol: its cost was
    already paid when we learn it crossed.
    """

    max_trials: int | None = None
    max_seconds: float | None = None
    max_cost: float | None = None
    max_fidelity: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_trials", "max_seconds", "max_cost", "max_fidelity"):
            v = getattr(self, name)
            bad_type = not isinstance(v, (int, float)) or isinstance(v, bool)
            if v is not None and (bad_type or not v > 0 or math.isnan(v)):
                raise ConfigError(f"budget {name} must be a positive number or None, got {v!r}")
        if (self.max_trials is None and self.max_seconds is None and self.max_cost is None
                and self.max_fidelity is None):
            raise ConfigError(
                "a budget needs at least one limit: max_trials, max_seconds, max_cost or "
                "max_fidelity"
            )

    def exhausted(self, trials: int, seconds: float, cost: float, fidelity: float = 0.0) -> bool:
        """Whether no new trial may start."""
        return (
            (self.max_trials is not None and trials >= self.max_trials)
            or (self.max_seconds is not None and seconds >= self.max_seconds)
            or (self.max_cost is not None and cost >= self.max_cost)
            or (self.max_fidelity is not None and fidelity >= self.max_fidelity)
        )

    def fractions(self, trials: int, seconds: float, cost: float,
                  fidelity: float = 0.0) -> dict[str, float]:
        """How much of each set limit is used, 0..1, by limit name (``"max_trials"``, ...).

        Separate fractions let a progress display estimate when each limit will be reached
        (the budget ends at the first).
        """
        used = {"max_trials": trials, "max_seconds": seconds, "max_cost": cost,
                "max_fidelity": fidelity}
        out = {}
        for name, value in used.items():
            limit = getattr(self, name)
            if limit is not None:
                out[name] = min(1.0, value / limit)
        return out

    def fraction(self, trials: int, seconds: float, cost: float, fidelity: float = 0.0) -> float:
        """How much of the budget is used, 0..1 (for progress bars)."""
        parts = self.fractions(trials, seconds, cost, fidelity)
        return max(parts.values()) if parts else 0.0
