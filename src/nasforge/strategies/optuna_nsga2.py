"""Optuna's NSGA-II sampler (Deb et al., IEEE TEC 2002, as implemented by
``optuna.samplers.NSGAIISampler``) as a nasforge strategy, for comparison with nasforge's own
``nsga2``. Decisions are categorical parameters (Optuna's uniform crossover and mutation act on
them); infeasible trials carry a constraint violation so the sampler ranks them last. Resume
rebuilds the study, generations included, from the stored trials (see
``nasforge.strategies.optuna_bridge``).
"""

from __future__ import annotations

import optuna

from nasforge.registry import STRATEGIES
from nasforge.strategies.optuna_bridge import OptunaStrategy, quiet_optuna


@STRATEGIES.register("optuna_nsga2")
class OptunaNSGA2(OptunaStrategy):
    """Optuna's NSGA-II sampler; options go to ``NSGAIISampler`` (default population 50)."""

    name = "optuna_nsga2"

    def _make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        options = dict(self.sampler_options)
        with quiet_optuna():
            return optuna.samplers.NSGAIISampler(seed=seed, **options)
