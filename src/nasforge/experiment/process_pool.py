"""A local process pool built from our own worker processes and pipes.

Why not ``concurrent.futures.ProcessPoolExecutor``: when one of its workers dies (segfault,
``kill -9``, the out-of-memory killer) the whole pool is marked broken and every pending future
fails. Here each worker has its own pipe and the driver watches each process's sentinel, so a dead
worker costs exactly the trial it was running; the pool starts a replacement and goes on.

Workers are started with the ``spawn`` method (safe with threads, CUDA and macOS), receive the
pickled evaluator once at start, ignore SIGINT (Ctrl-C is the driver's to handle), cap torch's
threads at ``cores // workers`` and exit on their own when the driver disappears. A trial's
reports (``ctx.report``) travel on the same pipe as they happen (``("report", number, step,
value)``, ahead of its result), so the driver sees them live.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import pickle
import signal
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from nasforge.errors import ConfigError
from nasforge.evaluators.base import Evaluator
from nasforge.experiment.executors import (
    Executor,
    ExecutorError,
    JobOutcome,
    TrialJob,
    limit_threads,
    pickle_evaluator,
    run_job,
    threads_per_worker,
    timeout_result,
)
from nasforge.trial import Result

_START_METHODS = ("spawn", "forkserver", "fork")

#: Exit status of a worker that found itself re-running the driver's unguarded script.
UNGUARDED_EXIT = 86

_UNGUARDED = (
    "the worker processes re-ran your script and it started another search: with the "
    "'{method}' start method each worker imports the main script, so the code that runs the "
    "experiment must be guarded with `if __name__ == \"__main__\":` (put it under that line)"
)


def exit_if_bootstrapping() -> None:
    """In a worker that is importing the driver's script (no ``__main__`` guard), stop now.

    Without the guard each spawned worker would build its own pool while still starting (Python
    refuses that with a RuntimeError, exit code 1) and every trial would fail the same way.
    Exiting with :data:`UNGUARDED_EXIT` lets the driver name the cause once instead.
    """
    if getattr(mp.current_process(), "_inheriting", False):
        os._exit(UNGUARDED_EXIT)  # silently: the driver says it once, for every worker


def _watch_parent() -> None:
    """Exit when the driver is gone, so that no orphaned worker lingers (e.g. after kill -9)."""
    parent = mp.parent_process()
    if parent is None or parent.sentinel is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        mpc.wait([sentinel])
        os._exit(3)

    threading.Thread(target=watch, name="nasforge-parent-watch", daemon=True).start()


def _worker_main(conn: mpc.Connection, payload: bytes, threads: int) -> None:
    """Body of one worker process: load the evaluator once, then run jobs until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent()
    try:
        limit_threads(threads)
        evaluator: Evaluator = pickle.loads(payload)
    except BaseException as exc:
        conn.send(("init_error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        except Exception as exc:  # a job that cannot be unpickled here fails alone
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            conn.send(("job_error", f"the trial cannot be loaded in the worker: {exc}\n{text}"))
            continue
        if job is None:
            return
        outcome = run_job(evaluator, job, on_report=_report_to(conn, job.number))
        try:
            conn.send(("done", outcome))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            # A Result holding something unpicklable (a tensor in info, a lambda) fails alone.
            failed = Result.failed(f"the trial's result cannot be sent back to the driver: {exc}")
            conn.send(("done", JobOutcome(job.number, failed, outcome.started_at,
                                          outcome.finished_at)))
        except (BrokenPipeError, OSError):
            return


def _report_to(conn: mpc.Connection, number: int) -> Callable[[int, float], None]:
    """Send trial ``number``'s reports to the driver as they happen."""

    def send(step: int, value: float) -> None:
        # A driver that is gone cannot listen; the parent watch ends this worker soon.
        with contextlib.suppress(OSError):
            conn.send(("report", number, step, value))

    return send


@dataclass(eq=False)  # identity comparison: a replaced worker is a different worker
class _Worker:
    index: int
    process: BaseProcess
    conn: mpc.Connection
    job: TrialJob | None = None
    started_at: float = 0.0
    ready_at: float | None = None  # when the worker said it loaded the evaluator

    @property
    def ready(self) -> bool:
        return self.ready_at is not None

    def job_started(self) -> float:
        """When the current job really started: a fresh worker first has to import and load."""
        assert self.ready_at is not None
        return max(self.started_at, self.ready_at)


def _death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "its exit status is unknown"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory or kill -9)" if -exitcode == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit code {exitcode}"


class ProcessExecutor(Executor):
    """Runs trials in ``workers`` local processes; a worker that dies is replaced.

    ``threads`` is torch's thread count per worker (default: usable cores // workers).
    ``start_method`` is the multiprocessing start method (default ``"spawn"``); with spawn, a
    script that runs an experiment must guard it with ``if __name__ == "__main__":``.
    """

    name = "process"

    def __init__(self, workers: int = 2, threads: int | None = None,
                 start_method: str = "spawn") -> None:
        exit_if_bootstrapping()
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads must be an integer >= 1 or None, got {threads!r}")
        if start_method not in _START_METHODS:
            raise ConfigError(
                f"unknown start method {start_method!r}; allowed: "
                + ", ".join(repr(m) for m in _START_METHODS)
            )
        self.capacity = workers
        self.threads = threads if threads is not None else threads_per_worker(workers)
        self.start_method = start_method
        self._ctx: Any = mp.get_context(start_method)
        self._workers: list[_Worker] = []
        self._queue: deque[TrialJob] = deque()
        self._payload = b""
        self._spawned = 0
        self._failed_starts = 0
        self._host = socket.gethostname()

    # ------------------------------------------------------------------ lifecycle
    def start(self, evaluator: Evaluator) -> None:
        super().start(evaluator)
        self._payload = pickle_evaluator(evaluator)  # once; each worker gets these bytes
        self._failed_starts = 0
        self._workers = [self._spawn(i) for i in range(self.capacity)]

    def _spawn(self, index: int) -> _Worker:
        ours, theirs = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_worker_main, args=(theirs, self._payload, self.threads),
                                 name=f"nasforge-worker-{index}")
        # Not a daemon: evaluators may start their own processes (DataLoader workers). The
        # driver's shutdown and each worker's parent watch make sure none outlives the driver.
        proc.start()
        theirs.close()  # the child holds its end; closing ours lets EOF signal its death
        self._spawned += 1
        return _Worker(index, proc, ours)

    def shutdown(self) -> None:
        for w in self._workers:
            if w.job is None and w.process.is_alive():
                with contextlib.suppress(OSError):
                    w.conn.send(None)
            else:  # busy: its trial stays 'running' in storage and re-runs on resume
                w.process.terminate()
        deadline = time.time() + 5.0
        for w in self._workers:
            w.process.join(max(0.0, deadline - time.time()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(1.0)
            w.conn.close()
        self._workers = []
        self._queue.clear()

    # ------------------------------------------------------------------ jobs
    @property
    def in_flight(self) -> int:
        return len(self._queue) + sum(1 for w in self._workers if w.job is not None)

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the current workers (tests use them to kill one)."""
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def submit(self, job: TrialJob) -> None:
        self._queue.append(job)
        self._dispatch([])

    def _dispatch(self, outcomes: list[JobOutcome]) -> None:
        for w in self._workers:
            if not self._queue:
                return
            if w.job is not None:
                continue
            job = self._queue.popleft()
            w.job, w.started_at = job, time.time()
            # A dead worker cannot take it; wait() sees its sentinel and reports the job.
            with contextlib.suppress(OSError):
                w.conn.send(job)

    def _replace(self, w: _Worker) -> None:
        if w.process.is_alive():
            w.process.kill()
        w.process.join(5.0)
        w.conn.close()
        self._workers[self._workers.index(w)] = self._spawn(w.index)

    def _lost(self, w: _Worker, outcomes: list[JobOutcome], why: str, died: bool) -> None:
        """Report ``w``'s job (if any) as failed for reason ``why`` and replace the worker."""
        if not w.ready:
            # Died before it could say hello: its job never started, so it goes back to the
            # queue (no budget spent). Count it, so that a worker that cannot start at all stops
            # the run with a clear error instead of respawning forever.
            if w.job is not None:
                self._queue.appendleft(w.job)
                w.job = None
            if died and w.process.exitcode == UNGUARDED_EXIT:
                raise ExecutorError(_UNGUARDED.format(method=self.start_method))
            self._failed_starts += 1
            if self._failed_starts > 2 * self.capacity + 2:
                raise ExecutorError(
                    f"worker processes keep dying during start-up ({why}); check that the "
                    "evaluator can be imported and built in a fresh process, and that a script "
                    "runs its experiment under `if __name__ == \"__main__\":`"
                )
        elif w.job is not None:
            result = (timeout_result(w.job.timeout) if not died and w.job.timeout is not None
                      else Result.failed(why))
            outcomes.append(JobOutcome(w.job.number, result, w.job_started(), time.time(),
                                       worker_died=died, where=self._where(w)))
        self._replace(w)

    def _where(self, w: _Worker) -> dict[str, Any]:
        return {"node": self._host, "worker": w.process.pid}

    def wait(self, timeout: float | None = None) -> list[JobOutcome]:
        outcomes: list[JobOutcome] = []
        end = None if timeout is None else time.time() + timeout
        while not outcomes and self.in_flight:
            now = time.time()
            limit = None if end is None else max(0.0, end - now)
            for w in self._workers:  # wake up in time to enforce the nearest trial timeout
                if w.job is not None and w.job.timeout is not None and w.ready:
                    left = max(0.0, w.job_started() + w.job.timeout - now)
                    limit = left if limit is None else min(limit, left)
            handles: dict[Any, tuple[_Worker, bool]] = {}
            for w in self._workers:
                handles[w.conn] = (w, True)
                handles[w.process.sentinel] = (w, False)
            ready = mpc.wait(list(handles), timeout=limit)
            handled: set[int] = set()
            # Messages first: a worker may send its result and then die; the result counts.
            for h in sorted(ready, key=lambda r: not handles[r][1]):
                w, is_conn = handles[h]
                if id(w) in handled or w not in self._workers:
                    continue
                if is_conn:
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        handled.add(id(w))
                        self._lost(w, outcomes, self._died_text(w), died=True)
                        continue
                    self._on_message(w, msg, outcomes)
                else:
                    handled.add(id(w))
                    self._lost(w, outcomes, self._died_text(w), died=True)
            now = time.time()
            for w in list(self._workers):
                job = w.job
                if (job is not None and job.timeout is not None and w.ready
                        and now - w.job_started() >= job.timeout):
                    self._lost(w, outcomes, f"timeout after {job.timeout:g} s", died=False)
            self._dispatch(outcomes)
            if end is not None and time.time() >= end:
                break
        return outcomes

    def _died_text(self, w: _Worker) -> str:
        w.process.join(1.0)
        what = f"trial {w.job.number}" if w.job is not None else "no trial"
        return (f"worker process {w.process.pid} died while running {what}: "
                f"{_death_reason(w.process.exitcode)}")

    def _on_message(self, w: _Worker, msg: tuple[Any, ...], outcomes: list[JobOutcome]) -> None:
        kind = msg[0]
        if kind == "report":
            if w.job is not None and msg[1] == w.job.number:
                self.reported(int(msg[1]), int(msg[2]), float(msg[3]))
        elif kind == "ready":
            w.ready_at = time.time()
            self._failed_starts = 0
        elif kind == "done":
            outcome: JobOutcome = msg[1]
            if w.job is not None and outcome.number == w.job.number:
                outcomes.append(dataclasses.replace(outcome, where=self._where(w)))
                w.job = None
        elif kind == "job_error":
            if w.job is not None:
                outcomes.append(JobOutcome(w.job.number, Result.failed(msg[1]), w.started_at,
                                           time.time(), where=self._where(w)))
                w.job = None
        elif kind == "init_error":
            raise ExecutorError(
                f"a worker process cannot load the evaluator: {msg[1]}. With the spawn start "
                "method the evaluator's functions must be importable (module level, and a script "
                "must guard its experiment with `if __name__ == '__main__':`)"
            )

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "capacity": self.capacity, "threads": self.threads,
                "start_method": self.start_method}
