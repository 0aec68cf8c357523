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

import logging
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nasforge.errors import ConfigError, StorageError
from nasforge.evaluators.base import EvalContext, Evaluator
from nasforge.experiment.budget import Budget
from nasforge.experiment.events import CallbackLike, Event, EventKind, as_callback
from nasforge.experiment.executors import Executor, JobOutcome, TrialJob, make_executor
from nasforge.experiment.storage import Storage, StoredTrial, dumps, open_storage
from nasforge.space.base import SearchSpace
from nasforge.strategies.base import Strategy
from nasforge.trial import (
    Constraint,
    Objective,
    Result,
    Trial,
    TrialStatus,
    as_constraints,
    as_objectives,
    metric_uses,
)
from nasforge.utils.device import resolve_device
from nasforge.utils.rng import check_seed, derive_seed

log = logging.getLogger("nasforge.experiment")

#: ``Trial.info`` key marking a proposal rejected by a constraint before any evaluation; such
#: trials cost nothing and do not count against ``Budget.max_trials``.
REJECTED = "rejected_before_evaluation"

#: Give up when the constraints reject this many proposals in a row (they are probably too tight).
MAX_REJECTED_IN_A_ROW = 10_000

#: Write new trials before waiting for results when the last wait took longer than this (s).
SLOW_WAIT = 0.005

#: Store the experiment's elapsed wall time at most this often (s); it is exact at the end.
ELAPSED_EVERY = 1.0


def best_trial(trials: Sequence[Trial], objective: Objective) -> Trial | None:
    """The OK trial with the best value of ``objective`` (lowest number wins ties), or None."""
    best: Trial | None = None
    best_score = float("-inf")
    for t in trials:
        s = objective.score(t)
        if s is not None and (s > best_score or (s == best_score and best is not None
                                                 and t.number < best.number)):
            best, best_score = t, s
    return best


@dataclass
class _Usage:
    trials: int = 0  # evaluated (or running) trials; rejected proposals are not counted
    cost: float = 0.0
    elapsed_before: float = 0.0  # wall seconds spent by earlier runs of this experiment


@dataclass(eq=False)
class _Pending:
    """A trial that was asked and is not told yet: running, or finished and waiting its turn."""

    trial: Trial
    done: Trial | None = None
    attempts: int = 0
    cheap: dict[str, float] | None = None  # cheap_metrics of the architecture, once computed


def _check_positive(name: str, value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not value > 0):
        raise ConfigError(f"{name} must be a positive number or None, got {value!r}")


class Experiment:
    """One search: a space, a strategy, an evaluator, objectives, a budget and a storage.

    ``run()`` can be called again on the same storage (e.g. after a crash, or with a larger budget)
    and continues where the stored trials end. ``config`` is a JSON-able description stored with the
    experiment; a storage that holds a different config is refused, so two experiments never mix
    in one file.

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
    ) -> None:
        if strategy.space is not space and strategy.space.name != space.name:
            raise ConfigError(
                f"the strategy searches space {strategy.space.name!r} but the experiment's space "
                f"is {space.name!r}"
            )
        if not isinstance(budget, Budget):
            raise ConfigError(f"budget must be a nasforge Budget, got {type(budget).__name__}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"retries must be an integer >= 0, got {retries!r}")
        seed = check_seed(seed)
        _check_positive("trial_timeout", trial_timeout)
        self.space = space
        self.strategy = strategy
        self.evaluator = evaluator.bind(space)
        self.budget = budget
        self.objectives = (as_objectives(objectives) if objectives is not None
                           else strategy.objectives)
        self.constraints = as_constraints(constraints)
        #: Metric -> the objectives and constraints that name it (each must be in every result).
        self.required_metrics = metric_uses(self.objectives, self.constraints)
        self.evaluator.request_metrics(self.required_metrics)
        self._check_metric_names()
        if isinstance(executor, Executor):
            if workers != 1:
                raise ConfigError(
                    f"workers={workers} was given together with an executor object; set the number "
                    "of workers on the executor instead"
                )
            self.executor = executor
        else:
            self.executor = make_executor(executor, workers)
        self.retries = retries
        self.ordered = bool(ordered)
        self.seed = int(seed)
        self._device_auto = device in (None, "auto")
        self.device = resolve_device(device)
        # Last, so that bad settings (above) or a missing dataset leave no empty database behind.
        self.evaluator.check_ready()
        self.storage = open_storage(storage)
        self.fidelity = fidelity
        self.trial_timeout = trial_timeout
        self.callbacks = [as_callback(c) for c in callbacks]
        self.snapshot_every = max(1, int(snapshot_every))
        self.config = config if config is not None else self._default_config()
        #: How the last run ended: "finished", "stopped", "interrupted" or "failed: ...".
        self.stop_reason = "not started"
        #: Asks during the last resume whose architecture differed from the recorded one.
        self.replay_mismatches = 0
        self._usage = _Usage()
        self._seq = 0
        self._started = 0.0
        self._next_number = 0
        self._pending: dict[int, _Pending] = {}  # insertion order = ask order
        self._trials: dict[int, Trial] | None = None  # cache of every trial while running
        self._best: Trial | None = None
        self._stop_requested = False
        self._rejected_in_a_row = 0
        self._tells_since_snapshot = 0
        self._snapshot_interval = self.snapshot_every
        self._last_snapshot = 0.0
        self._unsaved: list[tuple[Trial, int]] = []  # asked trials not written yet
        self._elapsed_saved = 0.0
        self._last_wait = float("inf")
        self._metrics_seen: set[str] = set()  # every metric name some trial's result had

    # ------------------------------------------------------------------ public
    @property
    def objective(self) -> Objective:
        """The primary objective."""
        return self.objectives[0]

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
        return self.budget.exhausted(u.trials, self.elapsed, u.cost)

    def _fill(self) -> None:
        """Ask while there is free capacity (buffered results hold their slot in ordered mode)."""
        while (len(self._pending) < self.executor.capacity and not self._stop_requested
               and not self._exhausted()):
            self._ask_one()

    def _ask_one(self) -> None:
        arch = self.strategy.ask()
        number = self._next_number
        self._next_number += 1
        trial = Trial(number=number, arch=arch, seed=derive_seed(self.seed, number),
                      fidelity=self.fidelity, started_at=time.time())
        self._seq += 1
        self._unsaved.append((trial, self._seq))  # written with the next tell (or flush)
        self._cache(trial)
        cheap, rejection = self._precheck(arch) if self.constraints else (None, None)
        if rejection is not None and rejection.status is TrialStatus.FAILED:
            # cheap_metrics crashed: a failed trial like any other, so it counts against the
            # budget (a broken build would otherwise be retried for free without end).
            self._rejected_in_a_row = 0
            self._usage.trials += 1
            self._tell(trial.finish(rejection, trial.started_at))
            return
        if rejection is not None:
            self._rejected_in_a_row += 1
            done = trial.finish(rejection, trial.started_at)
            self._tell(done)
            if self._rejected_in_a_row >= MAX_REJECTED_IN_A_ROW:
                raise ConfigError(
                    f"the constraints rejected {MAX_REJECTED_IN_A_ROW:,} proposals in a row: "
                    + ", ".join(map(str, self.constraints)) + "; loosen them"
                )
            return
        self._rejected_in_a_row = 0
        self._usage.trials += 1
        p = _Pending(trial, cheap=cheap)
        self._pending[number] = p
        self._submit(p)

    def _precheck(self, arch: Any) -> tuple[dict[str, float] | None, Result | None]:
        """``(cheap_metrics, rejection)``: the rejection Result is None when no constraint is
        broken by the metrics known before evaluation."""
        try:
            cheap = dict(self.evaluator.cheap_metrics(arch))
        except Exception as exc:  # the same failure would hit the evaluation; record it
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            return None, Result(status=TrialStatus.FAILED, cost=0.0,
                                error=f"cheap_metrics failed: {type(exc).__name__}: {exc}\n{text}")
        broken = [c for c in self.constraints if c.satisfied(cheap) is False]
        if not broken:
            return cheap, None
        return cheap, Result(metrics=cheap, cost=0.0, status=TrialStatus.INFEASIBLE,
                             error="violates " + ", ".join(map(str, broken)),
                             info={REJECTED: True})

    def _cheap_for(self, p: _Pending) -> dict[str, float]:
        """The pending trial's cheap metrics, computed now if the precheck did not run."""
        if p.cheap is None:
            try:
                p.cheap = dict(self.evaluator.cheap_metrics(p.trial.arch))
            except Exception as exc:  # the result then simply lacks the metric
                log.debug("cheap_metrics failed for trial %d: %s", p.trial.number, exc)
                p.cheap = {}
        return p.cheap

    def _check_metric_names(self) -> None:
        """Refuse objective/constraint metrics the evaluator declares it cannot produce."""
        produced = self.evaluator.produced_metrics()
        if produced is None:
            return
        unknown = [m for m in self.required_metrics if m not in produced]
        if unknown:
            raise ConfigError(
                f"evaluator {self.evaluator.name!r} does not produce the metric(s) "
                f"{self._uses(unknown)}; "
                f"its metrics are: {', '.join(sorted(produced))}"
            )

    def _uses(self, names: list[str]) -> str:
        """``'acuracy' (named by objective max:acuracy); ...`` for error messages."""
        return "; ".join(f"{m!r} (named by {', '.join(self.required_metrics[m])})" for m in names)

    def _missing_metrics(self, p: _Pending, metrics: dict[str, float]) -> list[str]:
        """Required metrics a successful result lacks; fills in those ``cheap_metrics`` know."""
        missing = [m for m in self.required_metrics if m not in metrics]
        if missing:
            cheap = self._cheap_for(p)
            metrics.update({m: cheap[m] for m in missing if m in cheap})
            missing = [m for m in missing if m not in metrics]
        return missing

    def _submit(self, p: _Pending) -> None:
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
        return EvalContext(seed=trial.seed, device=self.device, fidelity=trial.fidelity,
                           trial_number=trial.number, deadline=deadline,
                           constraints=self.constraints)

    def _on_outcome(self, outcome: JobOutcome) -> None:
        p = self._pending.get(outcome.number)
        if p is None or p.done is not None:
            log.warning("ignoring an unexpected result for trial %d", outcome.number)
            return
        if outcome.worker_died and p.attempts < self.retries:
            p.attempts += 1
            self._emit(EventKind.TRIAL_RETRIED, p.trial, message=outcome.result.error or "")
            self._submit(p)
            return
        t, result = p.trial, outcome.result
        status, error, info = result.status, result.error, dict(result.info)
        metrics = dict(result.metrics)
        if p.attempts:
            info["attempts"] = p.attempts + 1
        never_seen: list[str] = []
        if status is TrialStatus.OK:
            missing = self._missing_metrics(p, metrics)
            if missing:
                status = TrialStatus.FAILED
                error = (f"the result has no metric {self._uses(missing)}; it has: "
                         f"{', '.join(sorted(metrics)) or '(no metrics)'}")
                never_seen = [m for m in missing if m not in self._metrics_seen]
        self._metrics_seen.update(metrics)
        if status is TrialStatus.OK and self.constraints:
            broken = [c for c in self.constraints if c.satisfied(metrics) is False]
            if broken:
                status, error = TrialStatus.INFEASIBLE, "violates " + ", ".join(map(str, broken))
        cost = (result.cost if result.cost is not None
                else max(outcome.finished_at - outcome.started_at, 0.0))
        done = Trial(number=t.number, arch=t.arch, status=status, metrics=metrics,
                     cost=float(cost), error=error, info=info, seed=t.seed, fidelity=t.fidelity,
                     started_at=outcome.started_at, finished_at=outcome.finished_at)
        p.done = done
        if self.ordered:
            # Keep the result safe now; the strategy hears of it when its turn comes.
            self.storage.record(self._unsaved, [(done, None)])
            self._unsaved = []
            self._cache(done)
        else:
            self._tell(done)
        if never_seen:
            # No result so far had it: a typo or a metric this evaluator never produces. Every
            # further trial would fail the same way, so stop now (the failed trial is stored).
            raise ConfigError(
                f"stopped after trial {t.number}: its result has no metric "
                f"{', '.join(map(repr, never_seen))}, which "
                f"{'; '.join(u for m in never_seen for u in self.required_metrics[m])} names; "
                f"the evaluator produced: {', '.join(sorted(metrics)) or '(no metrics)'}. "
                "Fix the objective or constraint, or make the evaluator return that metric"
            )

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
        self._usage.cost += done.cost
        meta = None
        now = time.time()
        if now - self._elapsed_saved >= ELAPSED_EVERY:
            meta, self._elapsed_saved = {"elapsed": self.elapsed}, now
        self.storage.record(self._unsaved, [(done, self._seq)], meta)
        self._unsaved = []
        self._pending.pop(done.number, None)
        self._cache(done)
        self.strategy.tell(done)
        self._tells_since_snapshot += 1
        if self._tells_since_snapshot >= self._snapshot_interval:
            self._snapshot()
        failed = done.status is TrialStatus.FAILED
        self._emit(EventKind.TRIAL_FAILED if failed else EventKind.TRIAL_FINISHED, done)

    def _snapshot(self) -> None:
        """Save the strategy's state; back off when snapshots cost more than ~5% of the run."""
        t0 = time.perf_counter()
        self.storage.save_snapshot(self._seq, self.strategy.state_dict())
        t1 = time.perf_counter()
        spent, window = t1 - t0, max(t0 - self._last_snapshot, 1e-9)
        if spent > 0.05 * window:
            self._snapshot_interval *= 2  # e.g. a strategy whose state grows with every trial
        elif spent < 0.01 * window and self._snapshot_interval > self.snapshot_every:
            self._snapshot_interval //= 2
        self._last_snapshot = t1
        self._tells_since_snapshot = 0

    def _cache(self, trial: Trial) -> None:
        assert self._trials is not None
        self._trials[trial.number] = trial
        score = self.objective.score(trial)
        if score is not None:
            best = self._best
            best_score = None if best is None else self.objective.score(best)
            if (best is None or best_score is None or score > best_score
                    or (score == best_score and trial.number < best.number)):
                self._best = trial

    def _emit(self, kind: EventKind, trial: Trial | None = None, message: str = "") -> None:
        if not self.callbacks:
            return
        event = Event(kind, time.time(), trial, message)
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
        }

    def check_config(self) -> None:
        """Refuse a storage that holds a different experiment; claim an empty one.

        :meth:`run` calls this first. Call it yourself before writing anything else into the
        storage (the CLI stores its settings only once the storage is known to be this
        experiment's), so that a refused run changes nothing.
        """
        stored = self.storage.get_meta("config")
        if stored is None:
            self.storage.set_meta("config", self.config)
            return
        mine = _jsonish(self.config)
        if stored != mine:
            if not isinstance(stored, dict) or not isinstance(mine, dict):
                raise StorageError(
                    f"the storage holds a different experiment (stored config {stored!r:.200}, "
                    f"now {mine!r:.200}). Use a new storage path, or the same settings to resume."
                )
            diffs = [k for k in sorted(set(stored) | set(mine)) if stored.get(k) != mine.get(k)]
            raise StorageError(
                "the storage holds a different experiment; differing keys: "
                + ", ".join(f"{k} (stored {stored.get(k)!r}, now {mine.get(k)!r})"
                            for k in diffs[:5])
                + ". Use a new storage path, or the same settings to resume."
            )

    def _restore(self) -> None:
        """Restore the strategy and the loop's counters from storage (snapshot + replay)."""
        stored = self.storage.stored_trials()
        seqs = [0] + [s.ask_seq for s in stored] + [s.tell_seq for s in stored if s.tell_seq]
        self._seq = max(seqs)
        self._next_number = (stored[-1].trial.number + 1) if stored else 0
        self._usage = _Usage(
            trials=sum(1 for s in stored if not s.trial.info.get(REJECTED)),
            cost=sum(s.trial.cost for s in stored if s.tell_seq is not None),
            elapsed_before=float(self.storage.get_meta("elapsed") or 0.0),
        )
        self._trials = {}
        self._best = None
        self._metrics_seen = set()
        for s in stored:
            self._cache(s.trial)
            self._metrics_seen.update(s.trial.metrics)
        snap = self.storage.latest_snapshot()
        start_seq = 0
        if snap is not None:
            start_seq, state = snap
            self.strategy.load_state_dict(state)
        self.replay_mismatches = self._replay(stored, start_seq)
        if snap is None:
            # The state before any ask (or, for a file written without snapshots, after the replay):
            # a later run() in this process restarts from it instead of from its own memory.
            self.storage.save_snapshot(self._seq, self.strategy.state_dict())
        self._pending = {}
        now = time.time()
        for s in sorted(stored, key=lambda s: s.ask_seq):
            if s.tell_seq is not None:
                continue
            t = s.trial
            fresh = Trial(number=t.number, arch=t.arch, seed=t.seed, fidelity=t.fidelity,
                          started_at=now)
            self._pending[t.number] = _Pending(fresh, done=t if t.status.finished else None)
        self._tells_since_snapshot = 0
        self._snapshot_interval = self.snapshot_every
        self._last_snapshot = time.perf_counter()
        self._rejected_in_a_row = 0
        self._unsaved = []
        self._elapsed_saved = 0.0
        self._last_wait = float("inf")

    def _replay(self, stored: list[StoredTrial], start_seq: int) -> int:
        """Replay the asks and tells after ``start_seq``; return how many asks differed."""
        events: list[tuple[int, bool, StoredTrial]] = []
        for s in stored:
            if s.ask_seq > start_seq:
                events.append((s.ask_seq, False, s))
            if s.tell_seq is not None and s.tell_seq > start_seq:
                events.append((s.tell_seq, True, s))
        events.sort(key=lambda e: e[0])
        mismatches = 0
        for _, is_tell, s in events:
            if is_tell:
                self.strategy.tell(s.trial)
                continue
            arch = self.strategy.ask()
            if arch != s.trial.arch:
                # A strategy that is not seeded: keep the recorded history authoritative.
                mismatches += 1
                self.strategy.pending[-1] = s.trial.arch
        if mismatches:
            log.warning("resume: the strategy proposed %d architecture(s) that differ from the "
                        "recorded ones (is it seeded?); the recorded history was used", mismatches)
        return mismatches


def _jsonish(obj: Any) -> Any:
    """What ``obj`` looks like after a JSON round trip (tuples -> lists), for comparisons."""
    import json

    return json.loads(dumps(obj))
