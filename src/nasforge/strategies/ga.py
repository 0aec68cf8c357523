"""Genetic algorithm with generational replacement (Holland, 1975; Goldberg, 1989; applied to
architectures by e.g. Xie & Yuille, "Genetic CNN", ICCV 2017).

Each generation: ``population_size - elitism`` children are bred from the parents by tournament
selection (the best of ``tournament_size`` parents drawn at random), crossover through
``space.crossover`` (with probability ``crossover_rate``) and mutation (see
``nasforge.strategies._generational``). The next parents are the children plus the ``elitism``
best parents, so with ``elitism >= 1`` the best architecture found is never lost.
"""

from __future__ import annotations

from collections.abc import Sequence

from nasforge.errors import ConfigError
from nasforge.registry import STRATEGIES
from nasforge.space.base import SearchSpace
from nasforge.strategies._common import fitness, positive_int
from nasforge.strategies._generational import GenerationalStrategy
from nasforge.trial import Objective, Trial
from nasforge.utils.rng import RngLike


@STRATEGIES.register("ga")
class GeneticAlgorithm(GenerationalStrategy):
    """Tournament selection, crossover and mutation through the space, generational replacement
    with optional elitism."""

    name = "ga"

    def __init__(
        self,
        space: SearchSpace,
        seed: RngLike = None,
        objectives: Objective | str | Sequence[Objective | str] | None = None,
        population_size: int = 20,
        tournament_size: int = 3,
        crossover_rate: float = 0.9,
        mutation_rate: float | None = None,
        elitism: int = 1,
    ) -> None:
        super().__init__(space, seed, objectives, population_size, crossover_rate, mutation_rate)
        self.tournament_size = positive_int("tournament_size", tournament_size)
        if isinstance(elitism, bool) or not isinstance(elitism, int) or not (
                0 <= elitism < self.population_size):
            raise ConfigError(f"elitism must be an integer from 0 to population_size - 1 = "
                              f"{self.population_size - 1}, got {elitism!r}")
        self.elitism = elitism

    def _fitness(self, trial: Trial) -> float:
        f = fitness(self.objective, trial)
        assert f is not None  # only trials with a fitness become members
        return f

    def _member(self, trial: Trial) -> bool:
        return fitness(self.objective, trial) is not None

    def _select(self) -> Trial:
        idx = self.rng.integers(len(self.population), size=self.tournament_size)
        # max() keeps the first of equals: ties go to the earlier draw.
        return max((self.population[int(i)] for i in idx), key=self._fitness)

    def _children_needed(self) -> int:
        return self.population_size - self.elitism

    def _best(self, trials: list[Trial], n: int) -> list[Trial]:
        return sorted(trials, key=self._fitness, reverse=True)[:n] if n > 0 else []

    def _survivors(self, parents: list[Trial], children: list[Trial]) -> list[Trial]:
        elites = self._best(parents, self.elitism)
        return elites + self._best(children, self.population_size - len(elites))
