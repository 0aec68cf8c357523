"""Tree-structured Parzen Estimator through Optuna (Bergstra, Bardenet, Bengio & Kegl, "Algorithms
for Hyper-Parameter Optimization", NeurIPS 2011; Watanabe, "Tree-Structured Parzen Estimator:
Understanding Its Algorithm Components", 2023, for Optuna's implementation).

Each decision is a categorical parameter of ``optuna.samplers.TPESampler``, suggested
define-by-run so conditional decisions exist only when active. Optuna's constant liar (on by
default) steers batch asks away from pending architectures, and a proposal that repeats a pending
architecture is closed at once and asked again; so is one that repeats an evaluated architecture,
told its known result, unless ``avoid_repeats=False`` (then it is returned and evaluated, and
charged, again, as in Optuna's own loop and NAS-Bench-201's protocol). With several objectives the same
sampler runs multi-objective TPE (MOTPE). Resume rebuilds the study from its stored trials and
restores the sampler's random generators, with no ask replayed (see
``nasforge.strategies.optuna_bridge``). Each ask costs O(trials) inside Optuna's TPE (about 9 ms
at 1,000 trials and 140 ms at 10,000 on NAS-Bench-201). For your own Optuna objective, use
:func:`suggest_architecture`.
"""

from __future__ import annotations

import optuna

from nasforge.registry import STRATEGIES
from nasforge.strategies.optuna_bridge import (
    OptunaStrategy,
    quiet_optuna,
    suggest_architecture,
)

__all__ = ["TPE", "suggest_architecture"]


@STRATEGIES.register("tpe")
class TPE(OptunaStrategy):
    """Optuna's TPE sampler over the space's decisions; options go to ``TPESampler``."""

    name = "tpe"

    def _make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        options = dict(self.sampler_options)
        with quiet_optuna():
            return optuna.samplers.TPESampler(seed=seed, **options)
