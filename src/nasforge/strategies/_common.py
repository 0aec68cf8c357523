"""Helpers shared by the search strategies: fitness of trials, Pareto ordering of populations,
proposing architectures that are not evaluated or pending yet, and JSON forms of their state.

Fitness convention (every strategy follows it):

- an OK trial scores its objective, "higher is better" (``Objective.score``);
- an INFEASIBLE trial (it broke a constraint) is worse than any feasible one: fitness ``-inf``
  for single-objective strategies, the last front for multi-objective ones;
- a FAILED or PRUNED trial has no fitness (None) and is left out of populations and models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasforge.errors import ConfigError
from nasforge.pareto import crowding_distance, non_dominated_sort
from nasforge.space.architecture import Architecture
from nasforge.trial import Objective, Trial, TrialStatus

INFEASIBLE = -math.inf
"""Fitness of a trial that broke a constraint: worse than every feasible trial."""


def fitness(objective: Objective, trial: Trial) -> float | None:
    """Single-objective fitness of a finished trial (see the module docstring)."""
    if trial.status is TrialStatus.INFEASIBLE:
        return INFEASIBLE
    return objective.score(trial)


def propose_unique(
    propose: Callable[[], Architecture], taken: Container[Architecture], tries: int = 50
) -> Architecture:
    """Call ``propose`` until it returns an architecture not in ``taken`` (evaluated or pending).

    Public as ``nasforge.strategies.propose_unique``: the way a strategy keeps the contract rule
    "never propose a pending architecture" (see :mod:`nasforge.testing`), e.g.
    ``propose_unique(lambda: self.space.sample(self.rng), set(self.pending))``.

    After ``tries`` duplicates in a row the last proposal is returned anyway: in a small or
    nearly exhausted space a repeat is better than an endless loop.
    """
    arch = propose()
    for _ in range(tries - 1):
        if arch not in taken:
            return arch
        arch = propose()
    return arch


class Taken:
    """``arch in taken``: evaluated (``seen``) or pending, without building a new set per ask."""

    def __init__(self, seen: Container[Architecture], pending: Sequence[Architecture]) -> None:
        self.seen = seen
        self.pending = set(pending)

    def __contains__(self, arch: object) -> bool:
        return arch in self.pending or arch in self.seen


def positive_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an int >= ``minimum``, else a ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def probability(name: str, value: object) -> float:
    """``value`` if it is a number in [0, 1], else a ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a number between 0 and 1, got {value!r}")
    return float(value)


def positive_float(name: str, value: object, allow_zero: bool = False) -> float:
    """``value`` if it is a finite number > 0 (or >= 0), else a ConfigError naming it."""
    number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else math.nan
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")
    return number


# ---------------------------------------------------------------------------------- state
def fitness_to_state(value: float) -> float | None:
    """Strict-JSON form of a fitness: ``-inf`` (infeasible) becomes None."""
    return None if value == INFEASIBLE else float(value)


def fitness_from_state(value: float | None) -> float:
    """Inverse of :func:`fitness_to_state`."""
    return INFEASIBLE if value is None else float(value)


def archs_to_state(archs: Iterable[Architecture]) -> list[dict[str, Any]]:
    """JSON form of architectures (order kept)."""
    return [a.to_dict() for a in archs]


def archs_from_state(data: Iterable[dict[str, Any]]) -> list[Architecture]:
    """Inverse of :func:`archs_to_state`."""
    return [Architecture.from_dict(d) for d in data]


# ---------------------------------------------------------------------------------- Pareto order
@dataclass(frozen=True)
class ParetoOrder:
    """Non-dominated rank (0 best) and crowding distance (larger better) of population members."""

    rank: np.ndarray
    crowding: np.ndarray

    def better(self, i: int, j: int) -> bool:
        """NSGA-II's crowded comparison: lower rank wins, then larger crowding distance."""
        if self.rank[i] != self.rank[j]:
            return bool(self.rank[i] < self.rank[j])
        return bool(self.crowding[i] > self.crowding[j])

    def sort_key(self, i: int) -> tuple[int, float]:
        """Key that sorts members best first."""
        return int(self.rank[i]), -float(self.crowding[i])


def objective_scores(objectives: Sequence[Objective], trial: Trial) -> tuple[float, ...] | None:
    """'Higher is better' values of every objective, () for an infeasible trial, None when the
    trial failed or lacks a metric."""
    if trial.status is TrialStatus.INFEASIBLE:
        return ()
    scores = [o.score(trial) for o in objectives]
    if any(s is None for s in scores):
        return None
    return tuple(float(s) for s in scores if s is not None)


def pareto_order(scores: Sequence[tuple[float, ...]]) -> ParetoOrder:
    """Rank and crowding of members given their :func:`objective_scores` (``()`` = infeasible).

    Feasible members are sorted into fronts by non-dominated sorting (all objectives maximized);
    infeasible ones share the front after the last feasible front (Deb's constrained domination
    without violation amounts, which the experiment does not record) with crowding 0.
    """
    n = len(scores)
    rank = np.zeros(n, dtype=int)
    crowd = np.zeros(n)
    feasible = [i for i, s in enumerate(scores) if s]
    if feasible:
        pts = -np.asarray([scores[i] for i in feasible], dtype=float)  # to minimization
        fronts = non_dominated_sort(pts)
        for r, front in enumerate(fronts):
            idx = np.asarray(feasible)[front]
            rank[idx] = r
            crowd[idx] = crowding_distance(pts[front])
        last = len(fronts)
    else:
        last = 0
    for i, s in enumerate(scores):
        if not s:
            rank[i] = last
    return ParetoOrder(rank, crowd)
