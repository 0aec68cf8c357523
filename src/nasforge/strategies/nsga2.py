"""NSGA-II (Deb, Pratap, Agarwal & Meyarivan, "A fast and elitist multiobjective genetic
algorithm: NSGA-II", IEEE Transactions on Evolutionary Computation, 2002).

Parents are ranked by non-dominated sorting over all objectives and, within a front, by crowding
distance. Children come from binary tournaments under the crowded comparison (lower front wins,
then larger crowding distance), crossover through ``space.crossover`` and mutation. Once
``population_size`` children are told, parents and children compete together (elitist
(mu + lambda) survival): whole fronts are kept in order and the last front that does not fit is
cut by crowding distance.

Infeasible trials (they broke a constraint) rank behind every feasible front; failed trials never
join the population. With a single objective this is a plain elitist GA.
"""

from __future__ import annotations

from collections.abc import Sequence

from nasforge.registry import STRATEGIES
from nasforge.space.base import SearchSpace
from nasforge.strategies._common import ParetoOrder, objective_scores, pareto_order
from nasforge.strategies._generational import GenerationalStrategy
from nasforge.trial import Objective, Trial
from nasforge.utils.rng import RngLike


@STRATEGIES.register("nsga2")
class NSGA2(GenerationalStrategy):
    """Non-dominated sorting + crowding distance, binary tournaments, (mu + lambda) survival."""

    name = "nsga2"

    def __init__(
        self,
        space: SearchSpace,
        seed: RngLike = None,
        objectives: Objective | str | Sequence[Objective | str] | None = None,
        population_size: int = 20,
        crossover_rate: float = 0.9,
        mutation_rate: float | None = None,
    ) -> None:
        super().__init__(space, seed, objectives, population_size, crossover_rate, mutation_rate)
        self._order: ParetoOrder | None = None

    def _scores(self, trial: Trial) -> tuple[float, ...]:
        s = objective_scores(self.objectives, trial)
        assert s is not None  # only trials with scores become members
        return s

    def _member(self, trial: Trial) -> bool:
        return objective_scores(self.objectives, trial) is not None

    def _population_changed(self) -> None:
        self._order = pareto_order([self._scores(t) for t in self.population])

    def _select(self) -> Trial:
        if self._order is None:
            self._population_changed()
        assert self._order is not None
        i, j = (int(k) for k in self.rng.integers(len(self.population), size=2))
        return self.population[i if self._order.better(i, j) or i == j else j]

    def _survivors(self, parents: list[Trial], children: list[Trial]) -> list[Trial]:
        pool = parents + children
        order = pareto_order([self._scores(t) for t in pool])
        keep: list[int] = []
        for rank in range(int(order.rank.max()) + 1 if pool else 0):
            front = [i for i in range(len(pool)) if order.rank[i] == rank]
            if len(keep) + len(front) <= self.population_size:
                keep += front
                continue
            # The front that does not fit: keep its least crowded members.
            front.sort(key=lambda i: -order.crowding[i])
            keep += front[: self.population_size - len(keep)]
            break
        return [pool[i] for i in keep]
