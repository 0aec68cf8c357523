"""The experiment loop on the NAS-Bench-201 space with deterministic function evaluators."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from exp_runtime_helpers import CheapMetricsEvaluator, Faulty, accuracy, metrics, params

import nasforge
from nasforge.errors import ConfigError, StorageError
from nasforge.evaluators.base import EvalContext
from nasforge.evaluators.function import FunctionEvaluator
from nasforge.experiment import (
    Budget,
    Callback,
    Event,
    EventKind,
    Experiment,
    InlineExecutor,
    MemoryStorage,
    SQLiteStorage,
    Storage,
    make_executor,
)
from nasforge.experiment.metric_checks import REJECTED
from nasforge.space.architecture import Architecture
from nasforge.trial import Result, Trial, TrialStatus


@pytest.fixture(scope="module")
def space() -> nasforge.SearchSpace:
    return nasforge.create_space("nb201")


def make(space: nasforge.SearchSpace, evaluator: Any = None, *, strategy: str = "rea",
         seed: int = 0, **kwargs: Any) -> Experiment:
    kwargs.setdefault("budget", Budget(max_trials=30))
    strat = nasforge.create_strategy(strategy, space, seed=seed)
    ev = evaluator if evaluator is not None else FunctionEvaluator(metrics)
    return Experiment(space, strat, ev, seed=seed, device="cpu", **kwargs)


def summary(trials: list[Trial]) -> list[tuple[Any, ...]]:
    return [(t.number, t.arch.to_json(), t.status.value, dict(t.metrics), t.error)
            for t in trials]


# ---------------------------------------------------------------- budgets
def test_trial_budget_counts_evaluations(space: nasforge.SearchSpace) -> None:
    ev = CheapMetricsEvaluator()
    exp = make(space, ev, budget=Budget(max_trials=25)).run()
    assert len(exp.trials) == 25 and len(ev.calls) == 25
    assert all(t.status is TrialStatus.OK for t in exp.trials)
    assert exp.usage[0] == 25
    assert exp.stop_reason == "finished"


def test_cost_budget_crossing_trial_counts(space: nasforge.SearchSpace) -> None:
    def costly(arch: Architecture, ctx: EvalContext) -> Result:
        return Result(metrics={"accuracy": accuracy(arch, ctx)}, cost=10.0)

    exp = make(space, FunctionEvaluator(costly), budget=Budget(max_cost=35.0)).run()
    # 3 trials cost 30 < 35; the 4th crosses to 40 and still counts; no 5th starts.
    assert len(exp.trials) == 4
    assert exp.usage[2] == pytest.approx(40.0)


def test_wall_budget_stops_starting_trials(space: nasforge.SearchSpace) -> None:
    def slow(arch: Architecture, ctx: EvalContext) -> float:
        time.sleep(0.05)
        return accuracy(arch, ctx)

    t0 = time.time()
    exp = make(space, FunctionEvaluator(slow), budget=Budget(max_seconds=0.4)).run()
    n = len(exp.trials)
    assert 2 <= n <= 9, n
    assert all(t.started_at < t0 + 0.4 + 0.5 for t in exp.trials)
    assert exp.elapsed >= 0.4  # the crossing trial finished after the limit
    assert all(t.status is TrialStatus.OK for t in exp.trials)


def test_evaluation_deadline_is_the_budget_end(space: nasforge.SearchSpace) -> None:
    seen: list[float | None] = []

    def look(arch: Architecture, ctx: EvalContext) -> float:
        seen.append(ctx.time_left())
        return 1.0

    make(space, FunctionEvaluator(look), budget=Budget(max_trials=3, max_seconds=100.0)).run()
    assert all(s is not None and 90 < s <= 100 for s in seen)


# ---------------------------------------------------------------- failures
def test_exception_fails_one_trial_and_experiment_goes_on(space: nasforge.SearchSpace) -> None:
    exp = make(space, FunctionEvaluator(Faulty(raise_on=(3, 7))), budget=Budget(max_trials=12))
    exp.run()
    failed = [t for t in exp.trials if t.status is TrialStatus.FAILED]
    assert [t.number for t in failed] == [3, 7]
    assert "ValueError: deliberate failure in trial 3" in (failed[0].error or "")
    assert "Traceback" in (failed[0].error or "")
    assert sum(t.ok for t in exp.trials) == 10
    best = exp.best()
    assert best is not None and best.ok


def test_inline_trial_timeout(space: nasforge.SearchSpace) -> None:
    exp = make(space, FunctionEvaluator(Faulty(hang_on=(1,))), budget=Budget(max_trials=3),
               trial_timeout=0.3)
    t0 = time.time()
    exp.run()
    assert time.time() - t0 < 10
    t1 = exp.trials[1]
    assert t1.status is TrialStatus.FAILED and t1.error == "timeout after 0.3 s"
    assert exp.trials[0].ok and exp.trials[2].ok


def test_non_result_return_fails_clearly(space: nasforge.SearchSpace) -> None:
    exp = make(space, FunctionEvaluator(lambda a, c: "good"), budget=Budget(max_trials=2)).run()
    assert all(t.status is TrialStatus.FAILED for t in exp.trials)
    assert "returned str" in (exp.trials[0].error or "")
    assert exp.best() is None


# ---------------------------------------------------------------- constraints
def test_constraint_rejected_before_evaluation_costs_nothing(space: nasforge.SearchSpace) -> None:
    ev = CheapMetricsEvaluator()
    exp = make(space, ev, budget=Budget(max_trials=20), constraints=["params <= 400000"])
    exp.run()
    rejected = [t for t in exp.trials if t.info.get(REJECTED)]
    evaluated = [t for t in exp.trials if not t.info.get(REJECTED)]
    assert rejected, "the constraint should reject some NB201 cells"
    assert len(evaluated) == 20 == len(ev.calls)  # rejected proposals do not use the budget
    assert {a.to_json() for a in ev.calls} == {t.arch.to_json() for t in evaluated}
    for t in rejected:
        assert t.status is TrialStatus.INFEASIBLE and t.cost == 0.0
        assert t.error == "violates params <= 400000" and t.metrics["params"] > 400_000
    assert all(params(t.arch) <= 400_000 for t in evaluated)


def test_constraint_checked_after_evaluation(space: nasforge.SearchSpace) -> None:
    """latency_ms is unknown before evaluation: the trial runs, then is marked infeasible."""
    ev = CheapMetricsEvaluator()
    exp = make(space, ev, budget=Budget(max_trials=30), constraints=["latency_ms <= 2"])
    exp.run()
    assert len(ev.calls) == 30
    bad = [t for t in exp.trials if t.status is TrialStatus.INFEASIBLE]
    good = [t for t in exp.trials if t.ok]
    assert bad and good
    assert all(t.metrics["latency_ms"] > 2 and t.error == "violates latency_ms <= 2" for t in bad)
    assert all(t.metrics["latency_ms"] <= 2 for t in good)
    best = exp.best()
    assert best is not None and best.metrics["latency_ms"] <= 2  # infeasible never wins


def test_impossible_constraint_gives_up_clearly(space: nasforge.SearchSpace,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import nasforge.experiment.metric_checks as metric_checks

    monkeypatch.setattr(metric_checks, "MAX_REJECTED_IN_A_ROW", 50)
    exp = make(space, CheapMetricsEvaluator(), strategy="random", constraints=["params <= 1"])
    with pytest.raises(ConfigError, match="rejected 50 proposals in a row: params <= 1"):
        exp.run()


# ---------------------------------------------------------------- determinism and resume
def test_same_seed_same_results(space: nasforge.SearchSpace) -> None:
    a = make(space, seed=3, budget=Budget(max_trials=40)).run()
    b = make(space, seed=3, budget=Budget(max_trials=40)).run()
    c = make(space, seed=4, budget=Budget(max_trials=40)).run()
    assert summary(a.trials) == summary(b.trials)
    assert summary(a.trials) != summary(c.trials)
    assert [t.seed for t in a.trials] == [t.seed for t in b.trials]
    assert len({t.seed for t in a.trials}) == 40  # every trial gets its own seed


def test_readers_see_slow_trials_running(space: nasforge.SearchSpace, tmp_path: Path) -> None:
    """Fast trials are written with their tell; slow ones are written before the wait, so a
    reader (``nasforge show``) lists the trial that is running."""
    db = tmp_path / "e.db"
    seen: list[str] = []

    def look(arch: Architecture, ctx: EvalContext) -> float:
        ro = SQLiteStorage(db, readonly=True)
        seen.append(ro.trial(ctx.trial_number).status.value)
        ro.close()
        time.sleep(0.02)
        return 1.0

    make(space, FunctionEvaluator(look), storage=str(db), budget=Budget(max_trials=4)).run()
    assert seen == ["running"] * 4


def test_different_config_on_same_storage_is_refused(space: nasforge.SearchSpace,
                                                     tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    make(space, seed=0, storage=str(db), budget=Budget(max_trials=3)).run()
    with pytest.raises(StorageError, match=r"different experiment.*seed \(stored 0, now 1\)"):
        make(space, seed=1, storage=str(db)).run()
    with pytest.raises(StorageError, match=r"different experiment.*strategy"):
        make(space, seed=0, strategy="random", storage=str(db)).run()
    # The same settings resume.
    make(space, seed=0, storage=str(db), budget=Budget(max_trials=5)).run()
    assert SQLiteStorage(db, readonly=True).count() == 5


@pytest.mark.parametrize("snapshot_every", [1, 7, 1000])
def test_resume_with_more_budget_equals_one_run(space: nasforge.SearchSpace, tmp_path: Path,
                                                snapshot_every: int) -> None:
    full = make(space, budget=Budget(max_trials=60)).run()
    db = str(tmp_path / "e.db")
    make(space, storage=db, budget=Budget(max_trials=20), snapshot_every=snapshot_every).run()
    make(space, storage=db, budget=Budget(max_trials=45), snapshot_every=snapshot_every).run()
    again = make(space, storage=db, budget=Budget(max_trials=60), snapshot_every=snapshot_every)
    again.run()
    assert summary(again.trials) == summary(full.trials)
    assert again.strategy.state_dict() == full.strategy.state_dict()


def test_run_twice_on_one_object(space: nasforge.SearchSpace) -> None:
    """A second run() restores from storage, not from the strategy's (already advanced) memory."""
    full = make(space, budget=Budget(max_trials=40)).run()
    exp = make(space, budget=Budget(max_trials=15))
    exp.run()
    exp.budget = Budget(max_trials=40)
    exp.run()
    assert summary(exp.trials) == summary(full.trials)


def test_snapshot_and_replay_give_identical_strategy_state(space: nasforge.SearchSpace,
                                                           tmp_path: Path) -> None:
    states = []
    for every in (1, 4, 1000):
        db = str(tmp_path / f"s{every}.db")
        exp = make(space, storage=db, budget=Budget(max_trials=50), snapshot_every=every).run()
        fresh = make(space, storage=db, budget=Budget(max_trials=50), snapshot_every=every)
        assert fresh.restore() == []
        assert fresh.strategy.state_dict() == exp.strategy.state_dict()
        assert fresh.replay_mismatches == 0
        states.append(exp.strategy.state_dict())
    assert states[0] == states[1] == states[2]


def test_keyboard_interrupt_leaves_trial_running_and_resumes(space: nasforge.SearchSpace,
                                                             tmp_path: Path) -> None:
    class Interrupt:
        """Ctrl-C arrives during trial 9, once."""

        def __init__(self) -> None:
            self.fired = False

        def __call__(self, arch: Architecture, ctx: EvalContext) -> dict[str, float]:
            if ctx.trial_number == 9 and not self.fired:
                self.fired = True
                raise KeyboardInterrupt
            return metrics(arch, ctx)

        def __repr__(self) -> str:
            return "Interrupt()"

    fn = Interrupt()
    db = tmp_path / "e.db"
    exp = make(space, FunctionEvaluator(fn), storage=str(db), budget=Budget(max_trials=20))
    with pytest.raises(KeyboardInterrupt):
        exp.run()
    assert exp.stop_reason == "interrupted"
    ro = SQLiteStorage(db, readonly=True)
    assert ro.count() == 10 and ro.trial(9).status is TrialStatus.RUNNING
    exp2 = make(space, FunctionEvaluator(fn), storage=str(db), budget=Budget(max_trials=20))
    exp2.run()
    full = make(space, budget=Budget(max_trials=20)).run()
    assert summary(exp2.trials) == summary(full.trials)


def test_ordered_mode_is_deterministic_and_keeps_capacity(space: nasforge.SearchSpace) -> None:
    """InlineExecutor(capacity=3) with ordered tells: 3 trials in flight, same results each time."""
    in_flight: list[int] = []

    class Watch(Callback):
        def on_trial_start(self, experiment: Experiment, trial: Trial) -> None:
            in_flight.append(experiment.executor.in_flight)

    runs = [make(space, budget=Budget(max_trials=30), executor=InlineExecutor(capacity=3),
                 ordered=True, callbacks=[Watch()]).run() for _ in range(2)]
    assert summary(runs[0].trials) == summary(runs[1].trials)
    assert max(in_flight) == 3
    seq1 = make(space, budget=Budget(max_trials=30)).run()
    # REA samples at random until its population (10) fills, whatever the schedule.
    assert [t.arch for t in seq1.trials[:10]] == [t.arch for t in runs[0].trials[:10]]


# ---------------------------------------------------------------- events
def test_callbacks_fire_in_order(space: nasforge.SearchSpace) -> None:
    log: list[tuple[str, int | None]] = []

    class Recorder(Callback):
        def on_experiment_start(self, experiment: Experiment) -> None:
            log.append(("start", None))

        def on_trial_start(self, experiment: Experiment, trial: Trial) -> None:
            log.append(("trial_start", trial.number))

        def on_trial_end(self, experiment: Experiment, trial: Trial) -> None:
            assert trial.status.finished
            # Events come after the storage write: the stored trial is the finished one.
            assert experiment.storage.trial(trial.number) == trial
            log.append(("trial_end", trial.number))

        def on_trial_failed(self, experiment: Experiment, trial: Trial) -> None:
            log.append(("failed", trial.number))

        def on_experiment_end(self, experiment: Experiment) -> None:
            log.append(("end", None))

    events: list[Event] = []
    exp = make(space, FunctionEvaluator(Faulty(raise_on=(1,))), budget=Budget(max_trials=3),
               callbacks=[Recorder(), events.append])
    exp.run()
    assert log == [("start", None), ("trial_start", 0), ("trial_end", 0), ("trial_start", 1),
                   ("trial_end", 1), ("failed", 1), ("trial_start", 2), ("trial_end", 2),
                   ("end", None)]
    kinds = [e.kind for e in events]
    K = EventKind
    assert kinds == [K.EXPERIMENT_STARTED, K.TRIAL_STARTED, K.TRIAL_FINISHED, K.TRIAL_STARTED,
                     K.TRIAL_FAILED, K.TRIAL_STARTED, K.TRIAL_FINISHED, K.EXPERIMENT_ENDED]
    assert events[-1].message == "finished"
    assert events[4].trial is not None and "deliberate failure" in (events[4].trial.error or "")


def test_function_callback_kind_filter_and_stop(space: nasforge.SearchSpace) -> None:
    from nasforge.experiment import FunctionCallback

    finished: list[int] = []
    exp = make(space, budget=Budget(max_trials=50))

    def on_finish(event: Event) -> None:
        assert event.trial is not None
        finished.append(event.trial.number)
        if len(finished) == 5:
            exp.stop()

    exp.add_callback(FunctionCallback(on_finish, kinds=["trial_finished"]))
    exp.run()
    assert finished == [0, 1, 2, 3, 4] and len(exp.trials) == 5
    assert exp.stop_reason == "stopped"
    with pytest.raises(ConfigError, match="unknown event kind"):
        FunctionCallback(print, kinds=["trial_done"])


# ---------------------------------------------------------------- scale
class CountingStorage(MemoryStorage):
    """Counts full reads, which must not happen once per trial."""

    def __init__(self) -> None:
        super().__init__()
        self.full_reads = 0

    def stored_trials(self) -> list[Any]:
        self.full_reads += 1
        return super().stored_trials()

    def trials(self, status: TrialStatus | None = None) -> list[Trial]:
        self.full_reads += 1
        return super().trials(status)

    def count(self, status: TrialStatus | None = None) -> int:
        self.full_reads += 1
        return super().count(status)


def test_loop_never_rereads_all_trials(space: nasforge.SearchSpace) -> None:
    storage = CountingStorage()
    seen_best: list[float] = []

    def on_end(event: Event) -> None:  # a progress callback asking for the best every trial
        best = exp.best()
        if best is not None:
            seen_best.append(best.metrics["accuracy"])

    exp = make(space, storage=storage, budget=Budget(max_trials=3000), strategy="random",
               callbacks=[on_end])
    exp.run()
    assert storage.full_reads == 1  # the resume read at start, nothing per trial
    assert len(exp.trials) == 3000 and storage.full_reads == 1
    assert seen_best == sorted(seen_best)  # best-so-far never decreases
    assert exp.best() == max(exp.trials, key=lambda t: (t.metrics["accuracy"], -t.number))


# ---------------------------------------------------------------- configuration errors
def test_bad_arguments_are_reported(space: nasforge.SearchSpace) -> None:
    with pytest.raises(ConfigError, match="at least one limit"):
        Budget()
    with pytest.raises(ConfigError, match="max_trials must be a positive number"):
        Budget(max_trials=0)
    with pytest.raises(ConfigError, match="retries must be an integer >= 0"):
        make(space, retries=-1)
    with pytest.raises(ConfigError, match="trial_timeout must be a positive number"):
        make(space, trial_timeout=0)
    with pytest.raises(ConfigError, match="unknown executor 'dask'; allowed: 'inline', "
                                          "'process', 'ray'"):
        make_executor("dask")
    with pytest.raises(ConfigError, match="inline executor runs one trial at a time"):
        make_executor("inline", workers=2)
    with pytest.raises(ConfigError, match="workers must be an integer >= 1"):
        make_executor("process", workers=0)
    with pytest.raises(ConfigError, match="set the number of workers on the executor"):
        make(space, executor=InlineExecutor(), workers=2)
    assert make_executor(None, workers=1).name == "inline"
    assert make_executor(None, workers=2).name == "process"


def test_storage_property_types(space: nasforge.SearchSpace, tmp_path: Path) -> None:
    exp = make(space, storage=str(tmp_path / "x.db"), budget=Budget(max_trials=2))
    assert isinstance(exp.storage, Storage)
    assert exp.trials == [] and exp.best() is None  # before run: read from storage
    exp.run()
    reopened = make(space, storage=str(tmp_path / "x.db"))
    assert summary(reopened.trials) == summary(exp.trials)
    assert reopened.best() == exp.best()
