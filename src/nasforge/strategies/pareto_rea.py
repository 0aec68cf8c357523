"""Pareto-aware aging evolution: regularized evolution (Real et al., AAAI 2019) whose tournament
compares members by NSGA-II's crowded comparison (Deb et al., 2002) instead of one score, in the
spirit of multi-objective aging evolution for NAS (e.g. LEMONADE, Elsken et al., ICLR 2019, for
Pareto-based NAS).

The population is the ``population_size`` most recent members; each ask draws ``sample_size``
members at random and mutates the best one: the lowest non-dominated rank within the population,
ties broken by the largest crowding distance. The oldest member leaves when a new one arrives.
Infeasible trials stay in the population (they age out like any member) but rank behind every
feasible one; failed trials never join.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from nasforge.errors import ConfigError
from nasforge.registry import STRATEGIES
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.strategies._common import (
    ParetoOrder,
    Taken,
    archs_from_state,
    archs_to_state,
    objective_scores,
    pareto_order,
    positive_int,
    propose_unique,
)
from nasforge.strategies.base import Strategy, trial_from_state, trial_to_state
from nasforge.trial import Objective, Trial
from nasforge.utils.rng import RngLike


@STRATEGIES.register("pareto_rea")
class ParetoRegularizedEvolution(Strategy):
    """Aging evolution with a tournament by non-dominated rank, then crowding distance."""

    name = "pareto_rea"

    def __init__(
        self,
        space: SearchSpace,
        seed: RngLike = None,
        objectives: Objective | str | Sequence[Objective | str] | None = None,
        population_size: int = 20,
        sample_size: int = 5,
    ) -> None:
        super().__init__(space, seed, objectives)
        self.population_size = positive_int("population_size", population_size)
        if not 1 <= sample_size <= self.population_size:
            raise ConfigError(f"sample_size must be between 1 and population_size="
                              f"{self.population_size}, got {sample_size!r}")
        self.sample_size = int(sample_size)
        #: Members, oldest first, with their 'higher is better' scores (() when infeasible).
        self.population: deque[tuple[Trial, tuple[float, ...]]] = deque()
        self.seen: set[Architecture] = set()
        self._order: ParetoOrder | None = None

    def _ask(self) -> Architecture:
        taken = Taken(self.seen, self.pending)
        if len(self.population) < self.population_size:
            return propose_unique(lambda: self.space.sample(self.rng), taken)
        if self._order is None:
            self._order = pareto_order([s for _, s in self.population])
        order = self._order
        idx = [int(i) for i in self.rng.integers(len(self.population), size=self.sample_size)]
        best = min(idx, key=order.sort_key)  # first of equals wins
        parent = self.population[best][0].arch
        return propose_unique(lambda: self.space.mutate(parent, self.rng), taken)

    def _tell(self, trial: Trial) -> None:
        self.seen.add(trial.arch)
        scores = objective_scores(self.objectives, trial)
        if scores is None:
            return
        self.population.append((trial, scores))
        if len(self.population) > self.population_size:
            self.population.popleft()  # aging: the oldest leaves, whatever its rank
        self._order = None

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["population"] = [trial_to_state(t) for t, _ in self.population]
        state["seen"] = archs_to_state(self.seen)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.population = deque()
        for data in state["population"]:
            trial = trial_from_state(data)
            scores = objective_scores(self.objectives, trial)
            assert scores is not None  # only members with scores were stored
            self.population.append((trial, scores))
        self.seen = set(archs_from_state(state["seen"]))
        self._order = None
