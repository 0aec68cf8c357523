"""Successive halving (Jamieson & Talwalkar, AISTATS 2016), one synchronous bracket after another."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nasforge.errors import ConfigError
from nasforge.experiment.schedulers._brackets import BracketScheduler
from nasforge.registry import SCHEDULERS


@SCHEDULERS.register("sh")
class SuccessiveHalving(BracketScheduler):
    """Start ``n_configs`` configurations at the lowest rung; the best ``1/eta`` of each rung go up.

    ``n_configs`` defaults to ``eta ** (rungs - 1)``, so that one configuration reaches the top
    rung. When a bracket ends the next one starts, until the experiment's budget is spent.
    """

    name = "sh"

    def __init__(self, *, n_configs: int | None = None, min_fidelity: float | None = None,
                 max_fidelity: float | None = None, eta: float = 3,
                 rungs: Sequence[float] | None = None, tell: str = "entry") -> None:
        if n_configs is not None and (isinstance(n_configs, bool) or not isinstance(n_configs, int)
                                      or n_configs < 2):
            raise ConfigError(
                f"scheduler 'sh': n_configs must be a whole number >= 2 (configurations per "
                f"bracket), got {n_configs!r}"
            )
        self.n_configs = n_configs
        super().__init__(min_fidelity=min_fidelity, max_fidelity=max_fidelity, eta=eta,
                         rungs=rungs, tell=tell)

    def bracket_plan(self, index: int) -> tuple[int, int]:
        n = self.n_configs or round(self.eta ** (len(self.rungs) - 1))
        return 0, n

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "n_configs": self.n_configs}
