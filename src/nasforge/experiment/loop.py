"""The experiment loop: ask -> evaluate -> tell, with budget, constraints, storage and resume.

Resume works by replay. Every ask and tell gets a sequence number stored with its trial; the
strategy's state is snapshotted every few tells. On start, the loop loads the newest snapshot and
replays the events after it (asks must reproduce the recorded architectures; tells pass the stored
trials), then re-runs the trials that were running when the previous run died. For a deterministic
evaluator the result equals an uninterrupted run, and no finished trial is lost or run twice.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nasforge.errors import ConfigError, StorageError
from nasforge.evaluators.base import EvalContext, Evaluator
from nasforge.experiment.budget import Budget
from nasforge.experiment.events import Callback
from nasforge.experiment.executors import Executor, InlineExecutor, JobOutcome, TrialJob
from nasforge.experiment.storage import Storage, StoredTrial, open_storage
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
)
from nasforge.utils.device import resolve_device
from nasforge.utils.rng import derive_seed

log = logging.getLogger("nasforge.experiment")


def best_trial(trials: Sequence[Trial], objective: Objective) -> Trial | None:
    """The OK trial with the best value of ``objective`` (earliest wins ties), or None."""
    best: Trial | None = None
    best_score = float("-inf")
    for t in trials:
        s = objective.score(t)
        if s is not None and s > best_score:
            best, best_score = t, s
    return best


@dataclass
class _Usage:
    trials: int = 0
    cost: float = 0.0
    elapsed_before: float = 0.0  # wall seconds spent by earlier runs of this experiment


class Experiment:
    """One search: a space, a strategy, an evaluator, objectives, a budget and a storage.

    ``run()`` can be called again on the same storage (e.g. after a crash) and continues where the
    stored trials end. ``config`` is a JSON-able description stored with the experiment; a storage
    that holds a different config is refused, so two experiments never mix in one file.
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
        executor: Executor | None = None,
        seed: int = 0,
        device: str = "auto",
        fidelity: float | None = None,
        trial_timeout: float | None = None,
        callbacks: Sequence[Callback] = (),
        config: dict[str, Any] | None = None,
        snapshot_every: int = 25,
    ) -> None:
        if strategy.space is not space:
            if strategy.space.name != space.name:
                raise ConfigError(
                    f"the strategy searches space {strategy.space.name!r} but the experiment's space "
                    f"is {space.name!r}"
                )
        if not isinstance(budget, Budget):
            raise ConfigError(f"budget must be a nasforge Budget, got {type(budget).__name__}")
        self.space = space
        self.strategy = strategy
        self.evaluator = evaluator.bind(space)
        self.budget = budget
        self.objectives = as_objectives(objectives) if objectives is not None else strategy.objectives
        self.constraints = as_constraints(constraints)
        self.storage = open_storage(storage)
        self.executor = executor if executor is not None else InlineExecutor()
        self.seed = int(seed)
        self.device = resolve_device(device)
        self.fidelity = fidelity
        self.trial_timeout = trial_timeout
        self.callbacks = list(callbacks)
        self.snapshot_every = max(1, int(snapshot_every))
        self.config = config if config is not None else self._default_config()
        self._usage = _Usage()
        self._seq = 0
        self._started = 0.0
        self.replay_mismatches = 0
        self._tells_since_snapshot = 0
        self._rejected_in_a_row = 0

    # ------------------------------------------------------------------ public
    @property
    def objective(self) -> Objective:
        """The primary objective."""
        return self.objectives[0]

    @property
    def trials(self) -> list[Trial]:
        """All stored trials, by number."""
        return self.storage.trials()

    def best(self) -> Trial | None:
        """The best finished trial by the primary objective."""
        return best_trial(self.trials, self.objective)

    @property
    def elapsed(self) -> float:
        """Wall seconds this experiment has run, over all its runs."""
        now = time.time() - self._started if self._started else 0.0
        return self._usage.elapsed_before + now

    @property
    def usage(self) -> tuple[int, float, float]:
        """(trials started, wall seconds, cost seconds) so far."""
        return self._usage.trials, self.elapsed, self._usage.cost

    def run(self) -> Experiment:
        """Run (or resume) until the budget is spent. Returns ``self``."""
        self._check_config()
        rerun = self._resume()
        self._started = time.time()
        self.executor.start(self.evaluator)
        for cb in self.callbacks:
            cb.on_experiment_start(self)
        running: dict[int, Trial] = {}
        try:
            while True:
                while self.executor.in_flight < self.executor.capacity and not self._exhausted(len(running)):
                    trial = self._next_trial(rerun)
                    if trial is None:
                        break
                    if trial.status.finished:  # rejected by a constraint before evaluation
                        continue
                    running[trial.number] = trial
                    self.executor.submit(TrialJob(trial.number, trial.arch, self._context(trial)))
                if not running:
                    break
                for outcome in self.executor.wait(timeout=1.0):
                    self._finish(running.pop(outcome.number), outcome)
        finally:
            self.executor.shutdown()
            self._usage.elapsed_before = self.elapsed
            self._started = 0.0
            for cb in self.callbacks:
                cb.on_experiment_end(self)
        return self

    # ------------------------------------------------------------------ internals
    def _default_config(self) -> dict[str, Any]:
        return {
            "space": self.space.describe(),
            "strategy": self.strategy.name,
            "evaluator": self.evaluator.describe(),
            "objectives": [[o.metric, o.direction] for o in self.objectives],
            "constraints": [str(c) for c in self.constraints],
            "seed": self.seed,
        }

    def _check_config(self) -> None:
        stored = self.storage.get_meta("config")
        if stored is None:
            self.storage.set_meta("config", self.config)
            return
        mine = _jsonish(self.config)
        if stored != mine:
            diffs = [k for k in sorted(set(stored) | set(mine)) if stored.get(k) != mine.get(k)]
            raise StorageError(
                "the storage holds a different experiment; differing keys: "
                + ", ".join(f"{k} (stored {stored.get(k)!r}, now {mine.get(k)!r})" for k in diffs[:5])
                + ". Use a new storage path, or the same settings to resume."
            )

    def _resume(self) -> list[Trial]:
        """Restore the strategy from the stored events; return trials to re-run."""
        stored = self.storage.stored_trials()
        self._usage = _Usage(
            trials=len(stored),
            cost=sum(s.trial.cost for s in stored if s.trial.status.finished),
            elapsed_before=float(self.storage.get_meta("elapsed") or 0.0),
        )
        snap = self.storage.latest_snapshot()
        start_seq = 0
        if snap is not None:
            start_seq, state = snap
            self.strategy.load_state_dict(state)
        events: list[tuple[int, int, StoredTrial]] = []
        for s in stored:
            if s.ask_seq > start_seq:
                events.append((s.ask_seq, 0, s))
            if s.tell_seq is not None and s.tell_seq > start_seq:
                events.append((s.tell_seq, 1, s))
        events.sort(key=lambda e: e[0])
        for _, kind, s in events:
            if kind == 0:
                arch = self.strategy.ask()
                if arch != s.trial.arch:
                    # A non-deterministic strategy: keep the recorded history authoritative.
                    self.replay_mismatches += 1
                    self.strategy.pending[-1] = s.trial.arch
            else:
                self.strategy.tell(s.trial)
        self._seq = max([start_seq] + [s.ask_seq for s in stored]
                        + [s.tell_seq for s in stored if s.tell_seq is not None])
        if self.replay_mismatches:
            log.warning("resume: the strategy proposed %d architecture(s) that differ from the recorded "
                        "ones (is it seeded?); the recorded history was used", self.replay_mismatches)
        rerun = [s.trial for s in sorted(stored, key=lambda s: s.ask_seq) if not s.trial.status.finished]
        return rerun

    def _exhausted(self, running: int) -> bool:
        u = self._usage
        return self.budget.exhausted(u.trials, self.elapsed, u.cost)

    def _next_trial(self, rerun: list[Trial]) -> Trial | None:
        if rerun:
            old = rerun.pop(0)
            trial = Trial(number=old.number, arch=old.arch, seed=old.seed, fidelity=old.fidelity,
                          started_at=time.time())
            # The ask was recorded and counted in the previous run; only the evaluation is repeated.
            for cb in self.callbacks:
                cb.on_trial_start(self, trial)
            return trial
        arch = self.strategy.ask()
        number = self._usage.trials
        trial = Trial(number=number, arch=arch, seed=derive_seed(self.seed, number),
                      fidelity=self.fidelity, started_at=time.time())
        self._seq += 1
        self.storage.add_trial(trial, self._seq)
        self._usage.trials += 1
        for cb in self.callbacks:
            cb.on_trial_start(self, trial)
        if self.constraints:
            cheap = self.evaluator.cheap_metrics(arch)
            broken = [c for c in self.constraints if c.satisfied(cheap) is False]
            if broken:
                result = Result(metrics=cheap, cost=0.0, status=TrialStatus.INFEASIBLE,
                                error="violates " + ", ".join(map(str, broken)))
                now = time.time()
                self._rejected_in_a_row += 1
                if self._rejected_in_a_row > 10_000:
                    raise ConfigError(
                        "the constraints rejected 10,000 proposals in a row: "
                        + ", ".join(map(str, self.constraints)) + "; loosen them"
                    )
                return self._finish(trial, JobOutcome(number, result, now, now))
        self._rejected_in_a_row = 0
        return trial

    def _context(self, trial: Trial) -> EvalContext:
        deadline = None
        if self.trial_timeout is not None:
            deadline = trial.started_at + self.trial_timeout
        if self.budget.max_seconds is not None:
            budget_end = time.time() + max(self.budget.max_seconds - self.elapsed, 0.0)
            deadline = budget_end if deadline is None else min(deadline, budget_end)
        return EvalContext(seed=trial.seed, device=self.device, fidelity=trial.fidelity,
                           trial_number=trial.number, deadline=deadline)

    def _finish(self, trial: Trial, outcome: JobOutcome) -> Trial:
        done = Trial(number=trial.number, arch=trial.arch, seed=trial.seed, fidelity=trial.fidelity,
                     started_at=outcome.started_at).finish(outcome.result, outcome.finished_at)
        if done.status is TrialStatus.OK and self.constraints:
            broken = [c for c in self.constraints if c.satisfied(done.metrics) is False]
            if broken:
                done = dataclasses.replace(done, status=TrialStatus.INFEASIBLE,
                                           error="violates " + ", ".join(map(str, broken)))
        self._seq += 1
        self._usage.cost += done.cost
        self.storage.finish_trial(done, self._seq, meta={"elapsed": self.elapsed})
        self.strategy.tell(done)
        self._tells_since_snapshot += 1
        if self._tells_since_snapshot >= self.snapshot_every:
            self.storage.save_snapshot(self._seq, self.strategy.state_dict())
            self._tells_since_snapshot = 0
        for cb in self.callbacks:
            cb.on_trial_end(self, done)
        return done


def _jsonish(obj: Any) -> Any:
    """What ``obj`` looks like after a JSON round trip (tuples -> lists), for comparisons."""
    import json

    from nasforge.experiment.storage import dumps

    return json.loads(dumps(obj))
