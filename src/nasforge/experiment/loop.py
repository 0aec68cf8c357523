"""The experiment loop: ask -> evaluate -> tell, with budget, constraints, storage and resume.

Resume works by replay. Every ask and tell gets a sequence number stored with its trial; the
strategy's state is snapshotted at the start and every few tells. On start, the loop loads the
newest snapshot and replays the events after it (asks must reproduce the recorded architectures;
tells pass the stored trials), then re-runs the trials that were running when the previous run
died. Each trial is stored before the strategy hears of it, so a ``kill -9`` at any moment loses no
finished trial and never runs one twice; for a deterministic evaluator the final result equals an
uninterrupted run.

The loop keeps as many trials in flight as the executor has capacity, asking the strategy one
architecture at a time (its ``pending`` list shows what is still running). By default results are
told in the order they arrive. With ``ordered=True`` they are told in ask order, so the strategy's
history depends only on the capacity, not on timing: a deterministic evaluator then gives identical
results on the inline executor (``InlineExecutor(capacity=N)``), a process pool or Ray.

Per trial the loop does O(1) work besides the strategy: one small SQLite transaction (WAL,
``synchronous=NORMAL``), no re-reading of stored trials, and strategy snapshots whose frequency
adapts so that they never take more than a few percent of the run. A new trial is written together
with the next tell: an ask that a crash loses was followed by no stored event, so the resumed
strategy simply asks it again, identically. When trials take a while, asks are written before
waiting, so that readers of the database (``nasforge show``) see the running trials.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

from nasforge.errors import ConfigError, StorageError
from nasforge.evaluators.base import EvalContext, Evaluator
from nasforge.experiment.budget import Budget
from nasforge.experiment.events import CallbackLike, Event, EventKind, as_callback
from nasforge.experiment.executors import (
    Executor,
    InlineExecutor,
    JobOutcome,
    TrialJob,
    as_executor,
)
from nasforge.experiment.inflight import InFlight
from nasforge.experiment.metric_checks import MetricChecks
from nasforge.experiment.pruners import Pruner
from nasforge.experiment.resume import (
    SnapshotPacer,
    Usage,
    claim_storage,
    last_seq,
    restore_strategy,
    unfinished,
)
from nasforge.experiment.schedulers import Scheduler, Slot
from nasforge.experiment.scheduling import RANDOM, TrialPlan
from nasforge.experiment.storage import SQLiteStorage, Storage, open_storage
from nasforge.space.base import SearchSpace
from nasforge.strategies.base import Strategy
from nasforge.trial import (
    Constraint,
    Objective,
    Trial,
    TrialStatus,
    as_constraints,
    as_objectives,
    best_trial,
    fidelity_rank,
)
from nasforge.utils.device import resolve_device
from nasforge.utils.rng import check_seed, derive_seed

log = logging.getLogger("nasforge.experiment")

#: Write new trials before waiting for results when the last wait took longer than this (s).
SLOW_WAIT = 0.005

#: Store the experiment's elapsed wall time at most this often (s); it is exact at the end.
ELAPSED_EVERY = 1.0


def _check_settings(space: SearchSpace, strategy: Strategy, budget: Budget, retries: int,
                    seed: int, trial_timeout: float | None) -> int:
    """Refuse settings that cannot work, naming the value; returns the checked seed."""
    if strategy.space is not space and strategy.space.name != space.name:
        raise ConfigError(
            f"the strategy searches space {strategy.space.name!r} but the experiment's space "
            f"is {space.name!r}"
        )
    if not isinstance(budget, Budget):
        raise ConfigError(f"budget must be a nasforge Budget, got {type(budget).__name__}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"retries must be an integer >= 0, got {retries!r}")
    if trial_timeout is not None and (isinstance(trial_timeout, bool)
                                      or not isinstance(trial_timeout, (int, float))
                                      or not trial_timeout > 0):
        raise ConfigError(f"trial_timeout must be a positive number or None, got {trial_timeout!r}")
    return check_seed(seed)


class Experiment:
    """One search: a space, a strategy, an evaluator, objectives, a budget and a storage.

    ``run()`` can be called again on the same storage (e.g. after a crash, or with a larger budget)
    and continues where the stored trials end. ``config`` is a JSON-able description stored with the
    experiment; a storage that holds a different config is refused, so two experiments never mix
    in one file. ``durability="full"`` makes a database path commit with ``synchronous=FULL``, so
    told trials also survive a power loss (see :class:`SQLiteStorage`).

    Parallelism: ``executor`` is an :class:`Executor`, a name (``"inline"``, ``"process"``,
    ``"ray"``) or None (inline for one worker, a process pool for ``workers`` > 1). A trial whose
    worker dies is re-submitted up to ``retries`` times, then recorded as failed. ``trial_timeout``
    fails a trial that runs longer (its worker is killed). ``ordered=True`` tells results in ask
    order, making results independent of the executor (see the module docstring).

    Constraints (``"params <= 1e6"``) are checked on ``evaluator.cheap_metrics(arch)`` before any
    evaluation when the evaluator knows the metric; such rejected proposals are stored as
    ``infeasible`` at no cost and do not count against ``max_trials``. Otherwise they are checked on
    the evaluated metrics and the trial is marked ``infeasible``.

    Every metric an objective or constraint names must be in a successful result. The evaluator is
    asked to compute them (:meth:`Evaluator.request_metrics`); when it declares what it produces
    (:meth:`Evaluator.produced_metrics`), an unknown name is refused here with the list of metrics
    it has. Otherwise a result without the metric fails its trial with the reason, and when no
    trial has ever had that metric the run stops with a ConfigError instead of spending its budget.
    The evaluator's :meth:`Evaluator.check_ready` (e.g. "is the dataset there?") runs here too,
    before the storage is opened, so a setup error leaves no empty database behind.
    """

    def __init__(
        self,
        space: SearchSpace,
        strategy: Strategy,
        evaluator: Evaluator,
        *,
        budget: Budget,
        objectives: Objective | str | Sequence[Objective | str] | None = None,
        constraints: Sequence[Constraint | str] | None = None,
        storage: Storage | str | None = None,
        executor: Executor | str | None = None,
        workers: int = 1,
        retries: int = 0,
        ordered: bool = False,
        seed: int = 0,
        device: str = "auto",
        fidelity: float | None = None,
        trial_timeout: float | None = None,
        callbacks: Sequence[CallbackLike] = (),
        config: dict[str, Any] | None = None,
        snapshot_every: int = 25,
        scheduler: Scheduler | str | None = None,
        pruner: Pruner | str | None = None,
        checkpoint_dir: str | None = None,
        durability: str | None = None,
    ) -> None:
        seed = _check_settings(space, strategy, budget, retries, seed, trial_timeout)
        self.space = space
        self.strategy = strategy
        self.evaluator = evaluator.bind(space)
        self.budget = budget
        self.objectives = (as_objectives(objectives) if objectives is not None
                           else strategy.objectives)
        self.constraints = as_constraints(constraints)
        #: Metric -> the objectives and constraints that name it (each must be in every result).
        self.checks = MetricChecks(self.evaluator, self.objectives, self.constraints)
        self.required_metrics = self.checks.uses
        self.plan = TrialPlan(space, strategy, self.evaluator, self.objectives[0],
                              scheduler=scheduler, pruner=pruner, fidelity=fidelity,
                              seed=seed, checkpoint_dir=checkpoint_dir)
        self.plan.check_budget(budget.max_trials)
        self.executor = as_executor(executor, workers)
        self.retries = retries
        self.ordered = bool(ordered)
        self.seed = int(seed)
        self._device_auto = device in (None, "auto")
        self.device = resolve_device(device)
        # Last, so that bad settings (above) or a missing dataset leave no empty database behind.
        self.evaluator.check_ready()
        self.storage = open_storage(storage, durability=durability)
        if checkpoint_dir is None and isinstance(self.storage, SQLiteStorage):
            # Rung checkpoints live next to the database, so a resumed run finds them.
            self.plan._checkpoint_root = f"{self.storage.path}.rungs"
        if isinstance(self.executor, InlineExecutor) and isinstance(self.storage, SQLiteStorage):
            # A crash of the driver during an inline trial is recorded beside the database.
            self.executor.crash_path = f"{self.storage.path}.crash"
        self.fidelity = fidelity
        self.trial_timeout = trial_timeout
        self.callbacks = [as_callback(c) for c in callbacks]
        self._pacer = SnapshotPacer(snapshot_every)
        self.config = config if config is not None else self._default_config()
        #: How the last run ended: "finished", "stopped", "interrupted" or "failed: ...".
        self.stop_reason = "not started"
        #: Asks during the last resume whose architecture differed from the recorded one.
        self.replay_mismatches = 0
        self._usage = Usage()
        self._seq = 0  # the sequence number of the last ask or tell
        self._started = 0.0
        self._next_number = 0
        self._pending: dict[int, InFlight] = {}  # insertion order = ask order
        self._trials: dict[int, Trial] | None = None  # cache of every trial while running
        self._best: Trial | None = None
        self._stop_requested = False
        self._unsaved: list[tuple[Trial, int]] = []  # asked trials not written yet
        self._elapsed_saved = 0.0
        self._last_wait = float("inf")

    # ------------------------------------------------------------------ public
    @property
    def objective(self) -> Objective:
        """The primary objective."""
        return self.objectives[0]

    @property
    def scheduler(self) -> Scheduler | None:
        """The multi-fidelity scheduler (None: every trial at one fidelity)."""
        return self.plan.scheduler

    @property
    def pruner(self) -> Pruner | None:
        """The pruner (None: trials are never stopped early)."""
        return self.plan.pruner

    @property
    def fidelity_spent(self) -> float:
        """Fidelity units (training epochs) spent so far, over all runs."""
        return self._usage.fidelity

    @property
    def trials(self) -> list[Trial]:
        """All trials, by number (from memory once the experiment ran, else from storage)."""
        if self._trials is None:
            return self.storage.trials()
        return list(self._trials.values())

    def best(self) -> Trial | None:
        """The best finished trial by the primary objective (O(1) once the experiment ran)."""
        if self._trials is None:
            return best_trial(self.storage.trials(TrialStatus.OK), self.objective)
        return self._best

    @property
    def elapsed(self) -> float:
        """Wall seconds this experiment has run, over all its runs."""
        now = time.time() - self._started if self._started else 0.0
        return self._usage.elapsed_before + now

    @property
    def usage(self) -> tuple[int, float, float]:
        """(trials counted against the budget, wall seconds, cost seconds) so far."""
        return self._usage.trials, self.elapsed, self._usage.cost

    def add_callback(self, callback: CallbackLike) -> None:
        """Subscribe a :class:`Callback` or a function ``fn(event)`` to this experiment's events."""
        self.callbacks.append(as_callback(callback))

    def stop(self) -> None:
        """Ask a running experiment to stop: no new trials start, running ones finish and count.

        Safe to call from a callback or another thread.
        """
        self._stop_requested = True

    def restore(self) -> list[Trial]:
        """Bring the strategy to the state recorded in storage; return the unfinished trials.

        :meth:`run` does this itself; call it to inspect a stored experiment's strategy.
        """
        self.check_config()
        self._restore()
        return [p.trial for p in self._pending.values() if p.done is None]

    def run(self) -> Experiment:
        """Run (or resume) until the budget is spent or :meth:`stop` is called. Returns ``self``.

        Ctrl-C (KeyboardInterrupt) stops the workers and re-raises; trials that were running stay
        ``running`` in storage and are evaluated again when ``run()`` is called next.
        """
        self.check_config()
        with self.storage.writer():
            self._restore()
            self._stop_requested = False
            self._started = time.time()
            self.stop_reason = "running"
            try:
                self.executor.report_sink = self._reported
                self.executor.start(self.evaluator)
                self._emit(EventKind.EXPERIMENT_STARTED)
                self._loop()
                self.stop_reason = "stopped" if self._stop_requested else "finished"
            except KeyboardInterrupt:
                self.stop_reason = "interrupted"
                raise
            except BaseException as exc:
                self.stop_reason = f"failed: {type(exc).__name__}: {exc}"
                raise
            finally:
                self.executor.shutdown()
                self.plan.close()
                self._usage.elapsed_before = self.elapsed
                self._started = 0.0
                try:  # running trials stay visible as 'running'; they re-run on resume
                    self.storage.record(self._unsaved, meta={"elapsed": self.elapsed})
                    self._unsaved = []
                except StorageError as exc:  # never hide the original error behind this one
                    log.warning("could not store the last asks and elapsed time: %s", exc)
                self._emit(EventKind.EXPERIMENT_ENDED, message=self.stop_reason)
        return self

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        for p in list(self._pending.values()):  # trials that were running when the last run died
            if p.done is None:
                self._submit(p)
        self._tell_ready()
        while True:
            self._fill()
            if not self._pending:
                return
            if self._unsaved and self._last_wait > SLOW_WAIT:
                self._flush_asks()  # trials take a while: let readers see them running
            t0 = time.perf_counter()
            outcomes = self.executor.wait(timeout=1.0)
            self._last_wait = time.perf_counter() - t0
            for outcome in outcomes:
                self._on_outcome(outcome)
            self._tell_ready()

    def _flush_asks(self) -> None:
        self.storage.record(self._unsaved)
        self._unsaved = []

    def _exhausted(self) -> bool:
        u = self._usage
        return self.budget.exhausted(u.trials, self.elapsed, u.cost, u.fidelity)

    def _fill(self) -> None:
        """Ask while there is free capacity (buffered results hold their slot in ordered mode)."""
        while (len(self._pending) < self.executor.capacity and not self._stop_requested
               and not self._exhausted()):
            slot = self.plan.next_slot()
            if slot is None:  # a synchronous scheduler waits for its rung to finish
                if not self._pending:
                    raise RuntimeError("the scheduler waits although no trial is running")
                return
            self._ask_one(slot)

    def _ask_one(self, slot: Slot | bool = True) -> None:
        number = self._next_number
        arch, fidelity, info = self.plan.propose(slot, number)
        self._next_number += 1
        parent = slot.parent if isinstance(slot, Slot) else None
        # A promotion continues its configuration's run: same seed (data order, initialization).
        seed = parent.seed if parent is not None else derive_seed(self.seed, number)
        trial = Trial(number=number, arch=arch, seed=seed, fidelity=fidelity,
                      started_at=time.time(), info=info)
        cheap, rejection = (self.checks.precheck(arch) if self.constraints and parent is None
                            else (None, None))
        if rejection is not None:
            # Rejected before evaluation: it takes no rung slot (the scheduler never sees it), but
            # keeps a uniform draw's mark, so that on resume it does not ask the strategy.
            if info.get(RANDOM):
                rejection = dataclasses.replace(rejection, info={**rejection.info, RANDOM: True})
            trial = Trial(number=number, arch=arch, seed=seed, fidelity=fidelity,
                          started_at=trial.started_at)
        self._seq += 1
        self.plan.asked(number, self._seq)
        self._unsaved.append((trial, self._seq))  # written with the next tell (or flush)
        self._cache(trial)
        # A crash of cheap_metrics is a failed trial like any other, so it counts against the
        # budget (a broken build would otherwise be retried for free without end).
        infeasible = rejection is not None and rejection.status is TrialStatus.INFEASIBLE
        if not infeasible:
            self._usage.trials += 1
        if rejection is not None:
            self._tell(trial.finish(rejection, trial.started_at))
            self.checks.count_proposal(infeasible)
            return
        self.checks.count_proposal(False)
        self.plan.started(trial)
        p = InFlight(trial, cheap=cheap)
        self._pending[number] = p
        self._submit(p)

    def _submit(self, p: InFlight) -> None:
        job = TrialJob(p.trial.number, p.trial.arch, self._context(p.trial),
                       timeout=self.trial_timeout, attempt=p.attempts,
                       device_auto=self._device_auto)
        self.executor.submit(job)
        if p.attempts == 0:
            self._emit(EventKind.TRIAL_STARTED, p.trial)

    def _context(self, trial: Trial) -> EvalContext:
        deadline = None
        if self.trial_timeout is not None:
            deadline = time.time() + self.trial_timeout
        if self.budget.max_seconds is not None:
            budget_end = time.time() + max(self.budget.max_seconds - self.elapsed, 0.0)
            deadline = budget_end if deadline is None else min(deadline, budget_end)
        extra = self.plan.context(trial)
        return EvalContext(seed=trial.seed, device=self.device, fidelity=trial.fidelity,
                           trial_number=trial.number, deadline=deadline,
                           constraints=self.constraints, **extra)

    def _on_outcome(self, outcome: JobOutcome) -> None:
        p = self._pending.get(outcome.number)
        if p is None or p.done is not None:
            log.warning("ignoring an unexpected result for trial %d", outcome.number)
            return
        if p.retry(outcome, self.retries):
            self._emit(EventKind.TRIAL_RETRIED, p.trial, message=outcome.result.error or "")
            self._submit(p)
            return
        assert self._trials is not None
        done, never_seen = p.finish(outcome, self.checks, self.plan, self._trials)
        if self.ordered:
            # Keep the result safe now; the strategy hears of it when its turn comes.
            self.storage.record(self._unsaved, [(done, None)])
            self._unsaved = []
            self._cache(done)
        else:
            self._tell(done)
        if never_seen:  # every further trial would fail the same way (this one is stored)
            raise self.checks.never_seen_error(done.number, never_seen, done.metrics)

    def _tell_ready(self) -> None:
        """Tell finished trials at the head of the ask order (ordered mode buffers the rest).

        Refilling right after each tell makes the schedule a function of the capacity alone:
        the ask of trial n + capacity always follows the tell of trial n, however many results
        one ``wait`` returned.
        """
        while self._pending:
            head = next(iter(self._pending.values()))
            if head.done is None:
                return
            self._tell(head.done)
            self._fill()

    def _tell(self, done: Trial) -> None:
        self._seq += 1
        self._usage.add(done)
        meta = None
        now = time.time()
        if now - self._elapsed_saved >= ELAPSED_EVERY:
            meta, self._elapsed_saved = {"elapsed": self.elapsed}, now
        self.storage.record(self._unsaved, [(done, self._seq)], meta)
        self._unsaved = []
        self._pending.pop(done.number, None)
        self._cache(done)
        # A scheduler may defer or skip what the strategy hears.
        for heard in self.plan.told(done, self._seq):
            self.strategy.tell(heard)
        if self._pacer.told():
            t0 = time.perf_counter()
            self.storage.save_snapshot(self._seq, self.strategy.state_dict())
            self._pacer.took(t0, time.perf_counter())
        failed = done.status is TrialStatus.FAILED
        self._emit(EventKind.TRIAL_FAILED if failed else EventKind.TRIAL_FINISHED, done)

    def _cache(self, trial: Trial) -> None:
        assert self._trials is not None
        self._trials[trial.number] = trial
        if fidelity_rank(trial, self.objective) is not None:  # O(1): the old best or this one
            rivals = [trial] if self._best is None else [self._best, trial]
            self._best = best_trial(rivals, self.objective)

    def _reported(self, number: int, step: int, value: float) -> None:
        """A running trial's ``ctx.report``, live from the executor: a ``trial_reported`` event."""
        p = self._pending.get(number)
        if p is not None and p.done is None:
            self._emit(EventKind.TRIAL_REPORTED, p.trial, step=step, value=value)

    def _emit(self, kind: EventKind, trial: Trial | None = None, message: str = "",
              step: int | None = None, value: float | None = None) -> None:
        if not self.callbacks:
            return
        event = Event(kind, time.time(), trial, message, step, value)
        for cb in self.callbacks:
            cb.on_event(self, event)

    # ------------------------------------------------------------------ config and resume
    def _default_config(self) -> dict[str, Any]:
        return {
            "space": self.space.describe(),
            "strategy": self.strategy.name,
            "evaluator": self.evaluator.describe(),
            "objectives": [[o.metric, o.direction] for o in self.objectives],
            "constraints": [str(c) for c in self.constraints],
            "seed": self.seed,
            **self.plan.describe(),
        }

    def check_config(self) -> None:
        """Refuse a storage that holds a different experiment; claim an empty one.

        :meth:`run` calls this first. Call it yourself before writing anything else into the
        storage (the CLI stores its settings only once the storage is known to be this
        experiment's), so that a refused run changes nothing.
        """
        claim_storage(self.storage, self.config)

    def _restore(self) -> None:
        """Restore the strategy and the loop's counters from storage (snapshot + replay)."""
        stored = self.storage.stored_trials()
        self._seq = last_seq(stored)
        self._next_number = (stored[-1].trial.number + 1) if stored else 0
        self._usage = Usage.of(stored, float(self.storage.get_meta("elapsed") or 0.0))
        self._trials = {s.trial.number: s.trial for s in stored}
        self._best = best_trial(list(self._trials.values()), self.objective)
        self.checks.restore(list(self._trials.values()))
        self.replay_mismatches = restore_strategy(self.storage, self.strategy, self.plan, stored)
        self._pending = {t.number: InFlight(t, done=done) for t, done in unfinished(stored)}
        self._pacer.reset()
        self._unsaved = []
        self._elapsed_saved = 0.0
        self._last_wait = float("inf")
