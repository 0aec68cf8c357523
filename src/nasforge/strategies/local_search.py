"""Local search: first-improvement hill climbing with random restarts (White, Zela, Ru, Liu &
Hutter, "How Powerful are Performance Predictors in Neural Architecture Search?" / White,
Nolen, Neiswanger et al., "Local Search is State of the Art for Neural Architecture Search
Benchmarks", 2020).

Start from the best of ``num_init`` random architectures. Evaluate the current architecture's
neighbours (``space.neighbors``: one decision changed) in a random order and move to the *first*
one that scores better; a neighbour already evaluated earlier counts without a new query. When
every neighbour has been told and none is better, the current architecture is a local optimum:
it is recorded and the search restarts from fresh random architectures.

Batch asks: once the current neighbourhood is fully asked but some answers are still pending,
further asks are random architectures; they become the starting points of the next restart, so no
query is wasted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nasforge.registry import STRATEGIES
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.strategies._common import (
    Taken,
    archs_from_state,
    archs_to_state,
    fitness,
    fitness_from_state,
    fitness_to_state,
    positive_int,
    propose_unique,
)
from nasforge.strategies.base import Strategy
from nasforge.trial import Objective, Trial
from nasforge.utils.rng import RngLike


@STRATEGIES.register("local_search")
class LocalSearch(Strategy):
    """First-improvement hill climbing over ``space.neighbors`` with random restarts."""

    name = "local_search"

    def __init__(
        self,
        space: SearchSpace,
        seed: RngLike = None,
        objectives: Objective | str | Sequence[Objective | str] | None = None,
        num_init: int = 1,
    ) -> None:
        super().__init__(space, seed, objectives)
        self.num_init = positive_int("num_init", num_init)
        #: Fitness of every told architecture that has one (failed trials have none).
        self.scores: dict[Architecture, float] = {}
        self.seen: set[Architecture] = set()
        self.current: Architecture | None = None
        #: Neighbours of ``current`` still to ask, in the (random) order they will be asked.
        self.queue: list[Architecture] = []
        #: Neighbours of ``current`` asked and not told yet.
        self.inflight: set[Architecture] = set()
        #: Random architectures told and not used yet: starting points of the next (re)start.
        self.starts: list[Architecture] = []
        #: Random architectures asked and not told yet.
        self.randoms: set[Architecture] = set()
        #: Local optima found so far, in order.
        self.optima: list[Architecture] = []
        self._neighborhood: set[Architecture] = set()

    # ------------------------------------------------------------------ ask / tell
    def _ask(self) -> Architecture:
        taken = Taken(self.seen, self.pending)
        while self.current is not None and self.queue:
            arch = self.queue.pop(0)
            if arch not in taken:
                self.inflight.add(arch)
                return arch
        # Starting, or waiting for the last answers of a neighbourhood: a random architecture.
        arch = propose_unique(lambda: self.space.sample(self.rng), taken)
        self.randoms.add(arch)
        return arch

    def _tell(self, trial: Trial) -> None:
        arch = trial.arch
        self.seen.add(arch)
        f = fitness(self.objective, trial)
        if f is not None:
            self.scores[arch] = f
        was_random = arch in self.randoms
        self.randoms.discard(arch)
        if self.current is not None and arch in self._neighborhood:
            self.inflight.discard(arch)
            if f is not None and f > self.scores[self.current]:
                self._move(arch)
        elif was_random and f is not None:
            self.starts.append(arch)  # a candidate starting point of the next (re)start
        self._settle()

    def amend_last_ask(self, arch: Architecture) -> None:
        """Replace the newest pending ask by ``arch`` (a resume replaying stored history).

        The climb keeps its own record of what is in flight: without this, it would wait forever
        for the replaced neighbour's answer and never finish its neighbourhood.
        """
        replaced = self.pending[-1] if self.pending else None
        super().amend_last_ask(arch)
        assert replaced is not None  # the base class refuses an amend with nothing pending
        self.randoms.discard(replaced)
        if replaced in self.inflight:
            self.inflight.discard(replaced)
            self.queue.insert(0, replaced)  # never evaluated: still to ask, next
        # Record the architecture that is really being evaluated as what it is for the climb.
        if self.current is not None and arch in self._neighborhood:
            self.inflight.add(arch)
            if arch in self.queue:
                self.queue.remove(arch)
        else:
            self.randoms.add(arch)

    # ------------------------------------------------------------------ internals
    def _settle(self) -> None:
        """Record a finished climb (local optimum) and (re)start when enough starts are told."""
        while True:
            if self.current is not None and not self.queue and not self.inflight:
                self.optima.append(self.current)
                self.current = None
                self._neighborhood = set()
            if self.current is None and self.starts and len(self.starts) >= self.num_init:
                best = max(self.starts, key=lambda a: self.scores[a])  # earliest wins ties
                self.starts = []
                self._move(best)
                continue
            return

    def _move(self, arch: Architecture) -> None:
        """Make ``arch`` the current architecture; follow known better neighbours at once."""
        while True:
            self.current = arch
            neighbors = self.space.neighbors(arch)
            self._neighborhood = set(neighbors)
            order = [neighbors[int(i)] for i in self.rng.permutation(len(neighbors))]
            better = next((n for n in order if self.scores.get(n, float("-inf"))
                           > self.scores[arch]), None)
            if better is None:
                break
            arch = better  # first improvement, found without a query
        self.queue = [n for n in order if n not in self.seen]
        pending = set(self.pending)
        self.inflight = {n for n in self.queue if n in pending}
        self.queue = [n for n in self.queue if n not in pending]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["scores"] = [[a.to_dict(), fitness_to_state(f)] for a, f in self.scores.items()]
        state["seen"] = archs_to_state(self.seen)
        state["current"] = None if self.current is None else self.current.to_dict()
        state["queue"] = archs_to_state(self.queue)
        state["inflight"] = archs_to_state(sorted(self.inflight, key=lambda a: a.to_json()))
        state["starts"] = archs_to_state(self.starts)
        state["randoms"] = archs_to_state(sorted(self.randoms, key=lambda a: a.to_json()))
        state["optima"] = archs_to_state(self.optima)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.scores = {Architecture.from_dict(a): fitness_from_state(f)
                       for a, f in state["scores"]}
        self.seen = set(archs_from_state(state["seen"]))
        cur = state["current"]
        self.current = None if cur is None else Architecture.from_dict(cur)
        self.queue = archs_from_state(state["queue"])
        self.inflight = set(archs_from_state(state["inflight"]))
        self.starts = archs_from_state(state["starts"])
        self.randoms = set(archs_from_state(state["randoms"]))
        self.optima = archs_from_state(state["optima"])
        self._neighborhood = set() if self.current is None else set(
            self.space.neighbors(self.current))
