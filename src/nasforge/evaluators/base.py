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
    """Raised inside an evaluator when its reporter says the trial should stop early.

    ``info`` is merged into the pruned trial's info. Evaluators that know what the trial cost
    should pass ``{"epochs_trained": n}``: the budget then charges exactly that instead of
    inferring it from the learning curve.
    """

    def __init__(self, message: str = "pruned", info: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.info: dict[str, Any] = dict(info or {})


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
    #: Multi-fidelity runs: the highest fidelity any trial of this schedule reaches. Evaluators
    #: whose training has a schedule (the cosine learning rate) use it as the schedule's length,
    #: so that a low rung is the beginning of the full run and a promotion can continue it.
    max_fidelity: float | None = None
    #: A checkpoint written by an earlier rung of the same configuration: continue from it when
    #: the evaluator can (:attr:`Evaluator.can_resume`) and the file is there.
    resume_from: str | None = None
    #: Where to write this evaluation's checkpoint, so that a promotion can continue it.
    checkpoint_to: str | None = None

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
    #: Whether ``ctx.fidelity`` means something to this evaluator (multi-fidelity schedulers
    #: refuse an evaluator without it). See :meth:`fidelity_levels`.
    supports_fidelity: bool = False
    #: Whether a promoted evaluation can continue from ``ctx.resume_from`` (training does).
    can_resume: bool = False
    #: What one unit of fidelity is, for messages and reports ("epochs").
    fidelity_unit: str = "fidelity"
    #: Whether fidelities are whole numbers (epochs): schedulers round their rungs.
    integer_fidelity: bool = False
    #: The metric whose intermediate values ``ctx.report`` receives (None: it reports none), so
    #: that a pruner is refused when it would compare something other than the objective.
    reports_metric: str | None = None

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

    def fidelity_levels(self) -> tuple[float, ...] | None:
        """The fidelities this evaluator can evaluate at, or None for any positive number.

        Only meaningful when :attr:`supports_fidelity` is True. A tabular benchmark has a few
        (NAS-Bench-201: 12 and 200 epochs); training takes any whole number of epochs.
        """
        return None

    def default_fidelity(self) -> float | None:
        """The fidelity of an evaluation without ``ctx.fidelity`` (None when it has none)."""
        return None

    def final_evaluate(self, arch: Architecture, seed: int, fidelity: float | None,
                       device: str = "cpu") -> Result:
        """The final measurement of a chosen architecture: trained on all the data the search
        used (training + validation parts), tested once on the held-out test split.

        ``Result.metrics[self.final_metric]`` (``test_accuracy``; detection: ``test_map``) is what
        the verdict compares. Evaluators that cannot
        do this (proxies, user functions) raise :class:`NotImplementedError`; the experiment then
        refuses a final stage before the search starts (see :attr:`supports_final`).
        """
        raise NotImplementedError(f"evaluator {self.name!r} has no final (test) evaluation")

    #: Whether :meth:`final_evaluate` is implemented.
    supports_final: bool = False
    #: The test metric of :meth:`final_evaluate` that the final stage compares (higher is better).
    final_metric: str = "test_accuracy"

    def profile(self, arch: Architecture) -> dict[str, float]:
        """Size and speed of an architecture for the verdict: ``params``, ``flops`` (a count, not
        millions) and ``latency_ms`` where known."""
        return self.cheap_metrics(arch)

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
