"""Progressive search: evolve in a restricted space first, then widen it in stages, carrying the
best architectures over as the seeds of the next stage (in the spirit of progressive NAS: Liu et
al., "Progressive Neural Architecture Search", ECCV 2018, which grows cells from simple to
complex, and progressive space shrinking/growing schedules that followed).

The generic restriction rule (any space, only the decision interface is used). A strategy knows
nothing of what an option means, so it restricts only the decisions whose options carry an order
of size, and reads that order as "simpler first":

- Options that are all numbers or all booleans are ordered by value, smallest first (``False``
  before ``True``): fewer layers or blocks (a decision that others depend on, such as a macro
  space's ``num_layers`` or an elastic stage's depth, so early stages also have fewer conditional
  decisions), fewer filters, smaller kernels and expansion ratios, inputs from earlier nodes
  (shallower DARTS cells), optional parts switched off.
- Options that are names (operations) have no such order. They are all allowed from the first
  stage: a subset picked at random, as an earlier version did, could leave out the best
  operations for whole stages. A space made only of such decisions (NAS-Bench-201's cell) is
  therefore not restricted at all, and the strategy is aging evolution with restarts from the
  best architectures at each stage boundary.
- In stage ``s`` of ``stages`` (0-based), an ordered decision allows the first
  ``ceil(size * f_s)`` options of its order, with ``f_s`` rising linearly from
  ``initial_fraction`` (stage 0) to 1 (last stage). Allowed sets are nested: a stage only adds.
- The space's own repair rule (``space.complete``) may still adjust a choice to keep an
  architecture valid.

Inside a stage the search is aging evolution (Real et al., AAAI 2019) with sampling and
mutation restricted to the allowed options. A stage lasts ``stage_trials`` told trials; when it
ends, the population restarts from the ``carry`` best architectures found so far.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

from nasforge.errors import ConfigError
from nasforge.registry import STRATEGIES
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.space.decision import Choice, Value
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


def _ordered(options: Sequence[Value]) -> bool:
    """Whether the options are all numbers or all booleans (so "smaller" means something)."""
    if all(isinstance(o, bool) for o in options):
        return True
    return all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in options)


def _smallest_first(options: Sequence[Value]) -> list[int]:
    """Indices of ordered options by value (stable: equal values keep their declared order)."""
    return sorted(range(len(options)), key=lambda i: float(options[i]))


@STRATEGIES.register("progressive")
class ProgressiveSearch(Strategy):
    """Aging evolution in a space that widens stage by stage (see the module docstring)."""

    name = "progressive"

    def __init__(
        self,
        space: SearchSpace,
        seed: RngLike = None,
        objectives: Objective | str | Sequence[Objective | str] | None = None,
        stages: int = 3,
        stage_trials: int = 40,
        initial_fraction: float = 0.4,
        population_size: int = 10,
        sample_size: int = 3,
        carry: int = 5,
    ) -> None:
        super().__init__(space, seed, objectives)
        self.stages = positive_int("stages", stages)
        self.stage_trials = positive_int("stage_trials", stage_trials)
        if isinstance(initial_fraction, bool) or not isinstance(initial_fraction, (int, float)) \
                or not 0 < initial_fraction <= 1:
            raise ConfigError(f"initial_fraction must be in (0, 1], got {initial_fraction!r}")
        self.initial_fraction = float(initial_fraction)
        self.population_size = positive_int("population_size", population_size)
        if not 1 <= sample_size <= self.population_size:
            raise ConfigError(f"sample_size must be between 1 and population_size="
                              f"{self.population_size}, got {sample_size!r}")
        self.sample_size = int(sample_size)
        self.carry = positive_int("carry", carry)
        #: Option order (indices into the options, simplest first) of each ordered decision;
        #: decisions missing here (named options) are never restricted.
        self.orders: dict[str, list[int]] = {
            d.name: _smallest_first(d.options) for d in space.decisions if _ordered(d.options)}
        self.stage = 0
        self.told = 0
        self.population: deque[tuple[Architecture, float]] = deque()
        #: The ``carry`` best (architecture, fitness) so far, best first.
        self.best: list[tuple[Architecture, float]] = []
        self.seen: set[Architecture] = set()

    # ------------------------------------------------------------------ restriction
    def allowed(self, decision: Choice, stage: int | None = None) -> tuple[Value, ...]:
        """The options ``decision`` may take in ``stage`` (default: the current stage)."""
        order = self.orders.get(decision.name)
        if order is None:
            return decision.options
        s = self.stage if stage is None else stage
        frac = 1.0 if self.stages == 1 else (
            self.initial_fraction + (1 - self.initial_fraction) * s / (self.stages - 1))
        k = max(1, math.ceil(decision.size * frac - 1e-9))
        return tuple(decision.options[i] for i in order[:k])

    def _fill(self, values: dict[str, Value]) -> Architecture:
        """Keep the allowed values of the active decisions, draw the others from their allowed
        options, drop inactive decisions, then let the space repair."""
        out: dict[str, Value] = {}
        for d in self.space.decisions:
            if not d.active(out):
                continue
            options = self.allowed(d)
            v = values.get(d.name)
            if v is None or v not in options:
                v = options[int(self.rng.integers(len(options)))]
            out[d.name] = v
        return self.space.complete(out)

    def _mutate(self, arch: Architecture) -> Architecture:
        choices = [d for d in self.space.active_decisions(arch) if len(self.allowed(d)) > 1]
        if not choices:
            return self._fill({})
        d = choices[int(self.rng.integers(len(choices)))]
        options = [o for o in self.allowed(d) if o != arch[d.name]]
        values = dict(arch)
        values[d.name] = options[int(self.rng.integers(len(options)))]
        return self._fill(values)

    # ------------------------------------------------------------------ ask / tell
    def _ask(self) -> Architecture:
        taken = Taken(self.seen, self.pending)
        # Stage 0 starts from random architectures; later stages from the carried seeds.
        if not self.population or (self.stage == 0
                                   and len(self.population) < self.population_size):
            return propose_unique(lambda: self._fill({}), taken)
        idx = self.rng.integers(len(self.population), size=self.sample_size)
        parent = max((self.population[int(i)] for i in idx), key=lambda af: af[1])[0]
        return propose_unique(lambda: self._mutate(parent), taken)

    def _tell(self, trial: Trial) -> None:
        self.seen.add(trial.arch)
        self.told += 1
        f = fitness(self.objective, trial)
        if f is not None:
            self.population.append((trial.arch, f))
            if len(self.population) > self.population_size:
                self.population.popleft()
            self.best.append((trial.arch, f))
            self.best.sort(key=lambda af: -af[1])  # stable: the earlier of equals stays first
            del self.best[self.carry:]
        stage = min(self.stages - 1, self.told // self.stage_trials)
        if stage != self.stage:
            self.stage = stage
            self.population = deque(reversed(self.best))  # the best seed ages out last

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["stage"] = self.stage
        state["told"] = self.told
        state["population"] = [[a.to_dict(), fitness_to_state(f)] for a, f in self.population]
        state["best"] = [[a.to_dict(), fitness_to_state(f)] for a, f in self.best]
        state["seen"] = archs_to_state(self.seen)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.stage = int(state["stage"])
        self.told = int(state["told"])
        self.population = deque((Architecture.from_dict(a), fitness_from_state(f))
                                for a, f in state["population"])
        self.best = [(Architecture.from_dict(a), fitness_from_state(f)) for a, f in state["best"]]
        self.seen = set(archs_from_state(state["seen"]))
