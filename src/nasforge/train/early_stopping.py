"""Early stopping on the validation accuracy (or any per-epoch value)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nasforge.errors import ConfigError


@dataclass
class EarlyStopping:
    """Stop when the monitored value has not improved by more than ``min_delta`` for ``patience``
    consecutive epochs (Prechelt, 1998, "Early Stopping - But When?", the simplest criterion).

    Call it with each epoch's value; it returns True when training should stop. ``mode`` is
    ``"max"`` for accuracies and ``"min"`` for losses.
    """

    patience: int = 3
    min_delta: float = 0.0
    mode: str = "max"
    best: float | None = field(default=None, init=False)
    best_epoch: int = field(default=0, init=False)
    bad_epochs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        p = self.patience
        if isinstance(p, bool) or not isinstance(p, int) or p < 1:
            raise ConfigError(f"patience must be a positive integer; got {self.patience!r}")
        if self.min_delta < 0:
            raise ConfigError(f"min_delta must be >= 0; got {self.min_delta!r}")
        if self.mode not in ("max", "min"):
            raise ConfigError(f"mode must be 'max' or 'min'; got {self.mode!r}")

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_delta``."""
        if self.best is None:
            return True
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def step(self, epoch: int, value: float) -> bool:
        """Record one epoch's value; True means "stop now"."""
        if self.improved(value):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def reset(self) -> None:
        """Forget the history (before training another model)."""
        self.best, self.best_epoch, self.bad_epochs = None, 0, 0
