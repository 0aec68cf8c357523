"""Executors run trial jobs: inline (in the driver), a local process pool, or Ray actors.

The experiment loop only calls :meth:`Executor.start`, :meth:`Executor.submit`,
:meth:`Executor.wait` and :meth:`Executor.shutdown`, so every executor gets the same budget,
constraint, storage and resume logic. Executors report three kinds of outcome: the evaluator's
Result (an exception inside it becomes a failed Result with the traceback), a trial whose worker
died (``worker_died=True``; the loop retries or fails it) and a trial that ran past its timeout
(failed, "timeout after X s"; its worker is killed and replaced).

While a trial runs, each ``ctx.report(step, value)`` also goes to the executor's
:attr:`Executor.report_sink` (the experiment's ``trial_reported`` event, which the progress display
shows): directly for the inline executor, as a message on the worker's pipe for the process pool.
Ray actors run a trial as one remote call and return only its result, so a Ray trial's reports
reach the driver with it (``info["reports"]``), not live.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
import pickle
import signal
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from nasforge.errors import ConfigError, NasforgeError
from nasforge.evaluators.base import EvalContext, Evaluator, TrialPruned
from nasforge.experiment.crash_log import Crash, CrashLog, read_crash
from nasforge.space.architecture import Architecture
from nasforge.trial import Result, TrialStatus

log = logging.getLogger("nasforge.experiment")


class ExecutorError(NasforgeError):
    """Workers cannot run the experiment at all (evaluator not loadable, Ray not reachable)."""


class TrialTimeout(BaseException):
    """Raised inside an inline evaluation when its timeout expires.

    A BaseException, so that an evaluator's own ``except Exception`` does not swallow it.
    """


@dataclass(frozen=True)
class TrialJob:
    """One evaluation to run: which trial, which architecture, its context and time limit."""

    number: int
    arch: Architecture
    ctx: EvalContext
    timeout: float | None = None
    attempt: int = 0
    #: The user asked for device "auto": resolve it where the job runs (a Ray worker may have a
    #: GPU the driver lacks), not in the driver.
    device_auto: bool = False


@dataclass(frozen=True)
class JobOutcome:
    """A finished job: its Result and the wall times it started and ended at.

    ``worker_died`` marks a job whose worker process vanished (segfault, ``kill -9``, out of
    memory); its ``result`` is a failed Result that says so. ``where`` is the placement that
    parallel executors record in the trial's info: ``node`` (a host, or Ray's "IP/node id") and
    ``worker`` (the worker's process id).
    """

    number: int
    result: Result
    started_at: float
    finished_at: float
    worker_died: bool = False
    where: dict[str, Any] = dataclasses.field(default_factory=dict)


def timeout_result(timeout: float) -> Result:
    """The failed Result of a trial that ran past its time limit."""
    return Result.failed(f"timeout after {timeout:g} s")


@contextmanager
def _alarm(timeout: float | None) -> Iterator[None]:
    """Raise TrialTimeout after ``timeout`` s (only in the main thread of a Unix process)."""
    usable = (timeout is not None and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return
    assert timeout is not None

    def on_alarm(signum: int, frame: object) -> None:
        raise TrialTimeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(timeout, 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


#: Receives each intermediate report of a running trial: ``sink(trial_number, step, value)``.
ReportSink = Callable[[int, int, float], None]


def run_job(evaluator: Evaluator, job: TrialJob, enforce_timeout: bool = False,
            on_report: Callable[[int, float], None] | None = None) -> JobOutcome:
    """Evaluate one job, turning any exception into a failed Result with its traceback.

    With ``enforce_timeout`` (the inline executor), ``job.timeout`` interrupts the evaluation
    through SIGALRM; process and Ray workers are killed from outside instead. ``on_report(step,
    value)`` sees each report as it happens (before the pruner decides); its errors are logged,
    never charged to the trial.
    """
    started = time.time()
    # Every value the evaluation reports is kept: it is the trial's learning curve, stored with
    # it whatever the outcome (a pruned trial's curve says why it was pruned).
    reports: list[list[float]] = []
    decide = job.ctx.reporter

    def reporter(step: int, value: float) -> bool:
        reports.append([int(step), float(value)])
        if on_report is not None:
            try:
                on_report(int(step), float(value))
            except Exception:  # a display's bug must not fail the trial that it displays
                log.exception("passing on trial %d's report failed", job.number)
        return bool(decide(step, value))

    try:
        ctx = dataclasses.replace(job.ctx, reporter=reporter)
        if job.device_auto:
            from nasforge.utils.device import resolve_device

            ctx = dataclasses.replace(ctx, device=resolve_device("auto"))
        with _alarm(job.timeout if enforce_timeout else None):
            result = evaluator.evaluate(job.arch, ctx)
        if not isinstance(result, Result):
            got = type(result).__name__
            result = Result.failed(f"evaluator {evaluator.name!r} returned {got}, not a Result")
    except TrialTimeout:
        assert job.timeout is not None
        result = timeout_result(job.timeout)
    except TrialPruned as exc:
        info = {**exc.info, "pruned_at": reports[-1][0]} if reports else dict(exc.info)
        result = Result(status=TrialStatus.PRUNED, error=str(exc) or "pruned", info=info)
    except Exception as exc:  # a failing trial must never stop the experiment
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        result = Result.failed(f"{type(exc).__name__}: {exc}\n{text}")
    if reports and "reports" not in result.info:
        result = dataclasses.replace(result, info={**result.info, "reports": reports})
    return JobOutcome(job.number, result, started, time.time())


def pickle_evaluator(evaluator: Evaluator) -> bytes:
    """The evaluator as bytes for worker processes (pickled once, sent once per worker).

    Plain pickle first; closures and lambdas fall back to cloudpickle when it is installed
    (Ray ships one). The error names the fix when neither can do it.
    """
    try:
        return pickle.dumps(evaluator, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as first:
        cloudpickle: Any = None
        with contextlib.suppress(ImportError):
            cloudpickle = importlib.import_module("ray.cloudpickle")
        if cloudpickle is not None:
            try:
                data: bytes = cloudpickle.dumps(evaluator, protocol=pickle.HIGHEST_PROTOCOL)
                return data
            except Exception:
                pass
        raise ConfigError(
            f"evaluator {evaluator.name!r} cannot be sent to worker processes ({first}); define "
            "its functions at module level (not lambdas or closures), or use executor='inline'"
        ) from first


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch threads each of ``workers`` processes may use so that they do not oversubscribe."""
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def limit_threads(threads: int) -> None:
    """Set torch's (and BLAS/OpenMP's) thread count inside a worker process."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)
    # Only allowed before the first parallel work; harmless when it is too late.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(threads)


class Executor(ABC):
    """Runs jobs; ``capacity`` jobs may be in flight at once."""

    name: str = "executor"
    capacity: int = 1
    #: Where reports of running trials go (set by the experiment before :meth:`start`; None:
    #: nowhere). Called in the thread that calls :meth:`wait`.
    report_sink: ReportSink | None = None

    def reported(self, number: int, step: int, value: float) -> None:
        """Pass trial ``number``'s report on to :attr:`report_sink`, if any."""
        if self.report_sink is not None:
            self.report_sink(number, step, value)

    def start(self, evaluator: Evaluator) -> None:
        """Prepare workers for ``evaluator`` (called once per run)."""
        self.evaluator = evaluator

    @abstractmethod
    def submit(self, job: TrialJob) -> None:
        """Queue a job (at most ``capacity`` are in flight)."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> list[JobOutcome]:
        """Block until at least one job finished (or ``timeout``), and return those that did."""

    @property
    @abstractmethod
    def in_flight(self) -> int:
        """Jobs submitted and not yet returned by :meth:`wait`."""

    def shutdown(self) -> None:  # noqa: B027 (optional hook)
        """Stop workers (running jobs are abandoned; the experiment re-runs them on resume)."""

    def describe(self) -> dict[str, Any]:
        """JSON-able description (for logs and benchmarks)."""
        return {"name": self.name, "capacity": self.capacity}


class InlineExecutor(Executor):
    """Runs each job in the calling process when :meth:`wait` is called (best for debugging).

    ``capacity`` > 1 queues that many jobs and runs them one after another: with the
    experiment's ``ordered=True`` this reproduces, in one process, exactly what a pool of that
    many workers computes, which helps to debug a parallel search.
    """

    name = "inline"

    def __init__(self, capacity: int = 1) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ConfigError(f"inline executor capacity must be an integer >= 1, got {capacity!r}")
        self.capacity = capacity
        self._queue: deque[TrialJob] = deque()
        #: Where a crash of the process during a trial is recorded (set by the experiment for a
        #: database file; see :mod:`nasforge.experiment.crash_log`). None: not recorded.
        self.crash_path: str | None = None
        self._crash_log: CrashLog | None = None
        self._crashed: Crash | None = None

    def start(self, evaluator: Evaluator) -> None:
        super().start(evaluator)
        self._crashed = None
        if self.crash_path is not None:
            # The trial that crashed the last run fails now instead of crashing this one too.
            self._crashed = read_crash(self.crash_path)
            self._crash_log = CrashLog(self.crash_path)
            self._crash_log.open()

    def _crash_outcome(self, job: TrialJob, crash: Crash) -> JobOutcome:
        log.warning("trial %d crashed the process in the last run (%s); it is recorded as "
                    "failed. Use the process executor to isolate crashing trials.",
                    job.number, crash.headline)
        error = (f"the process crashed while trial {job.number} ran inline, in the driver "
                 f"({crash.headline}); recorded as failed when the experiment resumed. Run with "
                 f"executor='process' (--executor process) so that a crash costs only its trial."
                 f"\n{crash.text}")
        now = time.time()
        result = Result(status=TrialStatus.FAILED, error=error, info={"crashed": True})
        return JobOutcome(job.number, result, now, now)

    def submit(self, job: TrialJob) -> None:
        self._queue.append(job)

    def wait(self, timeout: float | None = None) -> list[JobOutcome]:
        if not self._queue:
            return []
        job = self._queue.popleft()
        crash = self._crashed
        if crash is not None and crash.number == job.number:
            self._crashed = None
            return [self._crash_outcome(job, crash)]
        if self._crash_log is not None:
            self._crash_log.running(job.number)
        def on_report(step: int, value: float) -> None:
            self.reported(job.number, step, value)

        return [run_job(self.evaluator, job, enforce_timeout=True, on_report=on_report)]

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    def shutdown(self) -> None:
        self._queue.clear()
        if self._crash_log is not None:
            self._crash_log.close()
            self._crash_log = None


EXECUTOR_NAMES = ("inline", "process", "ray")


def make_executor(name: str | None = None, workers: int = 1, **options: Any) -> Executor:
    """Build an executor by name: ``"inline"``, ``"process"`` (local pool) or ``"ray"``.

    ``None`` picks inline for one worker and the process pool for more. ``options`` go to the
    executor's constructor (process: ``threads``, ``start_method``; ray: ``address``,
    ``num_cpus``, ``num_gpus``, ``runtime_env``, ``init_options``).
    """
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
    if name is None:
        name = "inline" if workers == 1 else "process"
    if name == "inline":
        if workers != 1:
            raise ConfigError(
                f"the inline executor runs one trial at a time, so workers={workers} is not "
                "allowed with it; use executor 'process' or 'ray' (or InlineExecutor(capacity=N) "
                "to simulate a pool's schedule)"
            )
        if options:
            raise ConfigError(f"the inline executor takes no options, got {sorted(options)}")
        return InlineExecutor()
    if name in ("process", "processes", "pool"):
        from nasforge.experiment.process_pool import ProcessExecutor

        return ProcessExecutor(workers=workers, **options)
    if name == "ray":
        from nasforge.experiment.ray_executor import RayExecutor

        return RayExecutor(workers=workers, **options)
    raise ConfigError(
        f"unknown executor {name!r}; allowed: {', '.join(repr(n) for n in EXECUTOR_NAMES)}"
    )


def as_executor(executor: Executor | str | None, workers: int = 1) -> Executor:
    """An :class:`Executor` given as an object, a name or None (see :func:`make_executor`)."""
    if not isinstance(executor, Executor):
        return make_executor(executor, workers)
    if workers != 1:
        raise ConfigError(
            f"workers={workers} was given together with an executor object; set the number "
            "of workers on the executor instead"
        )
    return executor
