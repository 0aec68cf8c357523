"""A model-based Hyperband in the spirit of BOHB (Falkner, Klein & Hutter, ICML 2018).

Hyperband's brackets, filled by a strategy instead of uniform sampling: the experiment's strategy
(TPE, BANANAS, REA, random, ...) proposes every new configuration, except a fraction
``random_fraction`` (BOHB's 1/3) drawn uniformly from the space so that the model's mistakes do not
starve exploration. As in BOHB, the model learns from the highest fidelity each configuration
reached: the strategy is told a configuration when its journey through the bracket ends, with its
highest rung's result (``tell="final"``).

Differences from the paper, on purpose: the model is whatever strategy the user picked (BOHB uses
a multivariate KDE, close to our ``tpe``), and it is one model fed the highest-rung result of every
configuration, not one model per budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nasforge.errors import ConfigError
from nasforge.experiment.schedulers.hyperband import Hyperband
from nasforge.registry import SCHEDULERS
from nasforge.utils.rng import derive_seed


@SCHEDULERS.register("bohb")
class ModelBasedHyperband(Hyperband):
    """Hyperband brackets filled by the strategy; the strategy learns at the highest rung."""

    name = "bohb"

    def __init__(self, *, random_fraction: float = 1 / 3, brackets: int | None = None,
                 min_fidelity: float | None = None, max_fidelity: float | None = None,
                 eta: float = 3, rungs: Sequence[float] | None = None,
                 tell: str = "final") -> None:
        if (isinstance(random_fraction, bool) or not isinstance(random_fraction, (int, float))
                or not 0 <= random_fraction <= 1):
            raise ConfigError(
                f"scheduler 'bohb': random_fraction must be between 0 and 1, got {random_fraction!r}"
            )
        self.random_fraction = float(random_fraction)
        super().__init__(brackets=brackets, min_fidelity=min_fidelity, max_fidelity=max_fidelity,
                         eta=eta, rungs=rungs, tell=tell)

    def random_config(self, seed: int, number: int) -> bool:
        """Whether new configuration ``number`` is drawn uniformly (a function of seed and number,
        so a resumed experiment makes the same choice)."""
        if self.random_fraction <= 0:
            return False
        draw = np.random.default_rng(derive_seed(seed, number, "bohb-random")).random()
        return bool(draw < self.random_fraction)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "random_fraction": self.random_fraction}
