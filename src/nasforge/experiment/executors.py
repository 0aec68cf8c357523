"""Executors run trial jobs: inline (in the driver) here; process pools and Ray build on this interface.

The experiment loop only calls :meth:`Executor.submit` and :meth:`Executor.wait`, so every executor
gets the same budget, constraint, storage and resume logic.
"""

from __future__ import annotations

import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass

from nasforge.evaluators.base import EvalContext, Evaluator, TrialPruned
from nasforge.space.architecture import Architecture
from nasforge.trial import Result, TrialStatus


@dataclass(frozen=True)
class TrialJob:
    """One evaluation to run: which trial, which architecture, and its context."""

    number: int
    arch: Architecture
    ctx: EvalContext


@dataclass(frozen=True)
class JobOutcome:
    """A finished job: its Result and the wall times it started and ended at."""

    number: int
    result: Result
    started_at: float
    finished_at: float


def run_job(evaluator: Evaluator, job: TrialJob) -> JobOutcome:
    """Evaluate one job, turning any exception into a failed Result with its traceback."""
    started = time.time()
    try:
        result = evaluator.evaluate(job.arch, job.ctx)
        if not isinstance(result, Result):
            result = Result.failed(
                f"evaluator {evaluator.name!r} returned {type(result).__name__}, not a nasforge Result"
            )
    except TrialPruned as exc:
        result = Result(status=TrialStatus.PRUNED, error=str(exc) or "pruned")
    except Exception as exc:  # a failing trial must never stop the experiment
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        result = Result.failed(f"{type(exc).__name__}: {exc}\n{text}")
    return JobOutcome(job.number, result, started, time.time())


class Executor(ABC):
    """Runs jobs; ``capacity`` jobs may be in flight at once."""

    name: str = "executor"
    capacity: int = 1

    def start(self, evaluator: Evaluator) -> None:
        """Prepare workers for ``evaluator`` (called once per run)."""
        self.evaluator = evaluator

    @abstractmethod
    def submit(self, job: TrialJob) -> None:
        """Queue a job."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> list[JobOutcome]:
        """Block until at least one job finished (or ``timeout``), and return those that did."""

    @property
    @abstractmethod
    def in_flight(self) -> int:
        """Jobs submitted and not yet returned by :meth:`wait`."""

    def shutdown(self) -> None:
        """Stop workers (running jobs are abandoned; the experiment re-runs them on resume)."""


class InlineExecutor(Executor):
    """Runs each job in the calling process when :meth:`wait` is called (best for debugging)."""

    name = "inline"
    capacity = 1

    def __init__(self) -> None:
        self._queue: deque[TrialJob] = deque()

    def submit(self, job: TrialJob) -> None:
        self._queue.append(job)

    def wait(self, timeout: float | None = None) -> list[JobOutcome]:
        if not self._queue:
            return []
        return [run_job(self.evaluator, self._queue.popleft())]

    @property
    def in_flight(self) -> int:
        return len(self._queue)
