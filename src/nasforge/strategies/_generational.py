"""Generational evolution with ask/tell: the bookkeeping shared by the genetic algorithm and
NSGA-II.

Generation 0 is ``population_size`` random architectures. After that, each ask breeds a child from
the current parent population (``_select`` twice, ``space.crossover`` with probability
``crossover_rate``, then mutation) and the generation closes once enough children have been told;
``_survivors`` then forms the next parent population from the parents and the told children.
Asks never wait: a child asked after its generation closed simply joins the next one, so batch
asks and parallel workers keep going. Children that would repeat an evaluated or pending
architecture are re-bred (a bounded number of times).

Mutation: each active decision is changed with probability ``mutation_rate`` (default
1 / number of active decisions, the classic one-change-per-child rate), by applying
``space.mutate`` once per change (so spaces keep their own notion of a single change).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.strategies._common import (
    Taken,
    archs_from_state,
    archs_to_state,
    positive_int,
    probability,
    propose_unique,
)
from nasforge.strategies.base import Strategy, trial_from_state, trial_to_state
from nasforge.trial import Objective, Trial
from nasforge.utils.rng import RngLike


class GenerationalStrategy(Strategy):
    """Base of generational evolutionary strategies (see the module docstring)."""

    def __init__(
        self,
        space: SearchSpace,
        seed: RngLike = None,
        objectives: Objective | str | Sequence[Objective | str] | None = None,
        population_size: int = 20,
        crossover_rate: float = 0.9,
        mutation_rate: float | None = None,
    ) -> None:
        super().__init__(space, seed, objectives)
        self.population_size = positive_int("population_size", population_size, minimum=2)
        self.crossover_rate = probability("crossover_rate", crossover_rate)
        self.mutation_rate = None if mutation_rate is None else probability(
            "mutation_rate", mutation_rate)
        #: The parent population (told trials), empty during generation 0.
        self.population: list[Trial] = []
        #: Told children of the generation being evaluated.
        self.offspring: list[Trial] = []
        self.generation = 0
        self.seen: set[Architecture] = set()

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _member(self, trial: Trial) -> bool:
        """Whether a told trial can join a population (failed trials cannot)."""

    @abstractmethod
    def _select(self) -> Trial:
        """One parent drawn from :attr:`population` by the strategy's selection rule."""

    @abstractmethod
    def _survivors(self, parents: list[Trial], children: list[Trial]) -> list[Trial]:
        """The next parent population."""

    def _children_needed(self) -> int:
        """Told children that close a generation (the whole population by default)."""
        return self.population_size

    def _population_changed(self) -> None:
        """Called whenever :attr:`population` is replaced (subclasses cache rankings)."""

    # ------------------------------------------------------------------ ask / tell
    def _ask(self) -> Architecture:
        taken = Taken(self.seen, self.pending)
        if not self.population:
            return propose_unique(lambda: self.space.sample(self.rng), taken)
        return propose_unique(self._breed, taken)

    def _breed(self) -> Architecture:
        first = self._select().arch
        if self.rng.random() < self.crossover_rate:
            child = self.space.crossover(first, self._select().arch, self.rng)
        else:
            child = first
        return self._mutate(child)

    def _mutate(self, arch: Architecture) -> Architecture:
        n = len(self.space.active_decisions(arch))
        rate = self.mutation_rate if self.mutation_rate is not None else 1.0 / max(n, 1)
        for _ in range(int(self.rng.binomial(n, rate))):
            arch = self.space.mutate(arch, self.rng)
        return arch

    def _tell(self, trial: Trial) -> None:
        self.seen.add(trial.arch)
        if not self._member(trial):
            return
        self.offspring.append(trial)
        needed = self.population_size if not self.population else self._children_needed()
        if len(self.offspring) >= needed:
            # In generation 0 the parents are empty and the random architectures compete alone.
            self.population = self._survivors(self.population, self.offspring)
            self.offspring = []
            self.generation += 1
            self._population_changed()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["population"] = [trial_to_state(t) for t in self.population]
        state["offspring"] = [trial_to_state(t) for t in self.offspring]
        state["generation"] = self.generation
        state["seen"] = archs_to_state(self.seen)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.population = [trial_from_state(t) for t in state["population"]]
        self.offspring = [trial_from_state(t) for t in state["offspring"]]
        self.generation = int(state["generation"])
        self.seen = set(archs_from_state(state["seen"]))
        self._population_changed()
