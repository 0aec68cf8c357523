"""Regularized (aging) evolution (Real et al., AAAI 2019, "Regularized Evolution for Image
Classifier Architecture Search").

A population of the most recent ``population_size`` architectures; each step draws
``sample_size`` members at random, mutates the best of them and adds the child, while the *oldest*
member (not the worst) leaves. NAS-Bench-201's REA baseline uses population 10, sample size 3
(Dong & Yang, ICLR 2020); those are our defaults.

As published, a child may repeat an architecture evaluated earlier (the population keeps both
copies). Only a proposal that repeats a *pending* architecture (asked in the same batch, or still
running) is proposed again, a bounded number of times: the whole step (random architecture while
the population fills, else tournament and mutation) is redrawn, so a parent whose few children
are all pending does not trap the batch. Sequential asks never have anything pending, so they are
exactly the published algorithm.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from nasforge.errors import ConfigError
from nasforge.registry import STRATEGIES
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.strategies._common import propose_unique
from nasforge.strategies.base import Strategy, trial_from_state, trial_to_state
from nasforge.trial import Objective, Trial
from nasforge.utils.rng import RngLike


@STRATEGIES.register("rea")
class RegularizedEvolution(Strategy):
    """Aging evolution: tournament selection, mutation through the space, oldest member removed."""

    name = "rea"

    def __init__(
        self,
        space: SearchSpace,
        seed: RngLike = None,
        objectives: Objective | str | Sequence[Objective | str] | None = None,
        population_size: int = 10,
        sample_size: int = 3,
    ) -> None:
        super().__init__(space, seed, objectives)
        if population_size < 1:
            raise ConfigError(f"population_size must be >= 1, got {population_size}")
        if not 1 <= sample_size <= population_size:
            raise ConfigError(
                f"sample_size must be between 1 and population_size={population_size}, got {sample_size}"
            )
        self.population_size = population_size
        self.sample_size = sample_size
        # (arch, score) of the most recent successful trials, oldest first.
        self.population: deque[tuple[Trial, float]] = deque()
        self.asked = 0

    def _ask(self) -> Architecture:
        self.asked += 1
        return propose_unique(self._propose, set(self.pending))

    def _propose(self) -> Architecture:
        # Until the population is full, and for asks made while it fills, sample at random.
        if len(self.population) < self.population_size:
            return self.space.sample(self.rng)
        # Tournament drawn with replacement, as in Real et al.'s reference implementation.
        idx = self.rng.integers(len(self.population), size=self.sample_size)
        parent = max((self.population[int(i)] for i in idx), key=lambda ts: ts[1])
        return self.space.mutate(parent[0].arch, self.rng)

    def _tell(self, trial: Trial) -> None:
        score = self.score(trial)
        if score is None:  # failed trials do not enter the population
            return
        self.population.append((trial, score))
        if len(self.population) > self.population_size:
            self.population.popleft()  # aging: the oldest member dies, whatever its fitness

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["population"] = [[trial_to_state(t), s] for t, s in self.population]
        state["asked"] = self.asked
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.population = deque((trial_from_state(t), float(s)) for t, s in state["population"])
        self.asked = int(state["asked"])
