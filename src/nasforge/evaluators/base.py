"""Evaluator interface: ``evaluate(arch, ctx) -> Result``."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.trial import Result


class TrialPruned(Exception):
    """Raised inside an evaluator when its reporter says the trial should stop early."""


def _never_prune(step: int, value: float) -> bool:
    return False


@dataclass
class EvalContext:
    """Everything an evaluation may need besides the architecture.

    ``report(step, value)`` passes an intermediate value (e.g. validation accuracy after an epoch)
    to the experiment; it returns True when the trial should be pruned, and evaluators then raise
    :class:`TrialPruned` (or return a ``pruned`` Result). ``deadline`` is an absolute
    ``time.time()`` after which the evaluator should give up.
    """

    seed: int = 0
    device: str = "cpu"
    fidelity: float | None = None
    trial_number: int = 0
    deadline: float | None = None
    reporter: Callable[[int, float], bool] = field(default=_never_prune)
    options: Mapping[str, Any] = field(default_factory=dict)

    def report(self, step: int, value: float) -> bool:
        """Report an intermediate value; True means "stop this trial"."""
        return bool(self.reporter(step, value))

    def time_left(self) -> float | None:
        """Seconds until the deadline, or None without one."""
        return None if self.deadline is None else self.deadline - time.time()


class Evaluator(ABC):
    """Estimates how good an architecture is.

    Subclasses implement :meth:`evaluate`. ``space`` is bound by :meth:`bind` before the first
    evaluation (the experiment does this), so evaluators can build models.
    """

    name: str = "evaluator"
    #: Whether the same (arch, seed) always gives the same Result (lets tests compare executors).
    deterministic: bool = True
    #: Whether ``Result.cost`` is simulated (tabular) rather than real seconds.
    simulated_cost: bool = False

    def __init__(self) -> None:
        self.space: SearchSpace | None = None

    def bind(self, space: SearchSpace) -> Evaluator:
        """Attach the search space the architectures come from."""
        self.space = space
        return self

    @abstractmethod
    def evaluate(self, arch: Architecture, ctx: EvalContext) -> Result:
        """Evaluate one architecture."""

    def cheap_metrics(self, arch: Architecture) -> dict[str, float]:
        """Metrics known without training (params, FLOPs): used to check constraints first."""
        return {}

    def describe(self) -> dict[str, Any]:
        """JSON-able description stored with the experiment."""
        return {"name": self.name}
