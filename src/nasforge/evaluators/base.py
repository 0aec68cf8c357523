"""Evaluator interface: ``evaluate(arch, ctx) -> Result``."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.trial import Constraint, Result


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
    ``time.time()`` after which the evaluator should give up. ``constraints`` are the experiment's
    constraints: an evaluator that can measure a constrained metric before its expensive work
    (e.g. latency before training) may return an ``infeasible`` Result early.
    """

    seed: int = 0
    device: str = "cpu"
    fidelity: float | None = None
    trial_number: int = 0
    deadline: float | None = None
    reporter: Callable[[int, float], bool] = field(default=_never_prune)
    options: Mapping[str, Any] = field(default_factory=dict)
    constraints: tuple[Constraint, ...] = ()

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

    def produced_metrics(self) -> frozenset[str] | None:
        """Names of the metrics every successful Result of this evaluator holds.

        None (the default) means "not known before evaluating" (e.g. a user function); then the
        experiment checks each result instead of refusing unknown objective names up front.
        """
        return None

    def request_metrics(self, names: Iterable[str]) -> None:  # noqa: B027 (optional hook)
        """Ask for extra metrics that objectives or constraints name; the experiment calls this.

        Evaluators that can compute a metric on request (the training evaluator computes any of
        :mod:`nasforge.metrics`) add it to their results and, when it needs no training, to
        :meth:`cheap_metrics`. Names an evaluator cannot compute are ignored here.
        """

    def check_ready(self) -> None:  # noqa: B027 (optional hook)
        """Raise a clear error when no evaluation can succeed (e.g. the dataset is missing).

        The experiment calls this once before it opens its storage, so a setup problem fails up
        front instead of failing every trial one by one.
        """

    def describe(self) -> dict[str, Any]:
        """JSON-able description stored with the experiment."""
        return {"name": self.name}
